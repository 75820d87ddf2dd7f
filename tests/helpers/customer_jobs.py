"""Play the validator's part of a customer job over the real API (claim, upload, deliver)."""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

import httpx
from bittensor.sp_core import Keypair

from tests.helpers.api_server import signed_request, wav_bytes

MINER = Keypair.create_from_uri("//ReturningMiner").ss58_address
_freqs = itertools.count(300)
_claimed: set[str] = set()  # a claim leases every queued job, not only the one asked for


def complete(
    client: httpx.Client,
    validator: Any,
    request_id: str,
    scores: list[float],
    seconds: float = 0.25,
    freqs: list[float] | None = None,
) -> list[str]:
    """Claim every queued job, deliver `scores` tracks for `request_id` (fresh audio each)."""
    body = json.dumps({"max_jobs": 50}).encode()
    claimed = signed_request(client, validator, "POST", "/api/v1/validator/jobs/claim", body)
    _claimed.update(j["request_id"] for j in claimed.json()["jobs"])
    assert request_id in _claimed
    tracks = []
    for i, score in enumerate(scores):
        freq = freqs[i] if freqs is not None else next(_freqs)
        audio = wav_bytes(seconds=seconds, freq=freq)
        digest = hashlib.sha256(audio).hexdigest()
        put = signed_request(client, validator, "PUT", f"/api/v1/validator/audio/{digest}", audio)
        assert put.status_code in (200, 201), put.text
        tracks.append(
            {
                "miner_uid": 7,
                "miner_hotkey": MINER,
                "final_score": score,
                "composite": score,
                "score_breakdown": {"clap": score},
                "penalties": {"duration_penalty": 1.0},
                "audio_sha256": digest,
                "duration_seconds": seconds,
                "sample_rate": 32000,
            }
        )
    path = f"/api/v1/validator/jobs/{request_id}/result"
    done = signed_request(client, validator, "POST", path, json.dumps({"tracks": tracks}).encode())
    assert done.status_code == 200, done.text
    return done.json()["track_ids"]
