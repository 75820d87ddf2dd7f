"""A validator may reference only audio it uploaded itself for that job or round (issue 11):
one customer's track can never be handed to another customer, nor published as a challenge
track that every neuron may download."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
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
from tuneforge.api.settings import ApiSettings
from tuneforge.chain.local import LocalChain

VALIDATOR_B = Keypair.create_from_uri("//OwnershipValidatorB")
MINER = Keypair.create_from_uri("//OwnershipMiner").ss58_address


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request, tmp_path) -> Iterator[tuple[ServerThread, ApiSettings, Neurons]]:
    chain_path, neurons = make_chain(tmp_path)
    chain = LocalChain(chain_path)
    chain.register(VALIDATOR_B.ss58_address, stake=500.0, validator_permit=True)
    chain.close()
    with ExitStack() as stack:
        extra = {}
        if request.param == "postgresql":
            extra["database_url"] = stack.enter_context(postgres_schema_url())
        settings = make_settings(tmp_path, chain_path, **extra)
        yield stack.enter_context(running_api(settings)), settings, neurons


@pytest.fixture()
def client(api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api[0].url, timeout=20) as http:
        yield http


def sha(audio: bytes) -> str:
    return hashlib.sha256(audio).hexdigest()


def track(audio: bytes) -> dict[str, Any]:
    return {
        "miner_uid": 2,
        "miner_hotkey": MINER,
        "final_score": 0.7,
        "composite": 0.7,
        "audio_sha256": sha(audio),
        "duration_seconds": 0.25,
        "sample_rate": 32000,
    }


def upload_job_audio(client: httpx.Client, keypair: Any, audio: bytes) -> int:
    path = f"/api/v1/validator/audio/{sha(audio)}"
    return signed_request(client, keypair, "PUT", path, audio, "audio/wav").status_code


def job_for(client: httpx.Client, keypair: Any, key: str) -> str:
    generated = client.post(
        "/api/v1/music/generate", json={"prompt": "a private song"}, headers=bearer(key)
    )
    assert generated.status_code == 201
    body = json.dumps({"max_jobs": 1}).encode()
    claimed = signed_request(client, keypair, "POST", "/api/v1/validator/jobs/claim", body)
    (job,) = claimed.json()["jobs"]
    return str(job["request_id"])


def deliver(client: httpx.Client, keypair: Any, request_id: str, audio: bytes) -> httpx.Response:
    body = json.dumps({"tracks": [track(audio)]}).encode()
    path = f"/api/v1/validator/jobs/{request_id}/result"
    return signed_request(client, keypair, "POST", path, body)


def publish(client: httpx.Client, keypair: Any, audio: bytes) -> tuple[httpx.Response, str]:
    track_id = f"trk_{uuid.uuid4().hex[:12]}"
    body = {
        "round_id": str(uuid.uuid4()),
        "block": 7,
        "challenge": {"prompt": "ownership"},
        "results": [{"track_id": track_id, **track(audio)}],
    }
    response = signed_request(client, keypair, "POST", "/api/v1/scores", json.dumps(body).encode())
    return response, track_id


def test_job_results_reference_only_audio_this_validator_uploaded_for_that_job(client, api) -> None:
    neurons = api[2]
    _, key_x = new_customer(api[1])
    _, key_y = new_customer(api[1])
    private = wav_bytes(freq=610)

    job_x = job_for(client, neurons.validator, key_x)
    assert upload_job_audio(client, neurons.validator, private) == 201
    assert deliver(client, neurons.validator, job_x, private).status_code == 200

    # Validator B cannot deliver A's customer audio for B's own job.
    job_y = job_for(client, VALIDATOR_B, key_y)
    stolen = deliver(client, VALIDATOR_B, job_y, private)
    assert stolen.status_code == 403 and "not uploaded by you" in stolen.json()["detail"]
    # ...nor can A hand the same customer's track to another customer.
    job_z = job_for(client, neurons.validator, key_y)
    replayed = deliver(client, neurons.validator, job_z, private)
    assert replayed.status_code == 409 and "another job" in replayed.json()["detail"]

    own = wav_bytes(freq=611)
    assert upload_job_audio(client, VALIDATOR_B, own) == 201
    assert deliver(client, VALIDATOR_B, job_y, own).status_code == 200
    assert deliver(client, neurons.validator, job_z, own).status_code == 403  # B's, not A's
    status = client.get(f"/api/v1/music/status/{job_y}", headers=bearer(key_y)).json()
    assert status["status"] == "completed"
    download = client.get(status["tracks"][0]["audio_url"], headers=bearer(key_y))
    assert download.content == own


def test_a_round_cannot_publish_customer_audio_or_attach_another_validators(client, api) -> None:
    neurons = api[2]
    _, key = new_customer(api[1])
    private = wav_bytes(freq=620)
    job = job_for(client, neurons.validator, key)
    assert upload_job_audio(client, neurons.validator, private) == 201
    assert deliver(client, neurons.validator, job, private).status_code == 200

    for keypair in (VALIDATOR_B, neurons.validator):
        refused, _ = publish(client, keypair, private)
        assert refused.status_code == 409 and "customer" in refused.json()["detail"]

    # A's challenge audio, uploaded by A for A's track.
    challenge = wav_bytes(freq=630)
    published, track_a = publish(client, neurons.validator, challenge)
    assert published.status_code == 201
    path_a = f"/api/v1/scores/audio/{track_a}"
    assert signed_request(client, neurons.validator, "PUT", path_a, challenge).status_code == 201
    # B referencing it is stored, but nothing is attached to B's track until B uploads the bytes.
    published_b, track_b = publish(client, VALIDATOR_B, challenge)
    assert published_b.status_code == 201
    listen_b = f"/api/v1/music/audio/{track_b}.wav"
    assert signed_request(client, neurons.reader, "GET", listen_b).status_code == 404
    # A cannot upload bytes for B's track (it is not A's track).
    path_b = f"/api/v1/scores/audio/{track_b}"
    assert signed_request(client, neurons.validator, "PUT", path_b, challenge).status_code == 404
    assert signed_request(client, VALIDATOR_B, "PUT", path_b, challenge).status_code == 201
    assert signed_request(client, neurons.reader, "GET", listen_b).content == challenge
