"""Hostile and odd inputs: every scorer and penalty stays finite and inside [0, 1]."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.helpers import signals
from tuneforge.core.audio import Audio, resample
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring.base import RoundContext, ScorerUnavailable, Submission
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.engine import ScoringEngine
from tuneforge.scoring.features import dsp_embedding
from tuneforge.scoring.history import InMemoryHistory
from tuneforge.scoring.penalties import ArtifactPenalty, DurationPenalty, FingerprintPenalty
from tuneforge.scoring.scorers.diversity import DiversityScorer
from tuneforge.scoring.scorers.production import ProductionScorer
from tuneforge.scoring.scorers.quality import QualityScorer
from tuneforge.scoring.scorers.speed import SpeedScorer

CHALLENGE = MusicGenerationSynapse(prompt="anything", genre="rock", duration_seconds=3)
RNG = np.random.default_rng(5)


def _inputs() -> dict[str, Audio]:
    piece = signals.tonal_piece(seconds=3)
    alternating = np.tile(np.array([1.0, -1.0], dtype=np.float32), 48_000)
    return {
        "empty": Audio(np.zeros((1, 0), dtype=np.float32), 32000),
        "one_sample": Audio(np.array([0.9], dtype=np.float32), 32000),
        "tiny_100ms": signals.tonal_piece(seconds=0.1),
        "dc": Audio(np.full(96_000, 0.5, dtype=np.float32), 32000),
        "full_scale_square": Audio(alternating, 32000),
        "random_extremes": Audio(RNG.choice([-1.0, 1.0], 96_000).astype(np.float32), 32000),
        "impulse": Audio(np.eye(1, 96_000, 48_000, dtype=np.float32), 32000),
        "mono_8k": resample(piece, 8000),
        "stereo_48k": resample(signals.stereo(piece), 48000),
        "long_60s": signals.tonal_piece(seconds=60, seed=2),
    }


INPUTS = _inputs()
OWN = [QualityScorer(), ProductionScorer(), SpeedScorer(), DiversityScorer()]
PENALTIES = [DurationPenalty(), ArtifactPenalty(), FingerprintPenalty()]


@pytest.mark.parametrize("name", list(INPUTS))
def test_core_scorers_and_penalties_stay_in_range(name: str) -> None:
    clip = Clip(INPUTS[name])
    other = Clip(signals.tonal_piece("C major", 120, 3, seed=1))
    history = InMemoryHistory()
    history.add_embedding("m0", dsp_embedding(other))
    context = RoundContext([clip, other], ["m0", "m1"], [2500.0, None], history)
    for scorer in [*OWN, *PENALTIES]:
        try:
            result = scorer.run(clip, CHALLENGE, context, 0)
        except ScorerUnavailable:
            continue
        assert math.isfinite(result.value) and 0.0 <= result.value <= 1.0, (scorer, result)


@pytest.fixture(scope="module")
def engine() -> ScoringEngine:
    return ScoringEngine.create(InMemoryHistory())


@pytest.mark.parametrize("name", list(INPUTS))
def test_engine_scores_every_odd_input_inside_0_1(engine: ScoringEngine, name: str) -> None:
    (score,) = engine.score_round(CHALLENGE, [Submission(name, INPUTS[name], 1000.0)])
    values = [score.final_score, score.composite]
    values += [*score.score_breakdown.values(), *score.penalties.values()]
    assert all(v is None or (math.isfinite(v) and 0.0 <= v <= 1.0) for v in values)
    if INPUTS[name].duration_seconds < 0.5:
        assert score.final_score == 0.0 and "shorter than" in (score.error or "")
    if name == "dc":
        assert score.final_score == 0.0 and "DC" in score.reasons["artifact_penalty"]
