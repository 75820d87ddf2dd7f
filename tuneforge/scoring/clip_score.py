"""One clip's score: every scorer and penalty of the scorer set run on it, each with its own
timing, and combined.

Failures close, never open: a scorer that raises on the clip scores 0 for it and a penalty that
raises applies in full (0), both with the error as the reason — the weights never change per
clip. Only checks that are inactive network-wide, or that could not be set up at start-up (a
degraded validator), are not run: `null` in the breakdown.
composite = Σ wᵢ·sᵢ / Σ wᵢ over the checks that run; final = composite × Π penalties.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from loguru import logger

from tuneforge.scoring.base import Challenge, ClipScore, RoundContext, ScoreResult
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.fingerprint import fingerprint
from tuneforge.scoring.memory import ClipMemory, clip_memory
from tuneforge.scoring.registry import Loaded, ScorerSet
from tuneforge.scoring.scorers.diversity import diversity_embedding
from tuneforge.scoring.weights import PENALTY_NAMES, PREFERENCE, SCORER_NAMES

Clock = Callable[[], float]


@dataclass
class Outcome:
    """One scorer's or penalty's result on one clip; value None = not run on this validator."""

    value: float | None
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
    ms: float = 0.0
    failure: str = ""  # the error it raised on this clip (value is then 0)


def score_checks(
    scorer_set: ScorerSet,
    weight_of: Callable[[str], float],
    challenge: Challenge,
    context: RoundContext,
    index: int,
    clip: Clip,
    clock: Clock,
) -> ClipScore:
    """Clip `index` of the round scored by every check of `scorer_set`; `weight_of` gives each
    scorer's nominal weight now."""
    hotkey = context.miner_hotkeys[index]
    started = clock()
    scored = {
        name: run_check(scorer_set.scorers[name], clip, challenge, context, index, hotkey, clock)
        for name in SCORER_NAMES
    }
    penalized = {
        name: run_check(scorer_set.penalties[name], clip, challenge, context, index, hotkey, clock)
        for name in PENALTY_NAMES
    }
    weights = {
        name: 0.0 if outcome.value is None else weight_of(name) for name, outcome in scored.items()
    }
    reasons = {name: outcome.reason for name, outcome in {**scored, **penalized}.items()}
    if weights.get(PREFERENCE) == 0 and scored[PREFERENCE].value is not None:
        reasons[PREFERENCE] = "weight 0: preference accuracy below 0.55"
    values = {n: (o.value or 0.0) for n, o in scored.items()}
    composite, effective = composite_score(values, weights)
    multiplier = float(np.prod([1.0 if o.value is None else o.value for o in penalized.values()]))
    final = composite * multiplier
    if sum(weights.values()) == 0:
        reasons["composite"] = "no scorer could run"
    timings = {name: round(o.ms, 2) for name, o in {**scored, **penalized}.items()}
    timings["total"] = round((clock() - started) * 1000.0, 2)
    details = {name: o.details for name, o in {**scored, **penalized}.items()}
    details["clip"] = {
        "duration_s": round(clip.original.duration_seconds, 3),
        "sample_rate": clip.original.sample_rate,
        "channels": clip.original.channels,
    }
    return ClipScore(
        final_score=round(final, 6),
        composite=round(composite, 6),
        score_breakdown={n: _rounded(o.value) for n, o in scored.items()},
        penalties={n: _rounded(o.value) for n, o in penalized.items()},
        effective_weights=effective,
        reasons=reasons,
        details=details,
        timings_ms=timings,
        degraded=scorer_set.degraded,
        failures={n: o.failure for n, o in {**scored, **penalized}.items() if o.failure},
    )


def run_check(
    entry: Loaded,
    clip: Clip,
    challenge: Challenge,
    context: RoundContext,
    index: int,
    hotkey: str,
    clock: Clock,
) -> Outcome:
    """Run one scorer/penalty on one clip. Not set up → not run (None); raised → 0."""
    if entry.instance is None:
        prefix = "" if entry.inactive else "not measured on this validator: "
        return Outcome(None, prefix + entry.not_run_reason)
    started = clock()
    try:
        result = entry.instance.run(clip, challenge, context, index)
        if not isinstance(result, ScoreResult):
            raise TypeError(f"returned {type(result).__name__}, not ScoreResult")
    except Exception as exc:  # fail closed: the clip gets nothing for what could not be checked
        ms = (clock() - started) * 1000.0
        error = f"{type(exc).__name__}: {exc}"[:300]
        logger.bind(hotkey=hotkey).warning("{} failed on a clip: {}", entry.name, error)
        return Outcome(0.0, f"failed: {error}", ms=ms, failure=error)
    ms = (clock() - started) * 1000.0
    return Outcome(result.value, result.reason, dict(result.details), ms)


def memory_of(clip: Clip, hotkey: str) -> ClipMemory:
    """What later rounds keep of a scored clip: its diversity embedding, FAD frames and
    fingerprint."""
    # The frames the FAD penalty compared come first: history must hold the embedding it
    # actually uses, even when MERT frames of another size were present.
    frames = clip.fad_frames_used
    if frames is None:
        frames = clip.neural.mert_fad_frames
    return clip_memory(hotkey, diversity_embedding(clip)[1], frames, fingerprint(clip))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def composite_score(
    values: dict[str, float], weights: dict[str, float]
) -> tuple[float, dict[str, float]]:
    """(Σ wᵢ·sᵢ / Σ wᵢ, each scorer's share wᵢ / Σ wᵢ); 0 when no weight is left."""
    total = float(sum(weights.values()))
    if total <= 0:
        return 0.0, dict.fromkeys(weights, 0.0)
    shares = {name: weight / total for name, weight in weights.items()}
    composite = sum(shares[name] * values[name] for name in weights)
    return float(min(1.0, max(0.0, composite))), {k: round(v, 6) for k, v in shares.items()}
