"""The scoring contract: what a scorer returns, what a round's caller gives and gets back.

Scoring knows nothing of validators or HTTP (DESIGN.md §9): clips and a challenge in, results out.
The challenge is always the validator's own `MusicGenerationSynapse`, never a miner's echo.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from tuneforge.core.audio import Audio, WavAudio
from tuneforge.core.errors import TuneForgeError
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.core.publication import MAX_EXCLUDED_REASON_CHARS
from tuneforge.scoring.music_features import unscorable_reason

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip
    from tuneforge.scoring.neural import NeuralModels

Challenge = MusicGenerationSynapse


class ScorerUnavailable(TuneForgeError, RuntimeError):
    """A scorer cannot be set up on this validator (model missing, dependency absent). Raised at
    start-up it excludes the scorer for every clip (and the validator refuses to start on a real
    network); raised while measuring one clip it scores that clip 0 like any other failure."""

    status = 503
    code = "scorer_unavailable"


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
    history: HistoryView
    models: NeuralModels | None = None  # loaded neural models, None when none are configured


class Scorer(ABC):
    """One scorer or penalty. `name` is its row in `weights.SCORERS`/`weights.PENALTIES`;
    `measure` is the one extension point. Neural ones receive the loaded models.

    A scorer's value is a score in [0, 1]; a penalty's value is a multiplier in [0, 1] (1 = none).
    Raising means "could not measure this clip": the engine scores it 0 (a penalty applies in full)
    with the error as its reason — never neutral, never renormalised away."""

    name: ClassVar[str]
    # True for scorers of musical content: the engine gives a clip too short, silent or
    # constant to be music 0 with that reason before `measure` runs (one rule, not one per
    # scorer).
    needs_music: ClassVar[bool] = False
    # What this scorer needs besides the neural models, checked when its row is built: each
    # raises ScorerUnavailable with the reason, so a validator without it excludes the row at
    # start-up instead of failing it clip by clip.
    requires: ClassVar[tuple[Callable[[], None], ...]] = ()

    def __init__(self, models: NeuralModels | None = None) -> None:
        for check in self.requires:
            check()
        self.models = models

    @abstractmethod
    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        """Measure clip number `index` of the round's clips."""

    def run(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        """What the engine calls (not overridden): the needs_music gate, then `measure`."""
        if self.needs_music:
            reason = unscorable_reason(clip)
            if reason:
                return ScoreResult(0.0, reason)
        return self.measure(clip, challenge, context, index)


class Penalty(Scorer, ABC):
    """A scorer whose value multiplies the composite (`final = composite × Π penalties`)."""


class HeadScorer(Scorer, ABC):
    """A scorer that reads a trained head over the loaded models. The models are checked when its
    row is built (a validator without them excludes the row at start-up) and again each round
    (the round may carry the models a batched pass loaded)."""

    def __init__(self, models: NeuralModels | None = None) -> None:
        super().__init__(self.checked(models))

    @staticmethod
    @abstractmethod
    def checked(models: NeuralModels | None) -> NeuralModels:
        """`models` when the head can run on them; else ScorerUnavailable with why not."""

    def round_models(self, context: RoundContext) -> NeuralModels:
        return self.checked(context.models or self.models)


class HistoryView(Protocol):
    """What scorers read of earlier rounds (the validator keeps it in its state DB)."""

    def recent_embeddings(self, miner_hotkey: str, limit: int) -> list[np.ndarray]:
        """This miner's stored embeddings (diversity vectors and FAD frames), newest first."""
        ...

    def fingerprints(self, limit: int) -> list[tuple[str, np.ndarray]]:
        """(miner_hotkey, fingerprint) of clips seen earlier, newest first."""
        ...


@runtime_checkable
class ScoringHistory(HistoryView, Protocol):
    """A history kept in-process (CLI, tests, benches): `RoundMemory.record_into` adds to it."""

    def add_embedding(self, miner_hotkey: str, embedding: np.ndarray) -> None: ...

    def add_fingerprint(self, miner_hotkey: str, fingerprint: np.ndarray) -> None: ...


@dataclass
class Submission:
    """One miner's answer as the caller received it; `audio` None means it failed with `error`."""

    miner_hotkey: str
    audio: Audio | WavAudio | None  # a WavAudio is decoded where the clip is scored
    generation_ms: float | None = None
    error: str | None = None


@dataclass
class ClipScore:
    final_score: float
    composite: float
    # All 16 scorers / 5 penalties; None = not measured (inactive network-wide, or excluded at
    # start-up on a validator running with --scoring.allow_missing), the reason in `reasons`.
    score_breakdown: dict[str, float | None]
    penalties: dict[str, float | None]
    effective_weights: dict[str, float]
    reasons: dict[str, str]
    details: dict[str, dict[str, Any]]
    timings_ms: dict[str, float]
    error: str | None = None
    degraded: bool = False  # this validator lacks part of the network's scorer set
    failures: dict[str, str] = field(default_factory=dict)  # check -> error it raised on the clip

    def published_fields(self) -> dict[str, Any]:
        """The score part of a published track (API `POST /scores` results and job results):
        nulls stay null, and what did not run is named with its reason."""
        return {
            "final_score": self.final_score,
            "composite": self.composite,
            "score_breakdown": self.score_breakdown,
            "penalties": self.penalties,
            "excluded": {
                name: why[:MAX_EXCLUDED_REASON_CHARS] for name, why in self.not_measured.items()
            },
            "degraded": self.degraded,
        }

    def zero_by(self, penalty: str, reason: str, evidence_key: str, evidence: Any) -> None:
        """A check outside the engine (the network copy index, the public catalogue) found the
        clip to be a copy: `penalty` goes to 0 and with it the final score, the reason and the
        evidence beside it."""
        self.penalties[penalty] = 0.0
        self.final_score = 0.0
        self.reasons[penalty] = reason
        self.details.setdefault(penalty, {})[evidence_key] = evidence

    @property
    def not_measured(self) -> dict[str, str]:
        """{check: reason} for every scorer or penalty that did not run (the nulls)."""
        values = {**self.score_breakdown, **self.penalties}
        return {name: self.reasons.get(name, "") for name, v in values.items() if v is None}

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
            "degraded": self.degraded,
            "failures": self.failures,
        }
