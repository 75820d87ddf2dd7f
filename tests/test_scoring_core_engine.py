"""ScoringEngine: round in, ClipScores out — arithmetic, exclusions, failures, history."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import signals
from tuneforge.audio import Audio
from tuneforge.protocol import MusicGenerationSynapse
from tuneforge.scoring.base import (
    Challenge,
    RoundContext,
    ScoreResult,
    ScorerUnavailable,
    Submission,
)
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.engine import ScoringEngine
from tuneforge.scoring.history import InMemoryHistory
from tuneforge.scoring.penalties import ArtifactPenalty, DurationPenalty, FingerprintPenalty
from tuneforge.scoring.registry import Loaded
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


class BrokenScorer:
    """A scorer with a bug: it raises on every clip."""

    name = "musicality"

    def score(self, clip: Clip, challenge: Challenge, context: RoundContext, index: int) -> None:
        raise RuntimeError(f"index {index} out of range")


class NeedsModelScorer:
    name = "melody"

    def score(self, clip: Clip, challenge: Challenge, context: RoundContext, index: int) -> None:
        raise ScorerUnavailable("pitch model missing")


def _engine_with(scorers: dict[str, object], history: InMemoryHistory) -> ScoringEngine:
    loaded = {
        name: Loaded(name, scorers[name]) if name in scorers else Loaded(name, None, "not here")
        for name in SCORER_NAMES
    }
    penalties = {
        "duration_penalty": Loaded("duration_penalty", DurationPenalty()),
        "artifact_penalty": Loaded("artifact_penalty", ArtifactPenalty()),
        "fad_penalty": Loaded("fad_penalty", None, "module tuneforge.scoring.fad not found"),
        "fingerprint_penalty": Loaded("fingerprint_penalty", FingerprintPenalty()),
    }
    return ScoringEngine(history, None, loaded, penalties)


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
    expected = (w["production"] * b["production"] + w["quality"] * b["quality"]) + w["speed"] * b[
        "speed"
    ]
    expected /= w["production"] + w["quality"] + w["speed"]
    assert score.composite == pytest.approx(expected, abs=1e-5)
    assert b["speed"] == pytest.approx(0.65)  # 2x real time
    assert score.penalties["duration_penalty"] == pytest.approx(1 - 0.15 / 0.45, abs=1e-3)
    assert score.final_score == pytest.approx(
        score.composite * np.prod(list(score.penalties.values())), abs=1e-5
    )
    assert score.effective_weights["production"] == pytest.approx(5 / 9, abs=1e-5)
    assert sum(score.effective_weights.values()) == pytest.approx(1.0)

    # crashes and missing models are excluded with their reason, never a neutral value
    assert b["musicality"] == 0.0 and score.effective_weights["musicality"] == 0.0
    assert score.reasons["musicality"] == "excluded: error RuntimeError: index 0 out of range"
    assert score.reasons["melody"] == "excluded: pitch model missing"
    assert score.reasons["clap"] == "excluded: not here"
    assert score.penalties["fad_penalty"] == 1.0
    assert score.reasons["fad_penalty"].startswith("excluded: module")


def test_every_result_reports_all_16_scorers_and_4_penalties(engine_round: tuple) -> None:
    engine, _, scores = engine_round
    assert engine.scorer_names == list(SCORER_NAMES) and engine.penalty_names == list(PENALTY_NAMES)
    for score in scores:
        assert list(score.score_breakdown) == list(SCORER_NAMES)
        assert list(score.penalties) == list(PENALTY_NAMES)
        for value in [*score.score_breakdown.values(), *score.penalties.values()]:
            assert 0.0 <= value <= 1.0
    good = scores[0]
    assert good.final_score > 0.2 and good.error is None
    assert set(good.timings_ms) >= {*SCORER_NAMES, *PENALTY_NAMES, "total"}
    for name, reason in engine.excluded.items():
        assert good.reasons[name] == f"excluded: {reason}"


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
    assert failed.reasons["clap"] == "no audio: deadline exceeded after 28 s"
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


def test_a_scorer_returning_the_wrong_type_is_excluded(piece: Audio) -> None:
    class Sloppy:
        name = "timbral"

        def score(self, clip: Clip, *_: object) -> float:
            return float(np.max(np.abs(clip.y)))

    engine = _engine_with({"timbral": Sloppy(), "quality": QualityScorer()}, InMemoryHistory())
    (score,) = engine.score_round(CHALLENGE, [Submission("m", piece)])
    assert score.reasons["timbral"].startswith("excluded: error TypeError")
    assert score.composite == pytest.approx(score.score_breakdown["quality"], abs=1e-6)


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
