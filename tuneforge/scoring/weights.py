"""Consensus constants: scorer weights, penalty names and curves, the preference weight rule.

Every validator must compute the same numbers from the same audio, so these live in one module
with no environment reads and no configuration (DESIGN.md §5). Changing one is a protocol change.
"""

from __future__ import annotations

import math

# DESIGN.md §5 table. Relative weights; composite = Σ wᵢ·sᵢ / Σ wᵢ over the available scorers.
SCORER_WEIGHTS: dict[str, float] = {
    # prompt adherence (30)
    "clap": 19.0,
    "attribute": 11.0,
    # composition (21)
    "musicality": 9.0,
    "melody": 6.0,
    "structural": 6.0,
    # production & fidelity (16)
    "production": 5.0,
    "neural_quality": 5.0,
    "vocal": 4.0,
    "quality": 2.0,
    # naturalness & mix (18)
    "vocal_lyrics": 8.0,
    "mix_separation": 4.0,
    "timbral": 3.0,
    "learned_mos": 3.0,
    # other (8)
    "diversity": 6.0,
    "speed": 2.0,
}
PREFERENCE = "preference"
# All 16 scorers, in the order results are reported.
SCORER_NAMES: tuple[str, ...] = (*SCORER_WEIGHTS, PREFERENCE)

PENALTY_NAMES: tuple[str, ...] = (
    "duration_penalty",
    "artifact_penalty",
    "fad_penalty",
    "fingerprint_penalty",
)

# Preference model weight: 0 until it is trained; then a share of the total weight that grows
# linearly with held-out pairwise accuracy, from 2% at 0.55 to 20% at 0.80, capped at 20%.
PREFERENCE_MIN_ACCURACY = 0.55
PREFERENCE_FULL_ACCURACY = 0.80
PREFERENCE_MIN_SHARE = 0.02
PREFERENCE_MAX_SHARE = 0.20


def preference_share(held_out_accuracy: float | None) -> float:
    """Share of the total weight (0..0.2) the preference scorer gets at this held-out accuracy."""
    if held_out_accuracy is None or not math.isfinite(held_out_accuracy):
        return 0.0
    if held_out_accuracy < PREFERENCE_MIN_ACCURACY:
        return 0.0
    progress = (held_out_accuracy - PREFERENCE_MIN_ACCURACY) / (
        PREFERENCE_FULL_ACCURACY - PREFERENCE_MIN_ACCURACY
    )
    share = PREFERENCE_MIN_SHARE + progress * (PREFERENCE_MAX_SHARE - PREFERENCE_MIN_SHARE)
    return min(PREFERENCE_MAX_SHARE, share)


def preference_weight(held_out_accuracy: float | None, other_total: float | None = None) -> float:
    """Weight w so that w / (other_total + w) equals `preference_share(accuracy)`.

    `other_total` defaults to the sum of the table (93)."""
    total = sum(SCORER_WEIGHTS.values()) if other_total is None else other_total
    share = preference_share(held_out_accuracy)
    return total * share / (1.0 - share) if share > 0 else 0.0


# Duration: within 5% of the request costs nothing; the multiplier then falls linearly to 0 at
# 50% off (a 15 s request answered with 7.5 s or 22.5 s scores 0).
DURATION_TOLERANCE = 0.05
DURATION_ZERO_AT = 0.50


def duration_multiplier(actual_seconds: float, requested_seconds: float) -> float:
    """1.0 within ±5% of the requested duration, linear down to 0.0 at ±50%."""
    if requested_seconds <= 0 or not math.isfinite(actual_seconds):
        return 0.0
    error = abs(actual_seconds - requested_seconds) / requested_seconds
    if error <= DURATION_TOLERANCE:
        return 1.0
    if error >= DURATION_ZERO_AT:
        return 0.0
    return 1.0 - (error - DURATION_TOLERANCE) / (DURATION_ZERO_AT - DURATION_TOLERANCE)


# Speed: generation time / audio duration ("real-time factor"). Piecewise linear through these
# points; faster than real time is full marks, 6x slower or worse is zero.
SPEED_CURVE: tuple[tuple[float, float], ...] = ((1.0, 1.0), (3.0, 0.3), (6.0, 0.0))


def speed_multiplier(realtime_factor: float) -> float:
    """1.0 at ≤1x real time, 0.3 at 3x, 0.0 at ≥6x, linear in between."""
    if not math.isfinite(realtime_factor):
        return 0.0
    xs = [x for x, _ in SPEED_CURVE]
    ys = [y for _, y in SPEED_CURVE]
    if realtime_factor <= xs[0]:
        return ys[0]
    for (x0, y0), (x1, y1) in zip(SPEED_CURVE, SPEED_CURVE[1:], strict=False):
        if realtime_factor <= x1:
            return y0 + (realtime_factor - x0) / (x1 - x0) * (y1 - y0)
    return ys[-1]


# Clips shorter than this are not music to score: final 0 with a reason, no scorer runs.
MIN_SCORABLE_SECONDS = 0.5
