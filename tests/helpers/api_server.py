"""A real TuneForge API on 127.0.0.1 for tests: LocalChain file, SQLite/PostgreSQL, uvicorn."""

from __future__ import annotations

import io
import os
import threading
import time
import uuid
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from bittensor.sp_core import Keypair

from tuneforge.api.accounts import create_account, create_key
from tuneforge.api.app import create_app
from tuneforge.api.settings import ApiSettings
from tuneforge.auth.hotkey import sign_hotkey_headers
from tuneforge.chain.local import LocalChain
from tuneforge.core.http_limits import uvicorn_limits
from tuneforge.core.loopback import free_port as free_port  # re-exported for the tests

VALIDATOR_URI = "//TuneForgeValidator"
READER_URI = "//TuneForgeMiner"
STRANGER_URI = "//TuneForgeStranger"


def wav_bytes(seconds: float = 0.25, sample_rate: int = 32000, freq: float = 440.0) -> bytes:
    """A real 16-bit mono WAV of a sine (different `freq` gives different bytes)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pcm = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


@dataclass
class Neurons:
    validator: Any  # Keypair with a validator permit
    reader: Any  # registered, no permit
    stranger: Any  # not registered


def make_chain(tmp_path: Path) -> tuple[Path, Neurons]:
    path = tmp_path / "chain.db"
    chain = LocalChain.create(path)
    neurons = Neurons(
        Keypair.create_from_uri(VALIDATOR_URI),
        Keypair.create_from_uri(READER_URI),
        Keypair.create_from_uri(STRANGER_URI),
    )
    chain.register(neurons.validator.ss58_address, stake=1000.0, validator_permit=True)
    chain.register(neurons.reader.ss58_address, stake=0.0, validator_permit=False)
    chain.close()
    return path, neurons


def make_settings(tmp_path: Path, chain_path: Path, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'api.db'}",
        "audio_dir": str(tmp_path / "audio"),
        "chain": {"network": "localnet", "netuid": 234},
        "localnet": {"path": str(chain_path)},
        "metagraph_refresh_s": 0.5,
    }
    values.update(overrides)
    return ApiSettings.model_validate(values)


class ServerThread:
    """uvicorn serving an app object in a background thread on a free port."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            **uvicorn_limits(),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.app = app

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("API server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def running_api(settings: ApiSettings) -> Iterator[ServerThread]:
    app = create_app(settings)
    with ServerThread(app) as server:
        yield server


def new_customer(settings: ApiSettings, plan: str = "pro", credits: int = 100) -> tuple[str, str]:
    """(account_id, api key) created through the same functions the CLI uses."""
    from tuneforge.api.db import Database

    db = Database.open(settings.database_url)
    try:
        account = create_account(db, f"user{time.time_ns()}@example.com", plan, credits)
        _, key = create_key(db, account.id)
    finally:
        db.dispose()
    return account.id, key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def signed_request(
    client: httpx.Client,
    keypair: Any,
    method: str,
    path: str,
    body: bytes = b"",
    params: dict[str, Any] | None = None,
    content_type: str = "application/json",
) -> httpx.Response:
    headers = sign_hotkey_headers(keypair, method, path, body)
    if body:
        headers["Content-Type"] = content_type
    return client.request(method, path, content=body, headers=headers, params=params)


PG_URL = os.environ.get(
    "TUNEFORGE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A database URL whose search_path is a fresh schema, dropped afterwards (skips the test
    with the reason when PostgreSQL is unreachable)."""
    import psycopg
    import pytest

    plain = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    schema = f"tf_api_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(plain, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {exc}")
    separator = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
