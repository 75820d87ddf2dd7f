"""`learned_mos`: a learned mean-opinion-score predictor (tuneforge/scoring/mos_model.py) over
the clip's CLAP or MERT embedding; MOS 1..5 maps linearly to 0..1."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuneforge.scoring.base import (
    Challenge,
    HeadScorer,
    RoundContext,
    ScoreResult,
    ScorerUnavailable,
)
from tuneforge.scoring.mos_model import MOS_MAX, MOS_MIN
from tuneforge.scoring.neural import ensure_feature, require_model

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip
    from tuneforge.scoring.neural import NeuralModels

_SOURCE = {"clap_embedding": "clap", "mert_embedding": "mert"}


class LearnedMosScorer(HeadScorer):
    name = "learned_mos"

    @staticmethod
    def checked(models: NeuralModels | None) -> NeuralModels:
        models = require_model(models, "mos")
        assert models.mos_head is not None
        source = _SOURCE.get(models.mos_head.config.embedding, "")
        if not models.has(source):
            raise ScorerUnavailable(f"MOS head reads {source} embeddings: {models.reason(source)}")
        return models

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        models = self.round_models(context)
        mos = float(ensure_feature(models, clip, context.clips, lambda c: c.neural.mos))
        value = (mos - MOS_MIN) / (MOS_MAX - MOS_MIN)
        return ScoreResult(value, details={"mos": round(mos, 3)})
