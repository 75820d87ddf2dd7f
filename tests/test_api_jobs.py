"""Customer jobs end to end: generate -> claim (lease) -> upload WAV -> result -> download;
lease expiry, deadline expiry and refunds."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import httpx
import pytest
from bittensor.sp_core import Keypair

from tests.helpers.api_server import (
    Neurons,
    ServerThread,
    bearer,
    make_chain,
    make_settings,
    new_customer,
    postgres_schema_url,
    running_api,
    signed_request,
    wav_bytes,
)
from tuneforge.api.models import utcnow
from tuneforge.api.settings import ApiSettings
from tuneforge.auth.hotkey import sign_hotkey_headers
from tuneforge.chain.local import LocalChain

MINER = Keypair.create_from_uri("//JobsMiner").ss58_address
SECOND_VALIDATOR = Keypair.create_from_uri("//JobsValidator2")


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request, tmp_path) -> Iterator[tuple[ServerThread, ApiSettings, Neurons]]:
    """The same job lifecycle on both databases (leases use FOR UPDATE SKIP LOCKED on PG)."""
    chain_path, neurons = make_chain(tmp_path)
    chain = LocalChain(chain_path)
    chain.register(SECOND_VALIDATOR.ss58_address, stake=500.0, validator_permit=True)
    chain.close()
    with ExitStack() as stack:
        extra = {}
        if request.param == "postgresql":
            extra["database_url"] = stack.enter_context(postgres_schema_url())
        settings = make_settings(tmp_path, chain_path, job_lease_s=60, job_deadline_s=600, **extra)
        server = stack.enter_context(running_api(settings))
        yield server, settings, neurons


@pytest.fixture()
def client(api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api[0].url, timeout=10) as http:
        yield http


def claim(client: httpx.Client, keypair: Any, max_jobs: int = 5) -> list[dict[str, Any]]:
    body = json.dumps({"max_jobs": max_jobs}).encode()
    response = signed_request(client, keypair, "POST", "/api/v1/validator/jobs/claim", body)
    assert response.status_code == 200, response.text
    return response.json()["jobs"]


def track(audio: bytes, score: float = 0.8) -> dict[str, Any]:
    return {
        "miner_uid": 7,
        "miner_hotkey": MINER,
        "final_score": score,
        "composite": score,
        "score_breakdown": {"clap": 0.7},
        "penalties": {"duration_penalty": 1.0},
        "generation_ms": 900,
        "audio_sha256": hashlib.sha256(audio).hexdigest(),
        "duration_seconds": 0.25,
        "sample_rate": 32000,
    }


def deliver(
    client: httpx.Client, keypair: Any, request_id: str, body: dict[str, Any]
) -> httpx.Response:
    path = f"/api/v1/validator/jobs/{request_id}/result"
    return signed_request(client, keypair, "POST", path, json.dumps(body).encode())


def credits(client: httpx.Client, key: str) -> int:
    return client.get("/api/v1/account/me", headers=bearer(key)).json()["credits"]


def generate(client: httpx.Client, key: str, **fields: Any) -> str:
    response = client.post(
        "/api/v1/music/generate",
        json={"prompt": "a calm piano piece", **fields},
        headers=bearer(key),
    )
    assert response.status_code == 201
    return response.json()["request_id"]


def test_a_customer_seed_is_refused_with_the_reason_and_nothing_is_charged(client, api) -> None:
    _, key = new_customer(api[1], credits=20)
    response = client.post(
        "/api/v1/music/generate", json={"prompt": "a calm piano piece", "seed": 7},
        headers=bearer(key),
    )  # fmt: skip
    assert response.status_code == 400
    assert "seed" in response.json()["detail"] and "own seed" in response.json()["detail"]
    assert credits(client, key) == 20 and claim(client, api[2].validator) == []
    assert generate(client, key, seed=None)  # null, as in API.md's example, is accepted


def test_a_job_is_claimed_delivered_and_downloaded_by_its_owner_only(client, api) -> None:
    neurons = api[2]
    _, key = new_customer(api[1], credits=20)
    _, other_key = new_customer(api[1])
    request_id = generate(client, key, genre="jazz", duration_seconds=9)

    jobs = claim(client, neurons.validator)
    assert [j["request_id"] for j in jobs] == [request_id]
    challenge = jobs[0]["challenge"]
    assert challenge["prompt"] == "a calm piano piece" and challenge["genre"] == "jazz"
    assert challenge["challenge_id"].startswith("ch_") and challenge["duration_seconds"] == 9
    assert claim(client, neurons.validator) == []  # leased, not handed out twice
    status = client.get(f"/api/v1/music/status/{request_id}", headers=bearer(key)).json()
    assert status["status"] == "processing"

    audio = wav_bytes(freq=220)
    digest = hashlib.sha256(audio).hexdigest()
    missing = deliver(client, neurons.validator, request_id, {"tracks": [track(audio)]})
    assert missing.status_code == 400 and digest in missing.json()["detail"]

    upload_path = f"/api/v1/validator/audio/{digest}"
    # Signed over other bytes than the path names: refused before the body is read.
    wrong = signed_request(client, neurons.validator, "PUT", upload_path, wav_bytes(freq=221))
    assert wrong.status_code == 401
    # Signed over the path's hash, other bytes sent: refused once they hash differently.
    swapped = client.put(
        upload_path,
        content=wav_bytes(freq=221),
        headers=sign_hotkey_headers(neurons.validator, "PUT", upload_path, audio),
    )
    assert swapped.status_code == 409
    fake = b"x" * 100
    not_wav = signed_request(
        client,
        neurons.validator,
        "PUT",
        f"/api/v1/validator/audio/{hashlib.sha256(fake).hexdigest()}",
        fake,
    )
    assert not_wav.status_code == 400
    assert signed_request(client, neurons.validator, "PUT", upload_path, audio).status_code == 201

    stolen = deliver(client, SECOND_VALIDATOR, request_id, {"tracks": [track(audio)]})
    assert stolen.status_code == 409
    done = deliver(client, neurons.validator, request_id, {"tracks": [track(audio)]})
    assert done.status_code == 200 and done.json()["status"] == "completed"
    retry = deliver(client, neurons.validator, request_id, {"tracks": [track(audio)]})
    assert retry.json()["track_ids"] == done.json()["track_ids"]

    status = client.get(f"/api/v1/music/status/{request_id}", headers=bearer(key)).json()
    assert status["status"] == "completed" and status["completed_at"]
    (delivered,) = status["tracks"]
    assert delivered["score"] == 0.8 and delivered["score_breakdown"] == {"clap": 0.7}
    assert delivered["penalties"] == {"duration_penalty": 1.0}
    assert delivered["miner_hotkey"] == MINER and delivered["sample_rate"] == 32000
    download = client.get(delivered["audio_url"], headers=bearer(key))
    assert download.status_code == 200 and download.content == audio
    assert client.get(delivered["audio_url"], headers=bearer(other_key)).status_code == 404
    assert signed_request(client, neurons.reader, "GET", delivered["audio_url"]).status_code == 404
    me = client.get("/api/v1/account/me", headers=bearer(key)).json()
    assert me["credits"] == 17 and me["usage"]["tracks_generated"] == 1
    assert me["usage"]["seconds_generated"] == 0.25
    assert deliver(client, neurons.validator, "req_unknown", {"tracks": []}).status_code == 404


def test_a_failed_job_is_refunded_once(client, api) -> None:
    neurons = api[2]
    _, key = new_customer(api[1], credits=10)
    request_id = generate(client, key)
    assert credits(client, key) == 5
    claim(client, neurons.validator)
    failed = deliver(client, neurons.validator, request_id, {"error": "all miners timed out"})
    assert failed.status_code == 200 and failed.json()["status"] == "failed"
    assert credits(client, key) == 10
    again = deliver(client, neurons.validator, request_id, {"error": "again"})
    assert again.status_code == 409
    assert credits(client, key) == 10
    status = client.get(f"/api/v1/music/status/{request_id}", headers=bearer(key)).json()
    assert status["status"] == "failed" and status["error"] == "all miners timed out"
    assert status["refunded"] is True


def test_a_lapsed_lease_returns_the_job_to_the_queue(client, api) -> None:
    neurons = api[2]
    jobs = api[0].app.state.ctx.jobs
    _, key = new_customer(api[1], credits=10)
    request_id = generate(client, key)
    assert [j["request_id"] for j in claim(client, neurons.validator)] == [request_id]
    report = jobs.sweep(utcnow() + timedelta(seconds=61))
    assert (report.requeued, report.expired) == (1, 0)
    assert [j["request_id"] for j in claim(client, SECOND_VALIDATOR)] == [request_id]
    # the first validator lost the lease
    late = deliver(client, neurons.validator, request_id, {"error": "late"})
    assert late.status_code == 409
    assert credits(client, key) == 5


def test_a_job_past_its_deadline_fails_and_is_refunded_exactly_once(client, api) -> None:
    neurons = api[2]
    jobs = api[0].app.state.ctx.jobs
    _, key = new_customer(api[1], credits=10)
    leased = generate(client, key, duration_seconds=3)  # oldest: the one claimed below
    queued = generate(client, key, duration_seconds=3)
    claim(client, neurons.validator, max_jobs=1)
    assert credits(client, key) == 8
    later = utcnow() + timedelta(seconds=601)
    assert jobs.sweep(later).expired == 2
    assert jobs.sweep(later).expired == 0
    assert credits(client, key) == 10
    for request_id in (queued, leased):
        status = client.get(f"/api/v1/music/status/{request_id}", headers=bearer(key)).json()
        assert status["status"] == "failed" and "expired" in status["error"]
    assert claim(client, neurons.validator) == []
    health = client.get("/api/v1/health").json()
    assert health["queue_depth"] == 0


def test_the_background_sweeper_expires_and_refunds_without_being_called(tmp_path) -> None:
    chain_path, _ = make_chain(tmp_path)
    settings = make_settings(tmp_path, chain_path, job_deadline_s=0.5, sweeper_interval_s=0.2)
    with running_api(settings) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        _, key = new_customer(settings, credits=5)
        request_id = generate(http, key)
        assert credits(http, key) == 0
        deadline = time.monotonic() + 10
        while credits(http, key) != 5:
            assert time.monotonic() < deadline, "the sweeper never refunded the expired job"
            time.sleep(0.1)
        status = http.get(f"/api/v1/music/status/{request_id}", headers=bearer(key)).json()
        assert status["status"] == "failed" and status["refunded"] is True
