"""What the API refuses before doing any work (issue 11, defects 6, 7, 8): rate limits are
counted before authentication whatever credentials a request carries; audio uploads are refused
from their headers before a body byte is read; request heads have a size limit."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers.api_server import (
    Neurons,
    ServerThread,
    free_port,
    make_chain,
    make_settings,
    running_api,
    signed_request,
    wav_bytes,
)
from tuneforge.api.app import create_app
from tuneforge.auth.hotkey import sign_hotkey_headers
from tuneforge.core.http_limits import MAX_HEADER_BYTES

MiB = 1024 * 1024


@pytest.fixture()
def api(tmp_path: Path) -> Iterator[tuple[ServerThread, Neurons]]:
    chain_path, neurons = make_chain(tmp_path)
    with running_api(make_settings(tmp_path, chain_path)) as server:
        yield server, neurons


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer junk"}, {"X-Validator-Hotkey": "junk"}],
    ids=["anonymous", "junk-bearer", "junk-hotkey"],
)
def test_credential_headers_do_not_bypass_the_per_address_limit(api, headers) -> None:
    with httpx.Client(base_url=api[0].url, timeout=10) as client:
        counts = Counter(
            client.get("/leaderboard.json", headers=headers).status_code for _ in range(100)
        )
    assert counts == Counter({200: 60, 429: 40})


def test_failed_authentications_exhaust_the_address_before_authenticating_again(api) -> None:
    with httpx.Client(base_url=api[0].url, timeout=10) as client:
        counts = Counter(
            client.get("/api/v1/account/me", headers={"Authorization": "Bearer junk"}).status_code
            for _ in range(80)
        )
        assert counts == Counter({401: 60, 429: 20})
        # A signed neuron from that address is refused too, before its signature is checked.
        signed = signed_request(client, api[1].reader, "GET", "/api/v1/scores/miners")
        assert signed.status_code == 429


class Upload:
    """Drive the ASGI app with one PUT whose body is `size` bytes, counting what it reads."""

    def __init__(self, app: FastAPI, path: str, headers: dict[str, str], size: int) -> None:
        self.app, self.path, self.size = app, path, size
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.chunks_read = 0
        self.messages: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        chunk = 64 * 1024
        self.chunks_read += 1
        more = self.chunks_read * chunk < self.size
        return {"type": "http.request", "body": b"\0" * chunk, "more_body": more}

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def run(self) -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "PUT",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": self.headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        asyncio.run(self.app(scope, self.receive, self.send))
        (start,) = [m for m in self.messages if m["type"] == "http.response.start"]
        return int(start["status"])


@pytest.fixture()
def app(tmp_path: Path) -> tuple[FastAPI, Neurons]:
    chain_path, neurons = make_chain(tmp_path)
    return create_app(make_settings(tmp_path, chain_path)), neurons


def upload_headers(keypair: Any, path: str, digest_of: bytes, size: int) -> dict[str, str]:
    headers = sign_hotkey_headers(keypair, "PUT", path, digest_of)
    return {**headers, "Content-Type": "audio/wav", "Content-Length": str(size)}


@pytest.mark.parametrize("who", ["stranger", "reader", "forger"])
def test_an_audio_upload_is_refused_from_its_headers_before_the_body_is_read(app, who) -> None:
    application, neurons = app
    audio = wav_bytes(freq=440)
    path = f"/api/v1/validator/audio/{hashlib.sha256(audio).hexdigest()}"
    size = 30 * MiB
    if who == "forger":  # the validator's hotkey, someone else's signature
        headers = upload_headers(neurons.validator, path, audio, size)
        headers["X-Validator-Signature"] = sign_hotkey_headers(
            neurons.stranger, "PUT", path, audio
        )["X-Validator-Signature"]
    else:
        headers = upload_headers(getattr(neurons, who), path, audio, size)
    upload = Upload(application, path, headers, size)
    status = upload.run()
    assert status == {"stranger": 403, "reader": 403, "forger": 401}[who]
    assert upload.chunks_read == 0


def test_a_published_track_upload_is_signed_over_the_published_hash_before_reading(app) -> None:
    application, neurons = app
    path = "/api/v1/scores/audio/trk_never_published"
    headers = upload_headers(neurons.validator, path, b"anything", 30 * MiB)
    upload = Upload(application, path, headers, 30 * MiB)
    assert upload.run() == 404
    assert upload.chunks_read == 0


def test_a_body_over_the_limit_is_refused_early_or_aborted(app) -> None:
    application, neurons = app
    limit = application.state.ctx.settings.max_audio_bytes
    audio = wav_bytes(freq=450)
    path = f"/api/v1/validator/audio/{hashlib.sha256(audio).hexdigest()}"
    declared = Upload(
        application, path, upload_headers(neurons.validator, path, audio, limit + 1), 1
    )
    assert declared.run() == 413 and declared.chunks_read == 0
    # Chunked (no Content-Length): read until the limit is passed, then aborted.
    headers = sign_hotkey_headers(neurons.validator, "PUT", path, audio)
    streamed = Upload(application, path, headers, 4 * limit)
    assert streamed.run() == 413
    assert streamed.chunks_read * 64 * 1024 <= limit + 64 * 1024
    assert not list(Path(application.state.ctx.store.root).glob(".upload-*"))


def raw_request(port: int, head: bytes) -> bytes:
    """Send `head` while reading the answer (a server may answer and close mid-upload)."""
    import threading

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:

        def upload() -> None:
            # The server may answer and close before taking it all.
            with contextlib.suppress(OSError):
                sock.sendall(head)

        sender = threading.Thread(target=upload, daemon=True)
        sender.start()
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except OSError:
            pass  # reset after the answer; whatever arrived is what we judge
        sender.join(timeout=10)
        return data


def test_a_one_mib_header_is_refused_with_431_over_loopback(api) -> None:
    server = api[0]
    huge = b"GET /leaderboard.json HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MiB + b"\r\n\r\n"
    answer = raw_request(server.port, huge)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    # The server lives on and still answers ordinary requests.
    assert httpx.get(f"{server.url}/api/v1/health", timeout=10).status_code == 200


def test_the_app_refuses_oversized_heads_under_any_server(app) -> None:
    """The in-app check, for deployments that run the app under another server."""
    application, neurons = app
    audio = wav_bytes(freq=460)
    path = f"/api/v1/validator/audio/{hashlib.sha256(audio).hexdigest()}"
    headers = upload_headers(neurons.validator, path, audio, len(audio))
    headers["X-Padding"] = "p" * (MAX_HEADER_BYTES + 1)
    upload = Upload(application, path, headers, len(audio))
    assert upload.run() == 431 and upload.chunks_read == 0


@pytest.mark.slow
def test_the_miner_server_refuses_a_one_mib_header_with_431(tmp_path: Path) -> None:
    """The miner as operators start it (neurons/miner.py) has the same head limit."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers.miner_server import make_net

    net = make_net(tmp_path)
    port = free_port()
    argv = [
        sys.executable,
        str(Path(__file__).resolve().parents[1] / "neurons" / "miner.py"),
        "--network", "localnet",
        "--localnet.path", str(net.chain.path),
        "--wallet.name", "miner",
        "--wallet.path", str(tmp_path / "wallets"),
        "--axon.ip", "127.0.0.1",
        "--axon.port", str(port),
        "--generation.backend", "synth",
        "--logging.level", "WARNING",
    ]  # fmt: skip
    process = subprocess.Popen(
        argv, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0].decode()[-2000:]
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/info", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the miner never started serving"
                time.sleep(0.2)
        huge = b"GET /v1/info HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MiB + b"\r\n\r\n"
        answer = raw_request(port, huge)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
