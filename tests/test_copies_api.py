"""The network-wide copy index over real HTTP: published fingerprints are indexed, a disguised
copy is matched to the first publisher's track and miner, hostile bodies are refused; the
validator's checker turns a match into a zero fingerprint penalty naming the original, and says
so when the index cannot be asked."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from bittensor.sp_core import Keypair

from tests.helpers import signals
from tests.helpers.api_server import (
    Neurons,
    ServerThread,
    free_port,
    make_chain,
    make_settings,
    running_api,
    signed_request,
)
from tests.helpers.clip_scores import passing_clip_score
from tuneforge.core.audio import Audio
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.generation.synth import SynthBackend
from tuneforge.scoring import fingerprint as fp
from tuneforge.scoring.clip import Clip
from tuneforge.validator.api_client import ApiClient
from tuneforge.validator.copies import CopyChecker, apply_verdicts

ORIGINAL_MINER = Keypair.create_from_uri("//CopiesOriginal").ss58_address
COPIER = Keypair.create_from_uri("//CopiesCopier").ss58_address
MATCH = "/api/v1/fingerprints/match"


def _piece(seed: int, key: str, tempo: int) -> Audio:
    challenge = MusicGenerationSynapse(
        prompt="test", key=key, tempo_bpm=tempo, duration_seconds=20, seed=seed
    )
    return SynthBackend().generate(challenge)


def _copy_of(audio: Audio) -> Audio:
    """An excerpt from 2.3 s on, quieter, with noise at 20 dB SNR."""
    start = int(2.3 * audio.sample_rate)
    excerpt = Audio(audio.samples[:, start : start + 14 * audio.sample_rate], audio.sample_rate)
    return signals.scaled(signals.with_noise(excerpt, 20), 0.6)


@pytest.fixture(scope="module")
def pieces() -> dict[str, Audio]:
    original = _piece(5, "C major", 120)
    return {
        "original": original,
        "other": _piece(6, "F# minor", 84),
        "copy": _copy_of(original),
        "fresh": _piece(7, "E minor", 100),
    }


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Neurons]]:
    tmp = tmp_path_factory.mktemp("api_copies")
    chain_path, neurons = make_chain(tmp)
    with running_api(make_settings(tmp, chain_path)) as server:
        yield server, neurons


@pytest.fixture()
def client(api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api[0].url, timeout=60) as http:
        yield http


def _encoded(audio: Audio) -> str:
    return fp.encode(fp.fingerprint(Clip(audio)))


def _result(track_id: str, miner: str, audio: Audio, fingerprint: str | None) -> dict[str, Any]:
    result = {
        "track_id": track_id,
        "miner_uid": 3,
        "miner_hotkey": miner,
        "final_score": 0.5,
        "composite": 0.5,
        "audio_sha256": hashlib.sha256(audio.samples.tobytes()).hexdigest(),
        "duration_seconds": audio.duration_seconds,
        "sample_rate": audio.sample_rate,
    }
    if fingerprint is not None:
        result["fingerprint"] = fingerprint
    return result


def _publish(client: httpx.Client, keypair: Any, results: list[dict[str, Any]]) -> httpx.Response:
    body = {"round_id": str(uuid.uuid4()), "block": 1, "challenge": {}, "results": results}
    return signed_request(client, keypair, "POST", "/api/v1/scores", json.dumps(body).encode())


def _match(client: httpx.Client, keypair: Any, body: dict[str, Any]) -> httpx.Response:
    return signed_request(client, keypair, "POST", MATCH, json.dumps(body).encode())


@pytest.fixture(scope="module")
def published(api, pieces: dict[str, Audio]) -> dict[str, str]:
    """The original and another piece, published by the validator; then a later round in which
    a second miner's copy of the original is published too (it must not become the original)."""
    server, neurons = api
    ids = {"original": "trk_copies_original", "other": "trk_copies_other"}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        first = [
            _result(ids[name], ORIGINAL_MINER, pieces[name], _encoded(pieces[name]))
            for name in ("original", "other")
        ]
        assert _publish(http, neurons.validator, first).status_code == 201
        later = [_result("trk_copies_later", COPIER, pieces["copy"], _encoded(pieces["copy"]))]
        assert _publish(http, neurons.validator, later).status_code == 201
    return ids


def test_a_disguised_copy_is_matched_to_the_first_publishers_track_and_miner(
    client: httpx.Client, api, pieces: dict[str, Audio], published: dict[str, str]
) -> None:
    _, neurons = api
    copy = _copy_of(pieces["original"])
    body = {
        "fingerprints": [
            {"id": "copy", "fingerprint": _encoded(copy)},
            {"id": "fresh", "fingerprint": _encoded(pieces["fresh"])},
        ]
    }
    response = _match(client, neurons.validator, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["indexed_tracks"] >= 3
    by_id = {r["id"]: r["matches"] for r in answer["results"]}
    assert by_id["fresh"] == []
    first = by_id["copy"][0]
    assert first["track_id"] == published["original"]
    assert first["miner_hotkey"] == ORIGINAL_MINER
    assert first["validator_hotkey"] == neurons.validator.ss58_address
    assert first["similarity"] >= fp.WINDOW_MATCH and first["covered_seconds"] > 7
    assert "trk_copies_later" in [m["track_id"] for m in by_id["copy"]]  # listed after


def test_matching_needs_a_validator_permit(client: httpx.Client, api, published) -> None:
    _, neurons = api
    body = {"fingerprints": [{"id": "a", "fingerprint": fp.encode(np.zeros((fp.BANDS, 4)))}]}
    assert _match(client, neurons.reader, body).status_code == 403
    assert _match(client, neurons.stranger, body).status_code in (401, 403)


@pytest.mark.parametrize(
    "body",
    [
        {"fingerprints": [{"id": "a", "fingerprint": "not-a-fingerprint"}]},
        {"fingerprints": [{"id": "../x", "fingerprint": fp.encode(np.zeros((fp.BANDS, 4)))}]},
        {"fingerprints": []},
        {"fingerprints": [{"id": f"c{i}", "fingerprint": "AQ=="} for i in range(257)]},
        {"fingerprints": [{"id": "a", "fingerprint": "AQ==", "extra": 1}]},
    ],
)
def test_hostile_match_bodies_are_refused(client: httpx.Client, api, body: dict) -> None:
    _, neurons = api
    assert _match(client, neurons.validator, body).status_code == 400


def test_a_publication_with_a_malformed_fingerprint_is_refused(
    client: httpx.Client, api, pieces: dict[str, Audio]
) -> None:
    _, neurons = api
    bad = _result("trk_copies_bad", ORIGINAL_MINER, pieces["fresh"], "AAAA" * 10)
    assert _publish(client, neurons.validator, [bad]).status_code == 400


async def _fingerprints(clips: list[Audio]) -> list[str | None]:
    """What the engine's scoring passes hand the copy check for these clips."""
    return [fp.encode(fp.fingerprint(Clip(clip))) for clip in clips]


def test_validator_check_zeroes_a_copy_and_names_the_original(
    api, pieces: dict[str, Audio], published: dict[str, str]
) -> None:
    server, neurons = api

    async def check() -> list[Any]:
        client = ApiClient(server.url, neurons.validator, timeout_s=60)
        try:
            clips = [_copy_of(pieces["original"]), pieces["fresh"]]
            return await CopyChecker(client).check(_fingerprints(clips), clips)
        finally:
            await client.aclose()

    verdicts = asyncio.run(check())
    scores = [passing_clip_score(), passing_clip_score()]
    apply_verdicts(scores, verdicts)
    copied, fresh = scores
    assert copied.final_score == 0.0 and copied.penalties["fingerprint_penalty"] == 0.0
    reason = copied.reasons["fingerprint_penalty"]
    assert published["original"] in reason and ORIGINAL_MINER in reason
    assert fresh.final_score == 0.8 and fresh.penalties["fingerprint_penalty"] == 1.0
    assert all(v.fingerprint for v in verdicts)  # published with the tracks


def test_unreachable_index_is_said_in_the_reason_and_never_raises_a_score(
    pieces: dict[str, Audio],
) -> None:
    async def check() -> list[Any]:
        client = ApiClient(f"http://127.0.0.1:{free_port()}", Keypair.create_from_uri("//V"), 2)
        try:
            return await CopyChecker(client).check(
                _fingerprints([pieces["fresh"]]), [pieces["fresh"]]
            )
        finally:
            await client.aclose()

    verdicts = asyncio.run(check())
    scores = [passing_clip_score()]
    apply_verdicts(scores, verdicts)
    assert scores[0].final_score == 0.8
    assert "API unreachable" in scores[0].reasons["fingerprint_penalty"]
    assert "local history only" in scores[0].reasons["fingerprint_penalty"]
