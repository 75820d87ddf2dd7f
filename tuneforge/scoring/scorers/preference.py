"""`preference`: the Bradley-Terry preference head (tuneforge/scoring/preference_model.py)
trained on human pairwise choices; the value is the probability of beating a typical training
clip. Whether the row runs is the consensus rule of weights.preference_inactive_reason (D42),
decided by the registry at start-up; its weight follows the head's held-out accuracy
(weights.preference_weight(models.preference_heldout_accuracy))."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tuneforge.scoring.base import (
    Challenge,
    HeadScorer,
    RoundContext,
    ScoreResult,
    ScorerUnavailable,
)
from tuneforge.scoring.features import dsp_embedding
from tuneforge.scoring.neural import ensure_feature

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip
    from tuneforge.scoring.neural import NeuralModels

# The model each embedding needs; the DSP embedding (features.dsp_embedding) needs none, which
# lets a head train and score where no neural model is loaded (localnet, experiments).
_SOURCE = {"clap_embedding": "clap", "mert_embedding": "mert", "dsp_embedding": ""}


class PreferenceScorer(HeadScorer):
    name = "preference"

    @staticmethod
    def checked(models: NeuralModels | None) -> NeuralModels:
        if (
            models is None
            or models.preference is None
            or models.preference.heldout_accuracy is None
        ):
            raise ScorerUnavailable("not trained")
        source = _SOURCE.get(models.preference.embedding)
        if source is None:
            raise ScorerUnavailable(f"unknown preference embedding {models.preference.embedding!r}")
        if source and not models.has(source):
            raise ScorerUnavailable(f"preference head reads {source} embeddings: not loaded")
        return models

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        models = self.round_models(context)
        model = models.preference
        assert model is not None
        if model.embedding == "dsp_embedding":
            prepared = dsp_embedding(clip)
        else:
            prepared = ensure_feature(
                models, clip, context.clips, lambda c: c.neural.embedding(model.embedding)
            )
        embedding = np.asarray(prepared, dtype=np.float32)
        value = float(model.score(embedding[None, :])[0])
        return ScoreResult(value, details={"heldout_accuracy": model.heldout_accuracy})
