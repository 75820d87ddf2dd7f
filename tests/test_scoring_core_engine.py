"""ScoringEngine: round in, ClipScores out — arithmetic, exclusions, failures, history."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import signals
from tuneforge.core.audio import Audio
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring.base import (
    Challenge,
    Penalty,
    RoundContext,
    Scorer,
    ScoreResult,
    ScorerUnavailable,
    Submission,
)
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.engine import ScoringEngine
from tuneforge.scoring.history import InMemoryHistory
from tuneforge.scoring.memory import ClipMemory
from tuneforge.scoring.penalties import ArtifactPenalty, DurationPenalty, FingerprintPenalty
from tuneforge.scoring.registry import Loaded, ScorerSet
from tuneforge.scoring.scorers.production import ProductionScorer
from tuneforge.scoring.scorers.quality import QualityScorer
from tuneforge.scoring.scorers.speed import SpeedScorer
from tuneforge.scoring.weights import PENALTY_NAMES, SCORER_NAMES, SCORER_WEIGHTS

CHALLENGE = MusicGenerationSynapse(
    prompt="calm piano", genre="pop", key="A minor", tempo_bpm=100, duration_seconds=8
)


@pytest.fixture(scope="module")
def piece() -> Audio:
    return signals.tonal_piece("A minor", tempo_bpm=100, seconds=8)


@pytest.fixture(scope="module")
def engine_round(piece: Audio) -> tuple[ScoringEngine, list[Submission], list]:
    engine = ScoringEngine.create(InMemoryHistory())
    submissions = [
        Submission("good", piece, generation_ms=4000.0),
        Submission("silent", signals.silence(8)),
        Submission("noise", signals.white_noise(8)),
        Submission("timeout", None, error="deadline exceeded after 28 s"),
        Submission("tiny", Audio(np.array([0.3], dtype=np.float32), 32000)),
    ]
    return engine, submissions, engine.score_round(CHALLENGE, submissions)


class BrokenScorer(Scorer):
    """A scorer with a bug: it raises on every clip."""

    name = "musicality"

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        raise RuntimeError(f"index {index} out of range")


class NeedsModelScorer(Scorer):
    name = "melody"

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        raise ScorerUnavailable("pitch model missing")


def _engine_with(
    scorers: dict[str, Scorer],
    history: InMemoryHistory,
    penalties: dict[str, Penalty] | None = None,
) -> ScoringEngine:
    loaded = {
        name: Loaded(name, scorers[name]) if name in scorers else Loaded(name, None, "not here")
        for name in SCORER_NAMES
    }
    chosen = {
        "duration_penalty": DurationPenalty(),
        "artifact_penalty": ArtifactPenalty(),
        "fingerprint_penalty": FingerprintPenalty(),
        **(penalties or {}),
    }
    loaded_penalties = {
        name: Loaded(name, chosen[name]) if name in chosen else Loaded(name, None, "no module")
        for name in PENALTY_NAMES
    }
    return ScoringEngine(history, None, ScorerSet(loaded, loaded_penalties))


def test_composite_and_final_follow_the_formula_over_available_scorers(piece: Audio) -> None:
    scorers = {
        "production": ProductionScorer(),
        "quality": QualityScorer(),
        "speed": SpeedScorer(),
        "musicality": BrokenScorer(),
        "melody": NeedsModelScorer(),
    }
    engine = _engine_with(scorers, InMemoryHistory())
    short = signals.shifted(piece, 1.6)  # 6.4 s of 8 s: duration penalty 1 - 0.15/0.45
    (score,) = engine.score_round(CHALLENGE, [Submission("m", short, generation_ms=16000.0)])
    b = score.score_breakdown
    w = SCORER_WEIGHTS
    # The two scorers that raised count with 0 at their full weight: failures close.
    expected = w["production"] * b["production"] + w["quality"] * b["quality"]
    expected += w["speed"] * b["speed"]
    expected /= w["production"] + w["quality"] + w["speed"] + w["musicality"] + w["melody"]
    assert score.composite == pytest.approx(expected, abs=1e-5)
    assert b["speed"] == pytest.approx(0.65)  # 2x real time
    assert score.penalties["duration_penalty"] == pytest.approx(1 - 0.15 / 0.45, abs=1e-3)
    assert score.final_score == pytest.approx(
        score.composite * np.prod([v for v in score.penalties.values() if v is not None]), abs=1e-5
    )
    assert score.effective_weights["production"] == pytest.approx(5 / 24, abs=1e-5)
    assert sum(score.effective_weights.values()) == pytest.approx(1.0, abs=1e-5)

    # a crash on the clip scores 0 with the error as the reason, never a neutral value
    assert b["musicality"] == 0.0 and score.effective_weights["musicality"] > 0.0
    assert score.reasons["musicality"] == "failed: RuntimeError: index 0 out of range"
    assert b["melody"] == 0.0 and score.reasons["melody"] == (
        "failed: ScorerUnavailable: pitch model missing"
    )
    assert score.failures == {
        "musicality": "RuntimeError: index 0 out of range",
        "melody": "ScorerUnavailable: pitch model missing",
    }
    # what was not set up at start-up is null (not zero), weight 0, and the result is degraded
    assert b["clap"] is None and score.effective_weights["clap"] == 0.0
    assert score.reasons["clap"] == "not measured on this validator: not here"
    assert score.penalties["fad_penalty"] is None and score.degraded
    assert score.not_measured["fad_penalty"] == "not measured on this validator: no module"


def test_every_result_reports_all_16_scorers_and_4_penalties(engine_round: tuple) -> None:
    engine, _, scores = engine_round
    assert engine.scorer_names == list(SCORER_NAMES) and engine.penalty_names == list(PENALTY_NAMES)
    for score in scores:
        assert list(score.score_breakdown) == list(SCORER_NAMES)
        assert list(score.penalties) == list(PENALTY_NAMES)
        for value in [*score.score_breakdown.values(), *score.penalties.values()]:
            assert value is None or 0.0 <= value <= 1.0
        assert score.score_breakdown["learned_mos"] is None
        assert score.score_breakdown["preference"] is None
    good = scores[0]
    assert good.final_score > 0.2 and good.error is None
    assert set(good.timings_ms) >= {*SCORER_NAMES, *PENALTY_NAMES, "total"}
    for name, reason in engine.excluded.items():
        assert good.reasons[name] == f"not measured on this validator: {reason}"
        assert good.score_breakdown.get(name, good.penalties.get(name)) is None


def test_silence_and_white_noise_score_about_zero_with_reasons(engine_round: tuple) -> None:
    _, _, scores = engine_round
    silent, noise = scores[1], scores[2]
    assert silent.final_score < 0.01 and "silent" in silent.reasons["artifact_penalty"]
    assert noise.final_score < 0.01 and "noise" in noise.reasons["artifact_penalty"]
    assert noise.score_breakdown["quality"] == 0.0


def test_failed_and_tiny_submissions_get_zero_with_their_reason(engine_round: tuple) -> None:
    _, _, scores = engine_round
    failed, tiny = scores[3], scores[4]
    assert failed.final_score == 0.0 and failed.error == "deadline exceeded after 28 s"
    assert failed.reasons["musicality"] == "no audio: deadline exceeded after 28 s"
    assert failed.score_breakdown["musicality"] == 0.0 and failed.score_breakdown["clap"] is None
    assert tiny.final_score == 0.0 and "shorter than 0.5 s" in (tiny.error or "")


def test_scored_clips_are_remembered_and_a_replay_is_caught_next_round(
    engine_round: tuple, piece: Audio
) -> None:
    engine, _, _ = engine_round
    history = engine.history
    assert len(history.recent_embeddings("good", 10)) >= 1
    assert history.recent_embeddings("timeout", 10) == []  # failures leave no trace
    assert any(hotkey == "good" for hotkey, _ in history.fingerprints(100))
    replay = signals.scaled(signals.shifted(piece, 1.3), 0.7)
    (score,) = engine.score_round(CHALLENGE, [Submission("copycat", replay)])
    assert score.penalties["fingerprint_penalty"] == 0.0 and score.final_score == 0.0
    assert "good" in score.reasons["fingerprint_penalty"]


def test_a_scorer_returning_the_wrong_type_scores_zero(piece: Audio) -> None:
    class Sloppy(Scorer):
        name = "timbral"

        def measure(self, clip: Clip, *_: object) -> ScoreResult:
            return float(np.max(np.abs(clip.y)))  # type: ignore[return-value]

    engine = _engine_with({"timbral": Sloppy(), "quality": QualityScorer()}, InMemoryHistory())
    (score,) = engine.score_round(CHALLENGE, [Submission("m", piece)])
    assert score.reasons["timbral"].startswith("failed: TypeError")
    w = SCORER_WEIGHTS
    expected = w["quality"] * score.score_breakdown["quality"] / (w["quality"] + w["timbral"])
    assert score.composite == pytest.approx(expected, abs=1e-6)


class RaisesOnLoud(Scorer):
    """Crafted to break on one clip only (the loud one), like a miner targeting a check."""

    name = "quality"

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        if float(np.max(np.abs(clip.y))) > 0.5:
            raise FloatingPointError("overflow in a feature")
        return ScoreResult(0.8)


class PenaltyRaisesOnLoud(Penalty):
    name = "artifact_penalty"

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        if float(np.max(np.abs(clip.y))) > 0.5:
            raise ValueError("Input must be finite")
        return ScoreResult(1.0)


def test_a_scorer_that_raises_on_one_clip_scores_it_zero_and_keeps_the_weights(
    piece: Audio,
) -> None:
    other = signals.tonal_piece("D major", tempo_bpm=120, seconds=8)  # not a copy of `piece`
    quiet = Audio(piece.samples * (0.4 / np.abs(piece.samples).max()), piece.sample_rate)
    loud = Audio(other.samples * (0.9 / np.abs(other.samples).max()), other.sample_rate)
    engine = _engine_with({"quality": RaisesOnLoud(), "speed": SpeedScorer()}, InMemoryHistory())
    ok, broken = engine.score_round(
        CHALLENGE,
        [Submission("ok", quiet, generation_ms=1.0), Submission("x", loud, generation_ms=1.0)],
    )
    assert broken.score_breakdown["quality"] == 0.0
    assert broken.reasons["quality"] == "failed: FloatingPointError: overflow in a feature"
    assert broken.effective_weights == ok.effective_weights  # never renormalised per clip
    assert broken.final_score < ok.final_score


def test_a_penalty_that_raises_applies_in_full(piece: Audio) -> None:
    loud = Audio(piece.samples * (0.9 / np.abs(piece.samples).max()), piece.sample_rate)
    engine = _engine_with(
        {"quality": QualityScorer()},
        InMemoryHistory(),
        {"artifact_penalty": PenaltyRaisesOnLoud()},
    )
    (score,) = engine.score_round(CHALLENGE, [Submission("x", loud, generation_ms=1.0)])
    assert score.penalties["artifact_penalty"] == 0.0 and score.final_score == 0.0
    assert score.reasons["artifact_penalty"] == "failed: ValueError: Input must be finite"
    assert score.failures == {"artifact_penalty": "ValueError: Input must be finite"}


def test_a_clip_that_breaks_recording_scores_zero_and_the_round_completes(
    piece: Audio, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine_with({"quality": QualityScorer()}, InMemoryHistory())
    taken = engine._memory

    def poisoned(clip: Clip, hotkey: str) -> ClipMemory:
        if hotkey == "poison":
            raise ValueError("Input must be finite")
        return taken(clip, hotkey)

    monkeypatch.setattr(engine, "_memory", poisoned)
    other = signals.tonal_piece("D major", tempo_bpm=120, seconds=8)  # not a copy of `piece`
    good, poisoned = engine.score_round(
        CHALLENGE, [Submission("good", piece), Submission("poison", other)]
    )
    assert good.final_score > 0.0 and poisoned.final_score == 0.0
    assert "recording failed: ValueError" in (poisoned.error or "")


def test_score_result_values_are_clamped_and_nan_becomes_zero() -> None:
    assert ScoreResult(1.7).value == 1.0 and ScoreResult(-3).value == 0.0
    assert ScoreResult(float("nan")).value == 0.0


def test_warm_up_scores_a_clip_without_touching_the_callers_history() -> None:
    from tuneforge.scoring.engine import ScoringEngine
    from tuneforge.scoring.history import InMemoryHistory

    history = InMemoryHistory()
    engine = ScoringEngine.create(history=history)
    assert engine.warm_up() > 0.0
    assert engine.history is history
    assert history.recent_embeddings("warm-up", 10) == []
    assert history.fingerprints(10) == []
