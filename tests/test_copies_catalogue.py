"""The public catalogue check against a fake AcoustID service on loopback: a known recording is
penalised with the recording named, lookups are rate-limited and cached, a failing catalogue
never lowers a score and says so, and the check is one consensus row — inactive network-wide
until a network turns it on, and then a validator of a real network needs a key to start."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.helpers import signals
from tests.helpers.api_server import ServerThread, free_port
from tuneforge.core.audio import Audio
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.generation.synth import SynthBackend
from tuneforge.scoring import weights
from tuneforge.scoring.base import ClipScore, Penalty
from tuneforge.scoring.registry import load
from tuneforge.validator import run as validator_run
from tuneforge.validator.catalogue import (
    CatalogueClient,
    CatalogueUnavailable,
    best_recording,
    chromaprint,
)
from tuneforge.validator.copies import CopyChecker, apply_verdicts

KEY = "test-application-key"
TITLE = "Known Song"


def _piece(seed: int) -> Audio:
    challenge = MusicGenerationSynapse(
        prompt="test", key="D minor", tempo_bpm=100, duration_seconds=8, seed=seed
    )
    return SynthBackend().generate(challenge)


class FakeAcoustId:
    """AcoustID's lookup endpoint over one known recording: a submitted chromaprint matches when
    most of its 32-bit frames agree with the recording's bit for bit (as the real service
    scores)."""

    def __init__(self, known: Audio) -> None:
        import chromaprint as cp

        self._decode = cp.decode_fingerprint
        self.known = self._frames(chromaprint(known)[1])
        self.calls: list[float] = []
        self.mode = "ok"
        self.app = FastAPI()
        self.app.post("/v2/lookup")(self.lookup)

    def _frames(self, printed: str) -> np.ndarray:
        return np.array(self._decode(printed.encode("ascii"))[0], dtype=np.uint32)

    async def lookup(self, request: Request) -> Response:
        self.calls.append(time.monotonic())
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if self.mode == "error" or form.get("client") != KEY:
            return JSONResponse({"status": "error", "error": {"message": "invalid API key"}}, 400)
        if self.mode == "huge":
            return Response(b"[" + b"0," * 400_000 + b"0]", media_type="application/json")
        frames = self._frames(form["fingerprint"])
        n = min(len(frames), len(self.known))
        same_bits = 32 - np.bitwise_count(frames[:n] ^ self.known[:n]).mean() if n else 0.0
        score = float(same_bits / 32.0)
        results = []
        if score > 0.85:
            recording = {"id": "rec-1", "title": TITLE, "artists": [{"name": "Some Band"}]}
            results.append({"id": "aid-1", "score": round(score, 3), "recordings": [recording]})
        return JSONResponse({"status": "ok", "results": results})


@pytest.fixture(scope="module")
def known() -> Audio:
    return _piece(3)


@pytest.fixture(scope="module")
def catalogue(known: Audio) -> Iterator[tuple[FakeAcoustId, str]]:
    fake = FakeAcoustId(known)
    with ServerThread(fake.app) as server:
        yield fake, f"http://127.0.0.1:{server.port}/v2/lookup"


def _clip_score() -> ClipScore:
    return ClipScore(
        final_score=0.8,
        composite=0.8,
        score_breakdown={"clap": 0.8},
        penalties={"fingerprint_penalty": 1.0, "catalogue_penalty": 1.0},
        effective_weights={"clap": 1.0},
        reasons={"fingerprint_penalty": "", "catalogue_penalty": ""},
        details={},
        timings_ms={},
    )


async def _no_fingerprints(count: int) -> list[str | None]:
    return [None] * count


def _check(url: str, audios: list[Audio | None], **kwargs: Any) -> list[Any]:
    async def run() -> list[Any]:
        client = CatalogueClient(KEY, url, **kwargs)
        try:
            return await CopyChecker(None, client).check(_no_fingerprints(len(audios)), audios)
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_a_known_recording_is_penalised_with_the_recording_named(
    catalogue: tuple[FakeAcoustId, str], known: Audio
) -> None:
    fake, url = catalogue
    quieter = signals.scaled(known, 0.5)
    verdicts = _check(url, [quieter, _piece(4)])
    scores = [_clip_score(), _clip_score()]
    apply_verdicts(scores, verdicts)
    copied, fresh = scores
    assert copied.final_score == 0.0 and copied.penalties["catalogue_penalty"] == 0.0
    assert TITLE in copied.reasons["catalogue_penalty"]
    assert "Some Band" in copied.reasons["catalogue_penalty"]
    assert copied.details["catalogue_penalty"]["recording"]["recording_id"] == "rec-1"
    assert fresh.final_score == 0.8 and fresh.penalties["catalogue_penalty"] == 1.0


def test_lookups_are_rate_limited_and_cached(catalogue: tuple[FakeAcoustId, str]) -> None:
    fake, url = catalogue
    clips = [_piece(20 + i) for i in range(4)]
    before = len(fake.calls)
    _check(url, clips, per_second=3.0)
    times = fake.calls[before:]
    assert len(times) == 4
    # 4 requests at 3/s span 1 s as sent; the server sees them with scheduling jitter on a
    # loaded machine, so allow 0.2 s of it (unlimited, they would arrive within milliseconds).
    assert times[-1] - times[0] >= 3 / 3.0 - 0.2

    async def twice() -> int:
        client = CatalogueClient(KEY, url)
        try:
            await client.check(clips[:2])
            first = len(fake.calls)
            await client.check(clips[:2])  # the same audio again: answered from the cache
            return len(fake.calls) - first
        finally:
            await client.aclose()

    assert asyncio.run(twice()) == 0


@pytest.mark.parametrize("mode", ["error", "huge", "unreachable", "slow"])
def test_a_failing_catalogue_never_lowers_a_score_and_says_so(
    catalogue: tuple[FakeAcoustId, str], known: Audio, mode: str
) -> None:
    fake, url = catalogue
    fake.mode = mode
    try:
        if mode == "unreachable":
            url = f"http://127.0.0.1:{free_port()}/v2/lookup"
        wait = {"wait_s": 0.001} if mode == "slow" else {}
        verdicts = _check(url, [known], **wait)
    finally:
        fake.mode = "ok"
    scores = [_clip_score()]
    apply_verdicts(scores, verdicts)
    assert scores[0].final_score == 0.8 and scores[0].penalties["catalogue_penalty"] == 1.0
    assert "catalogue not consulted" in scores[0].reasons["catalogue_penalty"]


@pytest.mark.parametrize(
    "answer",
    [
        None,
        [],
        {"status": "error"},
        {"status": "ok"},
        {"status": "ok", "results": "x"},
    ],
)
def test_answers_that_are_not_lookup_answers_are_refused(answer: Any) -> None:
    with pytest.raises(CatalogueUnavailable):
        best_recording(answer)


def test_hostile_lookup_fields_are_bounded_and_weak_matches_ignored() -> None:
    weak = {"status": "ok", "results": [{"id": "a", "score": 0.5, "recordings": []}]}
    assert best_recording(weak) is None
    odd = {
        "status": "ok",
        "results": [
            {"id": "x" * 500, "score": "1e9"},
            {"id": "<b>aid</b>", "score": 0.95, "recordings": [{"title": "T\x00" * 300}]},
        ],
    }
    found = best_recording(odd)
    assert found is not None and found.score == 0.95
    assert "<" not in found.acoustid and len(found.title) <= 120 and "\x00" not in found.title


def test_the_catalogue_row_is_inactive_network_wide_until_a_network_turns_it_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    row = weights.CHECKS[weights.CATALOGUE_PENALTY]
    assert not row.active and "AcoustID" in row.inactive
    assert weights.CATALOGUE_PENALTY not in weights.ACTIVE_PENALTIES
    # off: nobody looks anything up, key or not
    assert validator_run.check_catalogue("finney", KEY, False) is False
    monkeypatch.setitem(
        weights.CHECKS, weights.CATALOGUE_PENALTY, dataclasses.replace(row, inactive="")
    )
    assert validator_run.check_catalogue("finney", KEY, False) is True
    with pytest.raises(validator_run.ValidatorStartupError, match="acoustid_key"):
        validator_run.check_catalogue("test", "", False)
    assert validator_run.check_catalogue("localnet", "", False) is False
    # turned on, the engine runs its side of the row (1.0; the validator zeroes a match)
    loaded = load(dataclasses.replace(row, inactive=""))
    assert isinstance(loaded.instance, Penalty) and loaded.instance.name == row.name
