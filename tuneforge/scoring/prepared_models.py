"""The validator's neural models as a scoring worker sees them: what the models computed for the
round, not the models (D68).

The validator runs the models' batched pass itself, on its device (`batched_round.neural_pass`),
and hands each clip's `NeuralFeatures` to the worker that scores it, with the round's CLAP text
embeddings. `PreparedModels` answers the neural scorers from those: the same load statuses as the
validator's models (so a worker's scorer set is the validator's), precomputed text embeddings and
transcripts, and no model — a feature that was not computed fails that check on that clip
(`ScorerUnavailable`, scored 0), never a model loaded here. No torch is imported.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from tuneforge.scoring.base import ScorerUnavailable
from tuneforge.scoring.neural import NeuralModels

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip
    from tuneforge.scoring.whisper import Transcript


class PreparedModels(NeuralModels):
    """A worker's stand-in for the validator's `NeuralModels` (see the module docstring)."""

    def __init__(self, statuses: dict[str, str]) -> None:
        # No super().__init__(): that imports torch for the device's dtype; nothing runs here.
        self.device = "cpu"
        self._status = dict(statuses)
        self._clap = self._clap_processor = self._mert = self._mert_processor = None
        self.whisper = None
        self.mos_head = None
        self.preference = None
        self._text_cache: dict[str, np.ndarray] = {}
        self._lock = threading.RLock()

    def use_round(self, texts: dict[str, np.ndarray]) -> None:
        """The round's CLAP text embeddings, computed by the validator."""
        with self._lock:
            self._text_cache = dict(texts)

    def prepare_round(self, clips: list[Clip]) -> None:
        """Nothing: the validator's batched pass computed what there is."""

    def clap_text_embeddings(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            missing = [t for t in texts if t not in self._text_cache]
            if missing:
                raise ScorerUnavailable("the round's CLAP text embedding was not computed")
            return np.stack([self._text_cache[t] for t in texts])

    def transcript(self, clip: Clip, round_clips: list[Clip] | None = None) -> Transcript:
        if clip.neural.transcript is None:
            raise ScorerUnavailable("no transcript was computed for this clip")
        return clip.neural.transcript

    def transcribe_batch(self, clips: list[Clip]) -> list[Transcript]:
        raise ScorerUnavailable("a scoring worker runs no Whisper")


def worker_statuses(models: NeuralModels | None) -> dict[str, str] | None:
    """What workers need to know of `models` to stand in for them; None when they cannot: no
    models, or a trained head loaded (a head runs its own model on the clip's embedding)."""
    if models is None or models.mos_head is not None or models.preference is not None:
        return None
    return models.describe()
