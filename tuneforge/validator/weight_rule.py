"""The weight rule every honest validator computes identically from its EMAs (pure).

Rule (consensus-relevant; change it only with a spec version bump):
1. Keep uids whose EMA is finite and > 0 (a zero EMA earns nothing).
2. Rank by EMA descending, ties by uid ascending; when `top_k` > 0 keep only the first `top_k`.
3. Raw weight = EMA ** `exponent` (exponent > 1 widens the gap between good and average miners).
4. Normalise so the weights sum to 1. Nothing left -> {} (the caller sets no weights).
Monotone: a higher EMA never gets a lower weight. Deterministic: depends only on the inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

DEFAULT_EXPONENT = 2.0


def compute_weights(
    emas: Mapping[int, float], exponent: float = DEFAULT_EXPONENT, top_k: int = 0
) -> dict[int, float]:
    """{uid: weight} summing to 1 over the rewarded uids, or {} when nobody earned anything."""
    if exponent <= 0:
        raise ValueError(f"exponent must be > 0, got {exponent}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    ranked = sorted(
        ((uid, float(ema)) for uid, ema in emas.items() if math.isfinite(ema) and ema > 0),
        key=lambda item: (-item[1], item[0]),
    )
    if top_k:
        ranked = ranked[:top_k]
    raw = {uid: ema**exponent for uid, ema in ranked}
    total = math.fsum(raw.values())
    if total <= 0 or not math.isfinite(total):
        return {}
    return {uid: value / total for uid, value in sorted(raw.items())}
