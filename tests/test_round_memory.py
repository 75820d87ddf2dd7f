"""A validator round holds each answer as its WAV bytes until it is scored, and the copy check
uses the fingerprints the scoring passes computed instead of decoding every answer again (D48)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from tests.helpers import signals
from tests.helpers.clip_scores import passing_clip_score
from tests.helpers.validator_net import make_validator_net, run_one_round, synth_miners
from tuneforge.core.audio import WavAudio, decode_wav, encode_wav
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring import fingerprint as fp
from tuneforge.scoring.base import ClipScore, Submission
from tuneforge.scoring.engine import ScoredRound, ScoringEngine
from tuneforge.scoring.history import InMemoryHistory
from tuneforge.scoring.memory import RoundMemory
from tuneforge.scoring.shared import Peek
from tuneforge.validator.query import QueryOutcome

CHALLENGE = MusicGenerationSynapse(prompt="calm piano", tempo_bpm=100, duration_seconds=4.0)
LIMITS = {"max_bytes": 8 * 1024 * 1024, "max_seconds": 60.0}


def _wav(seconds: float = 4.0) -> bytes:
    return encode_wav(signals.tonal_piece("C major", tempo_bpm=100, seconds=seconds))


def test_a_checked_wav_holds_no_samples_and_decodes_to_exactly_what_was_checked() -> None:
    wav = _wav()
    held = WavAudio.checked(wav, **LIMITS)
    assert not any(isinstance(value, np.ndarray) for value in vars(held).values())
    assert held.duration_seconds == decode_wav(wav).duration_seconds
    assert held.decode().samples.tobytes() == decode_wav(wav, **LIMITS).samples.tobytes()


def test_an_engine_scores_encoded_answers_exactly_like_decoded_ones() -> None:
    wav = _wav()
    engine = ScoringEngine.create(InMemoryHistory(), None)
    encoded = engine.score(CHALLENGE, [Submission("hk", WavAudio.checked(wav, **LIMITS), 1.0)])
    plain = engine.score(CHALLENGE, [Submission("hk", decode_wav(wav, **LIMITS), 1.0)])
    ours, theirs = encoded.scores[0].to_dict(), plain.scores[0].to_dict()
    ours.pop("timings_ms"), theirs.pop("timings_ms")
    assert ours == theirs and encoded.scores[0].error is None
    [mine], [other] = encoded.fingerprints, plain.fingerprints
    assert mine is not None and other is not None and mine.tobytes() == other.tobytes()


class _FingerprintingScorer:
    """A scoring engine whose passes fingerprinted the clips with known values."""

    def __init__(self, fingerprints: list[np.ndarray | None]) -> None:
        self.fingerprints = fingerprints
        self.audio_types: list[type] = []

    def start_first_pass(self, audio: WavAudio) -> Future[Peek] | None:
        return None

    def score(
        self,
        challenge: MusicGenerationSynapse,
        submissions: list[Submission],
        started: Mapping[int, Future[Peek]] | None = None,
    ) -> ScoredRound:
        self.audio_types = [type(s.audio) for s in submissions]
        scores = [passing_clip_score() for _ in submissions]
        return ScoredRound(scores, RoundMemory(), self.fingerprints)


def test_the_round_publishes_the_fingerprints_its_scoring_passes_computed(tmp_path: Path) -> None:
    known = np.arange(32 * 40, dtype=np.uint8).reshape(32, 40) % 200
    scorer = _FingerprintingScorer([known, None])
    net = make_validator_net(tmp_path)
    loop, state, client = net.build(net.settings(), engine_factory=lambda *_: scorer)
    wav = _wav()
    outcomes = [
        QueryOutcome(uid=1, hotkey="hk-a", audio=WavAudio.checked(wav, **LIMITS), wav=wav),
        QueryOutcome(uid=2, hotkey="hk-b", code="timeout", reason="no answer"),
    ]

    async def go() -> tuple[list[ClipScore], list[str | None], RoundMemory]:
        try:
            return await loop.runner.score_with_memory(CHALLENGE, outcomes, "round")
        finally:
            await client.aclose()

    _, fingerprints, _ = asyncio.run(go())
    state.close()
    assert scorer.audio_types == [WavAudio, type(None)]  # the engine got the bytes, not samples
    assert fingerprints == [fp.encode(known), None]


class _RecordingEngine(ScoringEngine):
    """The real engine, noting which first passes a round started before it scored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[str] = []
        self.started_for: list[int] = []

    def start_first_pass(self, audio: WavAudio | Any) -> Future[Peek] | None:
        self.events.append("start")
        return super().start_first_pass(audio)

    def score(
        self,
        challenge: MusicGenerationSynapse,
        submissions: list[Submission],
        started: Mapping[int, Future[Peek]] | None = None,
    ) -> ScoredRound:
        self.events.append("score")
        self.started_for = sorted(started or {})
        return super().score(challenge, submissions, started)


def test_a_round_starts_each_answers_first_pass_as_it_arrives(tmp_path: Path) -> None:
    net = make_validator_net(tmp_path)
    engines: list[_RecordingEngine] = []

    def factory(history: Any, models: Any) -> _RecordingEngine:
        engines.append(_RecordingEngine.create(history, models))
        return engines[-1]

    with synth_miners(net, 2):
        loop, state, client = net.build(net.settings(max_rounds=1), engine_factory=factory)

        run_one_round(loop, client)
        state.close()
    [engine] = engines
    engine.close()
    report = loop.last_report
    assert report is not None and [s.error for s in report.scores] == [None, None]
    # Both answers' first passes began before the round was scored, and scoring used them.
    assert engine.events == ["start", "start", "score"]
    assert engine.started_for == [0, 1]
