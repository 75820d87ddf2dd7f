"""`neural_quality`: temporal coherence of MERT's representation of the clip.

Music develops: neighbouring seconds resemble each other more than seconds drawn at random
from the same clip. For each MERT layer we pool frames into ~1 s segments and compare the mean
cosine similarity of ADJACENT segments with the mean over ALL segment pairs (what adjacency
would give if the segments were shuffled). Stationary noise and cut-and-shuffled audio have no
such excess; a clip that evolves coherently does. The per-layer excess, normalised by its
headroom (1 - baseline), is averaged over layers (low layers see timbre, high layers harmony and
structure) and mapped to [0, 1] by COHERENCE_CEILING.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tuneforge.scoring.base import Challenge, RoundContext, Scorer, ScoreResult
from tuneforge.scoring.neural import ensure_feature, require_model

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip
    from tuneforge.scoring.neural import NeuralModels

# Normalised excess adjacency at which the score saturates. Provisional: to be re-measured with
# the real MERT-v1-95M on the calibration set (a real, evolving piece should reach it; a
# time-shuffled copy should score well below).
COHERENCE_CEILING = 0.3
MIN_SEGMENTS = 3


def layer_coherence(segments: np.ndarray) -> float:
    """Normalised excess similarity of adjacent segments [K, D] over all pairs, in [-1, 1]."""
    norms = np.linalg.norm(segments, axis=1, keepdims=True)
    unit = segments / np.maximum(norms, 1e-9)
    sim = unit @ unit.T
    k = len(sim)
    adjacent = float(np.mean(np.diagonal(sim, offset=1)))
    baseline = float((sim.sum() - np.trace(sim)) / (k * (k - 1)))
    return (adjacent - baseline) / max(1e-6, 1.0 - baseline)


class NeuralQualityScorer(Scorer):
    name = "neural_quality"

    def __init__(self, models: NeuralModels | None = None) -> None:
        super().__init__(require_model(models, "mert"))

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        models = require_model(context.models or self.models, "mert")
        prepared = ensure_feature(models, clip, context.clips, lambda c: c.neural.mert_segments)
        segments = np.asarray(prepared, dtype=np.float64)
        if segments.shape[1] < MIN_SEGMENTS:
            return ScoreResult(
                0.0, reason=f"too short for coherence ({segments.shape[1]} segments)"
            )
        per_layer = [layer_coherence(layer) for layer in segments]
        coherence = float(np.mean(per_layer))
        return ScoreResult(
            coherence / COHERENCE_CEILING,
            reason="" if coherence > 0 else "no temporal coherence",
            details={"coherence": round(coherence, 4), "layers": len(per_layer)},
        )
