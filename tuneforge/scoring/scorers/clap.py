"""`clap`: how well the audio matches the requested music, by CLAP text-audio similarity.

The challenge's structured fields become one sentence (`challenge_text`); its CLAP text
embedding is compared with the clip's CLAP audio embedding (cosine), and the cosine is mapped
through a calibrated floor/ceiling to [0, 1].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tuneforge.scoring.base import Challenge, RoundContext, Scorer, ScoreResult
from tuneforge.scoring.neural import ensure_feature, require_model

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip
    from tuneforge.scoring.neural import NeuralModels

# laion/clap-htsat-fused cosine range. Matched music/caption pairs score about 0.3-0.5 and
# unrelated pairs about 0.0-0.1 (LAION-CLAP paper's retrieval analysis; MusicGen's reported CLAP
# scores of 0.27-0.32 for its own generations with a LAION music CLAP). A cosine at or below the
# floor scores 0, at or above the ceiling 1. Provisional until measured on the validator set with
# the real checkpoint (see the neural-scoring report).
CLAP_FLOOR = 0.05
CLAP_CEILING = 0.45


def challenge_text(challenge: Challenge) -> str:
    """One caption in the style CLAP was trained on, from the challenge fields."""
    parts = [challenge.prompt.rstrip(".")]
    if challenge.genre:
        parts.append(f"{challenge.genre} music")
    if challenge.mood:
        parts.append(f"{challenge.mood} mood")
    if challenge.instruments:
        parts.append("featuring " + ", ".join(challenge.instruments))
    if challenge.tempo_bpm:
        parts.append(f"{challenge.tempo_bpm} BPM")
    if challenge.key:
        parts.append(f"in {challenge.key}")
    parts.append("with vocals" if challenge.vocals else "instrumental")
    return ", ".join(parts)


class ClapScorer(Scorer):
    name = "clap"

    def __init__(self, models: NeuralModels | None = None) -> None:
        super().__init__(require_model(models, "clap"))

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        models = require_model(context.models or self.models, "clap")
        prepared = ensure_feature(models, clip, context.clips, lambda c: c.neural.clap_embedding)
        audio = np.asarray(prepared, dtype=np.float32)
        text = challenge_text(challenge)
        cosine = float(models.clap_text_embeddings([text])[0] @ audio)
        value = (cosine - CLAP_FLOOR) / (CLAP_CEILING - CLAP_FLOOR)
        reason = "" if value > 0 else f"audio does not match the prompt (cosine {cosine:.3f})"
        return ScoreResult(value, reason=reason, details={"cosine": round(cosine, 4)})
