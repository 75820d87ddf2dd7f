"""Harmony features for the musicality and attribute scorers, cached on the Clip: the key (the
pitch classes of the transcribed notes and the opening chord) and the chord track (triad
templates on beat-pooled chroma, Viterbi-smoothed). Built on the pooled chroma of
music_features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuneforge.scoring import features
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.keys import (
    KEY_NAMES,
    KeyEstimate,
    estimate_from_correlations,
    key_correlations,
)
from tuneforge.scoring.music_features import (
    EPS,
    frame_weights,
    frames_per_second,
    segment_chroma,
    segments,
)
from tuneforge.scoring.transcription import pitch_class_shares

OPENING_SECONDS = 1.0
# The opening second's chroma adds a quarter of its weight to the key evidence: the notes alone
# confuse a minor key with its relative major (the same notes), while music very often opens
# on its tonic chord. (D69: with the transcription's pitch classes a quarter beat a half.)
OPENING_WEIGHT = 0.25
KEY_LOG_FLOOR = 0.02  # log(share + floor): rare pitch classes count, one loud note cannot rule


def opening_chroma(clip: Clip) -> np.ndarray:
    """Loudness-weighted chroma of the first OPENING_SECONDS after the music starts [12]."""

    def compute(c: Clip) -> np.ndarray:
        chroma = features.chroma(c)
        weights = frame_weights(c)[: chroma.shape[1]]
        audible = np.flatnonzero(weights > 0.1)
        if audible.size == 0:
            return np.zeros(12)
        first = int(audible[0])
        span = slice(first, first + max(1, int(OPENING_SECONDS * frames_per_second(c))))
        total = chroma[:, span] @ weights[span]
        return total / total.sum() if total.sum() > EPS else np.zeros(12)

    return clip.feature(compute)


def key_estimate(clip: Clip) -> KeyEstimate:
    """Key from profile correlation of the log pitch-class shares of the transcribed notes
    (transcription.pitch_class_shares: notes, not their overtones, so a key is not pulled to its
    dominant), with the opening second's chroma added at OPENING_WEIGHT. Correlation and margin
    are those of the combined evidence, scaled back to -1..1. A clip with no notes correlates 0.
    Raises TranscriberUnavailable."""

    def compute(c: Clip) -> KeyEstimate:
        shares = pitch_class_shares(c)
        evidence = np.log(shares + KEY_LOG_FLOOR) if shares.sum() > EPS else shares
        corr = key_correlations(evidence) + OPENING_WEIGHT * key_correlations(opening_chroma(c))
        return estimate_from_correlations(corr / (1.0 + OPENING_WEIGHT))

    return clip.feature(compute)


# ---------------------------------------------------------------- chords


def _triad_templates() -> tuple[np.ndarray, list[str]]:
    """24 major/minor triad templates [24, 12] (unit norm) and their names."""
    names, rows = [], []
    for quality, third in (("", 4), ("m", 3)):
        for root in range(12):
            row = np.zeros(12)
            row[[root, (root + third) % 12, (root + 7) % 12]] = 1.0
            rows.append(row / np.linalg.norm(row))
            names.append(KEY_NAMES[root] + quality)
    return np.array(rows), names


TRIADS, TRIAD_NAMES = _triad_templates()


@dataclass(frozen=True)
class ChordTrack:
    labels: np.ndarray  # triad index per segment (-1 for silent segments)
    fit: np.ndarray  # cosine of the segment chroma with its best triad, 0..1
    segment_seconds: float


CHORD_SWITCH_PENALTY = 0.08  # cosine units: a passing melody note should not count as a chord


def chord_track(clip: Clip) -> ChordTrack:
    """Best triad per segment: template matching on pooled chroma, smoothed by Viterbi with a
    switching cost so melody notes over a held chord do not read as chord changes."""

    def compute(c: Clip) -> ChordTrack:
        pooled = segment_chroma(c)
        norms = np.linalg.norm(pooled, axis=0)
        unit = pooled / np.maximum(norms, EPS)[None, :]
        scores = TRIADS @ unit
        labels = viterbi_labels(scores, CHORD_SWITCH_PENALTY)
        fit = scores[labels, np.arange(len(labels))] if len(labels) else np.zeros(0)
        silent = norms <= EPS
        labels = np.where(silent, -1, labels)
        return ChordTrack(labels.astype(int), np.where(silent, 0.0, fit), segments(c).seconds)

    return clip.feature(compute)


def viterbi_labels(scores: np.ndarray, switch_penalty: float) -> np.ndarray:
    """Best state path through `scores` [states, steps] with a constant cost per state change."""
    n_states, n_steps = scores.shape
    if n_steps == 0:
        return np.zeros(0, dtype=int)
    total = scores[:, 0].copy()
    back = np.zeros((n_states, n_steps), dtype=int)
    for t in range(1, n_steps):
        best_prev = int(np.argmax(total))
        switch = total[best_prev] - switch_penalty
        stay = total >= switch
        back[:, t] = np.where(stay, np.arange(n_states), best_prev)
        total = np.where(stay, total, switch) + scores[:, t]
    path = np.zeros(n_steps, dtype=int)
    path[-1] = int(np.argmax(total))
    for t in range(n_steps - 1, 0, -1):
        path[t - 1] = back[path[t], t]
    return path
