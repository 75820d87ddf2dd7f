"""Miner admission over real HTTP: who is served, who is refused, and that refusals cost nothing.

One miner server (uvicorn on 127.0.0.1, LocalChain, password-less wallets) serves the module;
the pass-through backend counts calls so every refusal is proven to happen before generation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from bittensor import http_auth

from tests.helpers.miner_server import (
    CountingBackend,
    MinerNet,
    get_info,
    make_net,
    post_generate,
    serve_app,
    signed_headers,
    synapse_body,
)
from tuneforge.auth.btauth import verify_response
from tuneforge.core.audio import decode_wav
from tuneforge.core.protocol import (
    GENERATE_PATH,
    HEADER_GENERATION_MS,
    HEADER_MODEL,
    HEADER_SAMPLE_RATE,
    HEADER_SPEC_VERSION,
    MAX_REQUEST_BYTES,
    SPEC_VERSION,
)


@dataclass
class Served:
    net: MinerNet
    backend: CountingBackend
    client: httpx.Client


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    net = make_net(tmp_path_factory.mktemp("miner"))
    net.add_caller("validator", stake=5_000.0, permit=True)
    net.add_caller("no_permit", stake=5_000.0, permit=False)
    net.add_caller("poor", stake=10.0, permit=True)
    net.add_caller("stranger", registered=False)
    net.add_caller("other_miner")  # used only as a wrong receiver
    backend = CountingBackend(sample_rate=32_000, channels=2)
    with serve_app(net.app(backend)) as url, httpx.Client(base_url=url, timeout=20) as client:
        yield Served(net, backend, client)


@pytest.fixture()
def s(served: Served) -> Served:
    served.backend.calls = 0
    return served


def test_registered_validator_gets_signed_wav_matching_the_request(s: Served) -> None:
    validator = s.net.callers["validator"]
    body = synapse_body(duration_seconds=3.0)
    response = post_generate(s.client, validator, s.net.miner_hotkey, body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    audio = decode_wav(response.content)
    assert audio.sample_rate == 32_000 == int(response.headers[HEADER_SAMPLE_RATE])
    assert audio.channels == 2
    assert audio.duration_seconds == pytest.approx(3.0, abs=1e-3)
    assert response.headers[HEADER_MODEL] == "test/passthrough"
    assert int(response.headers[HEADER_GENERATION_MS]) >= 0
    assert response.headers[HEADER_SPEC_VERSION] == SPEC_VERSION
    verify_response(
        response.headers,
        response.content,
        "POST",
        GENERATE_PATH,
        expected_signer_ss58=s.net.miner_hotkey,
        self_hotkey_ss58=validator.hotkey.ss58_address,
    )
    assert s.backend.calls == 1


def _refused(s: Served, response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert words.lower() in response.json()["detail"].lower()
    assert s.backend.calls == 0


def test_request_without_signature_is_refused_401(s: Served) -> None:
    body = synapse_body()
    headers = {HEADER_SPEC_VERSION: SPEC_VERSION, "Content-Type": "application/json"}
    _refused(s, s.client.post(GENERATE_PATH, content=body, headers=headers), 401, "missing")


def test_bad_signature_is_refused_401(s: Served) -> None:
    body = synapse_body()
    headers = signed_headers(s.net.callers["validator"], s.net.miner_hotkey, body)
    forged = signed_headers(s.net.callers["stranger"], s.net.miner_hotkey, body)
    headers[http_auth.HEADER_SIGNATURE] = forged[http_auth.HEADER_SIGNATURE]
    response = s.client.post(GENERATE_PATH, content=body, headers=headers)
    _refused(s, response, 401, "bad_signature")


def test_tampered_body_is_refused_401(s: Served) -> None:
    body = synapse_body(prompt="calm piano")
    headers = signed_headers(s.net.callers["validator"], s.net.miner_hotkey, body)
    tampered = body.replace(b"calm piano", b"loud drums")
    response = s.client.post(GENERATE_PATH, content=tampered, headers=headers)
    _refused(s, response, 401, "bad_signature")


def test_replayed_nonce_is_refused_401_without_a_second_generation(s: Served) -> None:
    body = synapse_body()
    headers = signed_headers(s.net.callers["validator"], s.net.miner_hotkey, body)
    assert s.client.post(GENERATE_PATH, content=body, headers=headers).status_code == 200
    replay = s.client.post(GENERATE_PATH, content=body, headers=headers)
    assert replay.status_code == 401
    assert "replayed" in replay.json()["detail"]
    assert s.backend.calls == 1


def test_stale_nonce_is_refused_401(s: Served) -> None:
    body = synapse_body()
    headers = http_auth.sign(
        s.net.callers["validator"],
        method="POST",
        path=GENERATE_PATH,
        body=body,
        receiver_ss58=s.net.miner_hotkey,
        nonce_ns=time.time_ns() - 120 * 10**9,
    )
    headers[HEADER_SPEC_VERSION] = SPEC_VERSION
    _refused(s, s.client.post(GENERATE_PATH, content=body, headers=headers), 401, "stale")


def test_request_signed_for_another_miner_is_refused_401(s: Served) -> None:
    body = synapse_body()
    other = s.net.callers["other_miner"].hotkey.ss58_address
    response = post_generate(s.client, s.net.callers["validator"], other, body)
    _refused(s, response, 401, "wrong_receiver")


@pytest.mark.parametrize(
    ("caller", "words"),
    [
        ("stranger", "not registered"),
        ("no_permit", "no validator permit"),
        ("poor", "minimum is 1000"),
    ],
)
def test_callers_without_standing_are_refused_403(s: Served, caller: str, words: str) -> None:
    response = post_generate(s.client, s.net.callers[caller], s.net.miner_hotkey, synapse_body())
    _refused(s, response, 403, words)


def test_body_over_16_kib_is_refused_413(s: Served) -> None:
    body = b'{"prompt": "' + b"x" * MAX_REQUEST_BYTES + b'"}'
    response = post_generate(s.client, s.net.callers["validator"], s.net.miner_hotkey, body)
    _refused(s, response, 413, "limit")


def test_chunked_body_over_16_kib_is_refused_413(s: Served) -> None:
    headers = {HEADER_SPEC_VERSION: SPEC_VERSION}

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 1024

    response = s.client.post(GENERATE_PATH, content=chunks(), headers=headers)
    _refused(s, response, 413, "limit")


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"duration_seconds": 0}, "duration_seconds"),
        ({"duration_seconds": 10_000}, "duration_seconds"),
        ({"tempo_bpm": 1_000}, "tempo_bpm"),
        ({"prompt": "p" * 10_000}, "prompt"),
    ],
)
def test_out_of_range_fields_are_refused_422_naming_the_field(
    s: Served, fields: dict[str, object], words: str
) -> None:
    import json

    values = {"prompt": "calm piano", "duration_seconds": 2.0, "seed": 1, **fields}
    body = json.dumps(values).encode()
    response = post_generate(s.client, s.net.callers["validator"], s.net.miner_hotkey, body)
    _refused(s, response, 422, words)


def test_malformed_json_is_refused_422(s: Served) -> None:
    body = b"{not json"
    response = post_generate(s.client, s.net.callers["validator"], s.net.miner_hotkey, body)
    _refused(s, response, 422, "invalid generation request")


@pytest.mark.parametrize("version", ["2.0", None])
def test_incompatible_or_missing_spec_major_is_refused_426(s: Served, version: str | None) -> None:
    body = synapse_body()
    headers = signed_headers(s.net.callers["validator"], s.net.miner_hotkey, body)
    if version is None:
        del headers[HEADER_SPEC_VERSION]
    else:
        headers[HEADER_SPEC_VERSION] = version
    _refused(s, s.client.post(GENERATE_PATH, content=body, headers=headers), 426, SPEC_VERSION)


def test_info_describes_the_miner_to_registered_callers_only(s: Served) -> None:
    response = get_info(s.client, s.net.callers["validator"], s.net.miner_hotkey)
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["hotkey"] == s.net.miner_hotkey
    assert info["model_id"] == "test/passthrough"
    assert info["sample_rate"] == 32_000
    assert info["queue_depth"] == 0
    refused = get_info(s.client, s.net.callers["stranger"], s.net.miner_hotkey)
    assert refused.status_code == 403


def test_two_miner_workers_sharing_redis_refuse_a_replay_across_workers(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    import os

    import redis

    url = os.environ.get("TUNEFORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {url}; set TUNEFORGE_TEST_REDIS_URL to run this test")
    net = make_net(tmp_path_factory.mktemp("redis-miner"))
    validator = net.add_caller("validator")
    backend = CountingBackend()
    with (
        serve_app(net.app(backend, redis_url=url)) as first,
        serve_app(net.app(backend, redis_url=url)) as second,
    ):
        body = synapse_body()
        headers = signed_headers(validator, net.miner_hotkey, body)
        assert httpx.post(first + GENERATE_PATH, content=body, headers=headers).status_code == 200
        replay = httpx.post(second + GENERATE_PATH, content=body, headers=headers)
    assert replay.status_code == 401
    assert "replayed" in replay.json()["detail"]
    assert backend.calls == 1


def test_unreachable_replay_store_refuses_503_instead_of_skipping_replay_checks(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from tests.helpers.miner_server import free_port

    net = make_net(tmp_path_factory.mktemp("no-redis"))
    validator = net.add_caller("validator")
    backend = CountingBackend()
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with serve_app(net.app(backend, redis_url=dead_redis)) as url, httpx.Client(base_url=url) as c:
        response = post_generate(c, validator, net.miner_hotkey, synapse_body())
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert backend.calls == 0
