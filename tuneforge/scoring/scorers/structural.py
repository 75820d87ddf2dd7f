"""Structural scorer: does the piece repeat material and move between sections, and does it
really begin and end (from/to quiet, a fade or a decaying final chord — not a hard cut at full
level)? Works on a beat-synchronous self-similarity matrix (tens of rows, not frames)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tuneforge.scoring import features
from tuneforge.scoring.base import Challenge, RoundContext, Scorer, ScoreResult
from tuneforge.scoring.music_features import (
    frame_weights,
    pool,
    ramp,
    segment_chroma,
    segments,
)

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip

MIN_REPEAT_SECONDS = 2.0
EDGE_SECONDS = 0.05  # level of the first/last 50 ms decides "hard start/cut"
NOVELTY_KERNEL_SECONDS = 4.0
# Section changes are only expected of clips this long: a 15-30 s excerpt may well be one
# section, and a novelty peak in one is as often a splice as a new section.
SECTIONS_FROM_SECONDS = 30.0
REPETITION_EXPECTED_SECONDS = (15.0, 40.0)
# The ending weighs most: a piece that stops in the middle of a bar at full level has not ended,
# whatever came before. Repetition counts less than it did (0.5): a short excerpt of real music
# need not repeat itself, while exact repetition is the cheapest thing to generate.
WEIGHTS = {"repetition": 0.3, "sections": 0.2, "beginning": 0.1, "ending": 0.4}


def self_similarity(clip: Clip) -> np.ndarray:
    """Cosine self-similarity [segments, segments] of pooled chroma + timbre (MFCC 1-12)."""

    def compute(c: Clip) -> np.ndarray:
        grid = segments(c)
        timbre = pool(features.mfcc(c)[1:13], grid.starts)
        timbre = timbre - timbre.mean(axis=1, keepdims=True)
        timbre /= max(float(np.linalg.norm(timbre, axis=0).mean()), 1e-10)
        harmony = segment_chroma(c)
        harmony = harmony / np.maximum(np.linalg.norm(harmony, axis=0), 1e-10)[None, :]
        stacked = np.vstack([harmony, timbre])
        unit = stacked / np.maximum(np.linalg.norm(stacked, axis=0), 1e-10)[None, :]
        similarity: np.ndarray = unit.T @ unit
        return similarity

    return clip.feature(compute)


def repetition_strength(similarity: np.ndarray, min_lag: int) -> tuple[float, int]:
    """(best mean similarity along a diagonal at lag >= min_lag minus the mean off-diagonal
    similarity, that lag). High when some stretch of music comes back later."""
    n = similarity.shape[0]
    if n < 2 * min_lag or min_lag < 1:
        return 0.0, 0
    off = similarity[~np.eye(n, dtype=bool)]
    baseline = float(off.mean())
    lags = np.arange(min_lag, n // 2 + 1)
    means = np.array([np.diagonal(similarity, offset=int(lag)).mean() for lag in lags])
    best = int(np.argmax(means))
    return max(0.0, float(means[best]) - baseline), int(lags[best])


def novelty_boundaries(similarity: np.ndarray, half_width: int) -> np.ndarray:
    """Segment indices of section boundaries: peaks of a checkerboard-kernel novelty curve that
    stand well above its median (Foote 2000)."""
    n = similarity.shape[0]
    if n < 2 * half_width + 2 or half_width < 1:
        return np.zeros(0, dtype=int)
    sign = np.concatenate([-np.ones(half_width), np.ones(half_width)])
    kernel = np.outer(sign, sign)
    novelty = np.zeros(n)
    for i in range(half_width, n - half_width):
        block = similarity[i - half_width : i + half_width, i - half_width : i + half_width]
        novelty[i] = float((block * kernel).sum()) / kernel.size
    inner = novelty[half_width : n - half_width]
    threshold = float(np.median(inner)) + 2.0 * float(np.std(inner))
    peaks = [
        i
        for i in range(half_width + 1, n - half_width - 1)
        if novelty[i] > threshold and novelty[i] >= novelty[i - 1] and novelty[i] > novelty[i + 1]
    ]
    return np.array(peaks, dtype=int)


def edge_levels_db(clip: Clip) -> tuple[float, float, float]:
    """(start, end, fade) in dB: first/last 50 ms RMS relative to the loud level of the clip
    (95th percentile frame RMS), and the level change over the last 3 s (negative = fading)."""
    y = clip.y.astype(np.float64)
    edge = max(1, int(EDGE_SECONDS * clip.sr))
    level = features.rms(clip)
    loud = max(float(np.quantile(level, 0.95)), 1e-10)

    def db(segment: np.ndarray) -> float:
        level: float = 20.0 * np.log10(max(float(np.sqrt(np.mean(segment**2))), 1e-10) / loud)
        return level

    tail = max(1, int(3.0 * clip.sr))
    fade = db(y[-edge:]) - db(y[-tail : -tail + edge] if len(y) > tail else y[:edge])
    return db(y[:edge]), db(y[-edge:]), fade


class StructuralScorer(Scorer):
    name = "structural"
    needs_music = True

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        grid = segments(clip)
        similarity = self_similarity(clip)
        min_lag = max(2, int(round(MIN_REPEAT_SECONDS / max(grid.seconds, 1e-3))))
        repetition, lag = repetition_strength(similarity, min_lag)
        half_width = max(2, int(round(NOVELTY_KERNEL_SECONDS / 2 / max(grid.seconds, 1e-3))))
        boundaries = novelty_boundaries(similarity, half_width)
        seconds = clip.duration_seconds
        # Sections: a clip of a minute with no change at all is a loop; short clips may have
        # one section, so the expected count grows with length (one change per ~15 s).
        expected = seconds / 15.0
        sections = (
            1.0
            if seconds < SECTIONS_FROM_SECONDS
            else ramp(len(boundaries), 0.0, min(expected, 3.0))
        )
        start_db, end_db, fade_db = edge_levels_db(clip)
        beginning = 0.4 + 0.6 * ramp(-start_db, 6.0, 20.0)
        ending = max(ramp(-end_db, 6.0, 24.0), ramp(-fade_db, 3.0, 12.0))
        # Repetition is expected of clips long enough to hold a repeated phrase: not at all at
        # 15 s (an excerpt of a chorale does not repeat), fully from 40 s.
        expected_repeats = ramp(seconds, *REPETITION_EXPECTED_SECONDS)
        repeats = expected_repeats * ramp(repetition, 0.02, 0.2) + (1.0 - expected_repeats)
        value = (
            WEIGHTS["repetition"] * repeats
            + WEIGHTS["sections"] * sections
            + WEIGHTS["beginning"] * beginning
            + WEIGHTS["ending"] * ending
        )
        loud = frame_weights(clip)
        details = {
            "segments": int(similarity.shape[0]),
            "segment_kind": grid.kind,
            "repetition": round(repetition, 3),
            "repetition_lag_s": round(lag * grid.seconds, 2),
            "section_boundaries_s": [
                round(float(grid.starts[b]) / clip.sr * features.HOP, 1) for b in boundaries
            ],  # fmt: skip
            "start_level_db": round(start_db, 1),
            "end_level_db": round(end_db, 1),
            "final_3s_level_change_db": round(fade_db, 1),
            "quiet_frame_share": round(float((loud < 0.05).mean()), 3),
            "parts": {
                "repetition": round(repeats, 3),
                "sections": round(sections, 3),
                "beginning": round(beginning, 3),
                "ending": round(ending, 3),
            },
        }
        reason = (
            f"repetition {repetition:.2f} (lag {lag * grid.seconds:.1f} s), "
            f"{len(boundaries)} section changes, start {start_db:.0f} dB, end {end_db:.0f} dB"
        )
        return ScoreResult(value, reason, details)
