"""Musicality scorer: is there a clear tonal centre, a harmonic progression that moves at a
plausible rate (not static, not random), and a steady rhythmic pulse? Mean of the three parts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tuneforge.scoring import transcription
from tuneforge.scoring.base import Challenge, RoundContext, Scorer, ScoreResult
from tuneforge.scoring.harmony_features import TRIAD_NAMES, chord_track, key_estimate
from tuneforge.scoring.keys import Key
from tuneforge.scoring.music_features import chroma_contrast, pulse, ramp

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)  # natural minor; V of harmonic minor is allowed below
PULSE_FULL_AT = 0.65  # pulse strength (music_features.pulse) that earns full credit


def diatonic_triads(key: Key) -> set[int]:
    """Triad indices (harmony_features.TRIADS order: majors 0-11, minors 12-23) that belong to
    `key`: I ii iii IV V vi in major; i iv v III VI VII and the harmonic-minor V in minor."""
    t = key.tonic
    if key.minor:
        majors = [(t + s) % 12 for s in (3, 8, 10, 7)]
        minors = [(t + s) % 12 for s in (0, 5, 7)]
    else:
        majors = [(t + s) % 12 for s in (0, 5, 7)]
        minors = [(t + s) % 12 for s in (2, 4, 9)]
    return set(majors) | {12 + m for m in minors}


def run_lengths(labels: np.ndarray) -> np.ndarray:
    """Lengths of runs of equal consecutive labels."""
    if labels.size == 0:
        return np.zeros(0, dtype=int)
    change = np.flatnonzero(np.diff(labels) != 0) + 1
    bounds = np.concatenate([[0], change, [labels.size]])
    return np.diff(bounds)


def chord_rate_credit(median_chord_seconds: float) -> float:
    """1 for chords held ~0.8-6 s; falls to 0 for a change every ~0.25 s (random) and towards
    0.3 for a single static chord over 20 s or more."""
    if median_chord_seconds < 0.8:
        return ramp(median_chord_seconds, 0.25, 0.8)
    if median_chord_seconds <= 6.0:
        return 1.0
    return 1.0 - 0.7 * ramp(median_chord_seconds, 6.0, 20.0)


class MusicalityScorer(Scorer):
    name = "musicality"
    needs_music = True
    requires = (transcription.ensure_available,)  # the key is read from transcribed notes

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        estimate = key_estimate(clip)
        contrast = chroma_contrast(clip)
        # A flat chroma (noise, pure drums) correlates by chance with some key: both must hold.
        tonal = ramp(estimate.correlation, 0.2, 0.6) * ramp(contrast, 0.03, 0.15)

        track = chord_track(clip)
        voiced = track.labels >= 0
        labels = track.labels[voiced]
        if labels.size >= 2:
            chord_seconds = float(np.median(run_lengths(labels))) * track.segment_seconds
            fit = float(np.mean(track.fit[voiced]))
            in_key = float(np.isin(labels, list(diatonic_triads(estimate.key))).mean())
        else:
            chord_seconds, fit, in_key = 0.0, 0.0, 0.0
        harmonic = (
            ramp(fit, 0.5, 0.72)
            * (0.5 + 0.5 * chord_rate_credit(chord_seconds))
            * (0.5 + 0.5 * in_key)
        )

        beat = pulse(clip)
        # Full pulse credit from 0.65 (note changes, releases included): real ensembles of the
        # tuning half without a drum kit pulse at 0.2-0.9, a drum machine at ~0.8. A piece cut
        # at its bar lines and reordered keeps each bar's beats but loses their phase across
        # the cuts, and its pulse falls (below the original's in 38 of 42 tuning pieces).
        rhythm = ramp(beat.strength, 0.1, PULSE_FULL_AT) * (0.5 + 0.5 * beat.beat_regularity)

        value = (tonal + harmonic + rhythm) / 3.0
        details = {
            "key": estimate.key.name,
            "key_correlation": round(estimate.correlation, 3),
            "chroma_contrast": round(contrast, 3),
            "tonal_clarity": round(tonal, 3),
            "chord_fit": round(fit, 3),
            "median_chord_seconds": round(chord_seconds, 2),
            "chords_in_key": round(in_key, 3),
            "chord_changes": int(np.count_nonzero(np.diff(labels))) if labels.size else 0,
            "first_chords": [TRIAD_NAMES[i] for i in labels[:1]]
            + [TRIAD_NAMES[b] for a, b in zip(labels[:-1], labels[1:], strict=True) if a != b][:7],
            "harmonic_progression": round(harmonic, 3),
            "pulse_strength": round(beat.strength, 3),
            "pulse_period_s": round(beat.lag_seconds, 3),
            "beat_regularity": round(beat.beat_regularity, 3),
            "rhythmic_pulse": round(rhythm, 3),
        }
        reason = (
            f"tonal clarity {tonal:.2f}, harmonic progression {harmonic:.2f}, "
            f"rhythmic pulse {rhythm:.2f}"
        )
        return ScoreResult(value, reason, details)
