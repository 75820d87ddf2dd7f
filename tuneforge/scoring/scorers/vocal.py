"""Vocal scorer: with vocals requested, are they there (and clearly a voice); without, is the clip
free of unwanted voice. The detector is silero-vad (voice_activity.vocal_activity), the same one
the attribute scorer uses, so the two never disagree about whether a clip has vocals."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuneforge.scoring.base import Challenge, RoundContext, Scorer, ScoreResult, ScorerUnavailable
from tuneforge.scoring.music_features import ramp
from tuneforge.scoring.voice_activity import VoiceDetectorUnavailable, vocal_activity

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip


class VocalScorer(Scorer):
    name = "vocal"
    needs_music = True

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        try:
            activity = vocal_activity(clip)
        except VoiceDetectorUnavailable as error:
            raise ScorerUnavailable(str(error)) from error
        details = {
            "vocals_requested": challenge.vocals,
            "vocals_detected": activity.present,
            "vocal_fraction": round(activity.fraction, 3),
            "mean_voice_probability": round(activity.mean_voiced_probability, 3),
            "longest_vocal_run_s": round(activity.longest_run_seconds, 2),
        }
        if not challenge.vocals:
            # A few blips are tolerated; a voice through a quarter of the clip scores 0.
            value = 1.0 - ramp(activity.fraction, 0.03, 0.25)
            reason = (
                "no vocals, as requested"
                if not activity.present
                else f"unrequested vocals in {activity.fraction:.0%} of the clip"
            )
            return ScoreResult(value, reason, details)
        presence = ramp(activity.fraction, 0.03, 0.3)
        clarity = ramp(activity.mean_voiced_probability, 0.5, 0.9)
        continuity = ramp(activity.longest_run_seconds, 0.3, 3.0)
        details.update(
            presence=round(presence, 3), clarity=round(clarity, 3), continuity=round(continuity, 3)
        )
        value = presence * (0.5 + 0.25 * clarity + 0.25 * continuity)
        reason = (
            f"vocals in {activity.fraction:.0%} of the clip"
            if activity.present
            else "vocals requested but none detected"
        )
        return ScoreResult(value, reason, details)
