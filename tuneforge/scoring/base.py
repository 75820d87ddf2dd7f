"""The scoring contract: what a scorer returns, what a round's caller gives and gets back.

Scoring knows nothing of validators or HTTP (DESIGN.md §9): clips and a challenge in, results out.
The challenge is always the validator's own `MusicGenerationSynapse`, never a miner's echo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from tuneforge.audio import Audio
from tuneforge.protocol import MusicGenerationSynapse

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip
    from tuneforge.scoring.neural import NeuralModels

Challenge = MusicGenerationSynapse


class ScorerUnavailable(RuntimeError):
    """A scorer cannot run (model missing, dependency absent): it is excluded with this reason."""


@dataclass
class ScoreResult:
    """One scorer's verdict on one clip: a value in [0, 1], why, and the facts it measured."""

    value: float
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        value = float(self.value)
        self.value = min(1.0, max(0.0, value)) if np.isfinite(value) else 0.0


@dataclass
class RoundContext:
    """What a scorer may know beyond its own clip: the round's other clips and the history."""

    clips: list[Clip]
    miner_hotkeys: list[str]
    generation_ms: list[float | None]
    history: ScoringHistory
    models: NeuralModels | None = None  # loaded neural models, None when none are configured


class Scorer(Protocol):
    name: str

    def score(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        """Score clip number `index` of the round's clips."""
        ...


class ScoringHistory(Protocol):
    """Per-miner memory the caller persists (the validator keeps it in its state DB)."""

    def recent_embeddings(self, miner_hotkey: str, limit: int) -> list[np.ndarray]: ...

    def add_embedding(self, miner_hotkey: str, embedding: np.ndarray) -> None: ...

    def fingerprints(self, limit: int) -> list[tuple[str, np.ndarray]]:
        """(miner_hotkey, fingerprint) of clips seen earlier, newest first."""
        ...

    def add_fingerprint(self, miner_hotkey: str, fingerprint: np.ndarray) -> None: ...


@dataclass
class Submission:
    """One miner's answer as the caller received it; `audio` None means it failed with `error`."""

    miner_hotkey: str
    audio: Audio | None
    generation_ms: float | None = None
    error: str | None = None


@dataclass
class ClipScore:
    final_score: float
    composite: float
    score_breakdown: dict[str, float]  # all 16 scorers (excluded ones report 0.0 + reason)
    penalties: dict[str, float]  # all 4 penalties
    effective_weights: dict[str, float]
    reasons: dict[str, str]
    details: dict[str, dict[str, Any]]
    timings_ms: dict[str, float]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "final_score": self.final_score,
            "composite": self.composite,
            "score_breakdown": self.score_breakdown,
            "penalties": self.penalties,
            "effective_weights": self.effective_weights,
            "reasons": self.reasons,
            "details": self.details,
            "timings_ms": self.timings_ms,
            "error": self.error,
        }
