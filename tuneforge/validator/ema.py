"""Per-miner exponential moving average of final scores (pure)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def update_ema(
    previous: Mapping[K, float], scores: Mapping[K, float], alpha: float
) -> dict[K, float]:
    """New EMAs for the miners in `scores` only: ema = alpha*score + (1-alpha)*previous.

    Miners absent from `scores` (not queried this round) keep their value untouched; a miner seen
    for the first time starts from 0, so one lucky answer cannot buy a full weight. Non-finite
    scores count as 0 and every result is clamped to [0, 1].
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    updated = dict(previous)
    for key, score in scores.items():
        value = float(score) if math.isfinite(score) else 0.0
        value = min(1.0, max(0.0, value))
        updated[key] = min(1.0, max(0.0, alpha * value + (1.0 - alpha) * previous.get(key, 0.0)))
    return updated
