"""`speed`: how fast the miner answered, as generation time over requested audio duration."""

from __future__ import annotations

from tuneforge.scoring.base import Challenge, RoundContext, Scorer, ScoreResult
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.weights import speed_multiplier


class SpeedScorer(Scorer):
    """1.0 at or under real time, 0.3 at 3x, 0.0 at 6x (weights.SPEED_CURVE)."""

    name = "speed"

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        generation_ms = context.generation_ms[index] if index < len(context.generation_ms) else None
        if generation_ms is None:  # no measured time is no evidence of speed
            return ScoreResult(0.0, "no generation time was measured for this clip")
        if generation_ms < 0:
            return ScoreResult(0.0, f"negative generation time {generation_ms} ms")
        # the requested duration is the work asked for; a short answer is the duration penalty's
        factor = generation_ms / 1000.0 / challenge.duration_seconds
        value = speed_multiplier(factor)
        reason = "" if value >= 1.0 else f"{factor:.2f}x real time"
        details = {"generation_ms": round(generation_ms, 1), "realtime_factor": round(factor, 3)}
        return ScoreResult(value, reason, details)
