"""Melody scorer: is there a predominant melodic line, made of held notes (not pitch jitter),
moving mostly by steps and small skips (few leaps per second), with phrases that come back?
The line is the harmonic-summation pitch track of melody_features.pitch_line (semitone
resolution, one matrix product)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tuneforge.scoring.base import Challenge, RoundContext, Scorer, ScoreResult
from tuneforge.scoring.melody_features import notes, pitch_line
from tuneforge.scoring.music_features import pool, ramp, segments

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip

SMALL_INTERVAL = 4  # semitones: steps and thirds, the bulk of melodic motion in most styles
MIN_REPEAT_SECONDS = 2.0


def phrase_repetition(pitch_classes: np.ndarray, min_lag: int) -> float:
    """Repetition of a melody sampled per segment ([12, segments] pitch-class weights): the best
    mean cosine similarity between the line and itself shifted by >= min_lag segments, minus the
    mean similarity of all segment pairs (so a line that is one note throughout earns nothing)."""
    n = pitch_classes.shape[1]
    if n < 2 * min_lag or min_lag < 1:
        return 0.0
    norms = np.linalg.norm(pitch_classes, axis=0)
    unit = pitch_classes / np.maximum(norms, 1e-10)[None, :]
    similarity = unit.T @ unit
    active = norms > 1e-10
    pair = active[:, None] & active[None, :]
    off_diagonal = pair & ~np.eye(n, dtype=bool)
    if off_diagonal.sum() == 0:
        return 0.0
    baseline = float(similarity[off_diagonal].mean())
    best = 0.0
    for lag in range(min_lag, n // 2 + 1):
        mask = np.diagonal(pair, offset=lag)
        if mask.sum() >= min_lag:
            best = max(best, float(np.diagonal(similarity, offset=lag)[mask].mean()))
    return max(0.0, best - baseline)


class MelodyScorer(Scorer):
    name = "melody"
    needs_music = True

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        line = pitch_line(clip)
        events = notes(clip)
        voiced_fraction = float(line.voiced.mean()) if line.voiced.size else 0.0
        intervals = np.abs(np.diff(events.pitches))
        small = float(np.mean(intervals <= SMALL_INTERVAL)) if intervals.size else 0.0
        median_note = float(np.median(events.durations)) if events.durations.size else 0.0

        # Melody pitch classes pooled per segment (beats or 0.5 s) for the repetition check.
        one_hot = np.zeros((12, line.midi.size))
        voiced_idx = np.flatnonzero(line.voiced)
        one_hot[(line.midi[voiced_idx].astype(int)) % 12, voiced_idx] = 1.0
        grid = segments(clip)
        per_segment = pool(one_hot, grid.starts)
        min_lag = max(2, int(round(MIN_REPEAT_SECONDS / max(grid.seconds, 1e-3))))
        repetition = phrase_repetition(per_segment, min_lag)

        leaps_per_second = float(np.sum(intervals > SMALL_INTERVAL)) / max(
            clip.duration_seconds, 1e-3
        )

        # Ranges recalibrated on real music (the calibration set's tuning half: median note
        # 0.21 s, 43% small intervals, 1.7 leaps/s as the pitch line moves between voices,
        # phrase repetition ~0.12 over 15 s). The old ranges were met only by slow, stepwise,
        # looped lines: they rewarded the synth backend over real compositions.
        presence = ramp(voiced_fraction, 0.1, 0.5)
        held = ramp(median_note, 0.05, 0.15)
        stepwise = ramp(small, 0.1, 0.35)
        coherent = 1.0 - ramp(leaps_per_second, 3.0, 8.0)
        repeats = ramp(repetition, 0.0, 0.1)
        # No line, no melody: the other qualities only count in proportion to its presence.
        # Repetition weighs least: by chance alone a line repeats a little.
        value = presence * (0.4 * held + 0.15 * stepwise + 0.3 * coherent + 0.15 * repeats)
        details = {
            "voiced_fraction": round(voiced_fraction, 3),
            "notes": int(events.pitches.size),
            "notes_per_second": round(events.pitches.size / max(clip.duration_seconds, 1e-3), 2),
            "median_note_seconds": round(median_note, 3),
            "small_interval_share": round(small, 3),
            "leaps_per_second": round(leaps_per_second, 2),
            "phrase_repetition": round(repetition, 3),
            "pitch_range_semitones": int(np.ptp(events.pitches)) if events.pitches.size else 0,
            "parts": {
                "presence": round(presence, 3),
                "held_notes": round(held, 3),
                "stepwise_motion": round(stepwise, 3),
                "contour_coherence": round(coherent, 3),
                "phrase_repetition": round(repeats, 3),
            },
        }
        reason = (
            f"melodic line in {voiced_fraction:.0%} of frames, median note {median_note:.2f} s, "
            f"{small:.0%} small intervals, repetition {repetition:.2f}"
        )
        return ScoreResult(value, reason, details)
