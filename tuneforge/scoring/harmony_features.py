"""Harmony features for the musicality and attribute scorers, cached on the Clip: the key (a
long-window pitch-class profile of the 30 Hz-1 kHz band, the opening chord and the bass line) and
the chord track (triad templates on beat-pooled chroma, Viterbi-smoothed). Built on the pooled
chroma of music_features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuneforge.scoring import features
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.keys import (
    KEY_NAMES,
    KeyEstimate,
    bass_correlations,
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

OPENING_SECONDS = 1.0
OPENING_WEIGHT = 0.5
# Key chroma: a long-window STFT of the 30 Hz-1 kHz band, where bass and inner voices name the
# key, resolves semitones down to the bass (2.7 Hz bins) that the shared 2048-point STFT blurs.
KEY_N_FFT, KEY_HOP = 8192, 2048
KEY_BAND_HZ = (30.0, 1000.0)
KEY_SEMITONE_TOLERANCE = 0.3  # bins further than this from an equal-tempered pitch are ignored
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


BASS_HIGH_HZ = 200.0  # the bass line: below ~G3
BASS_WEIGHT = 0.3  # bass-line evidence added to the key correlations (tuning half: 32 -> 33 of 35)


def _key_band_chroma(clip: Clip) -> tuple[np.ndarray, np.ndarray]:
    """(key chroma, bass chroma): pitch-class shares [12] of the 30 Hz-1 kHz band and of the
    bass below BASS_HIGH_HZ, from one long-window STFT; each sums to 1 (all zero if silent).
    Every bin within 0.3 semitone of an equal-tempered pitch adds its power to that class."""

    def compute(c: Clip) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray(c.y, dtype=np.float64)
        if len(y) < KEY_N_FFT:
            y = np.concatenate([y, np.zeros(KEY_N_FFT - len(y))])
        n_frames = 1 + (len(y) - KEY_N_FFT) // KEY_HOP
        window = np.hanning(KEY_N_FFT)
        freqs = np.fft.rfftfreq(KEY_N_FFT, 1.0 / c.sr)
        band = np.flatnonzero((freqs >= KEY_BAND_HZ[0]) & (freqs <= KEY_BAND_HZ[1]))
        midi = 69.0 + 12.0 * np.log2(freqs[band] / 440.0)
        near = np.abs(midi - np.round(midi)) < KEY_SEMITONE_TOLERANCE
        classes = np.mod(np.round(midi[near]), 12).astype(int)
        bass = freqs[band][near] <= BASS_HIGH_HZ
        power = np.zeros(len(band))
        for start in range(0, n_frames, 64):  # blocks bound the memory of long clips
            index = np.arange(start, min(n_frames, start + 64))
            frames = y[index[:, None] * KEY_HOP + np.arange(KEY_N_FFT)[None, :]] * window
            power += (np.abs(np.fft.rfft(frames, axis=1)[:, band]) ** 2).sum(axis=0)

        def shares(mask: np.ndarray) -> np.ndarray:
            counts = np.bincount(classes[mask], weights=power[near][mask], minlength=12)
            total = float(counts.sum())
            return counts / total if total > EPS else np.zeros(12)

        return shares(np.ones_like(bass)), shares(bass)

    return clip.feature(compute)


def key_chroma(clip: Clip) -> np.ndarray:
    """Pitch-class energy shares [12] (summing to 1, all zero if silent) of the 30 Hz-1 kHz band
    from a long-window STFT."""
    return _key_band_chroma(clip)[0]


def key_estimate(clip: Clip) -> KeyEstimate:
    """Key from profile correlation of the log key chroma, with the opening second's chroma added
    at half weight: pitch distributions alone confuse a minor key with its relative major (the
    same notes), while music very often opens on its tonic chord. The bass line adds its own
    evidence (keys.bass_correlations: the bass dwells on the tonic, then the dominant), which
    separates a key from its dominant when the melody visits the dominant's leading tone.
    Correlation and margin are those of the combined evidence, scaled back to -1..1. A silent
    clip correlates 0."""

    def compute(c: Clip) -> KeyEstimate:
        shares, bass = _key_band_chroma(c)
        evidence = np.log(shares + KEY_LOG_FLOOR) if shares.sum() > EPS else shares
        corr = key_correlations(evidence) + OPENING_WEIGHT * key_correlations(opening_chroma(c))
        weight = 1.0 + OPENING_WEIGHT
        if bass.sum() > EPS:
            corr = corr + BASS_WEIGHT * bass_correlations(np.log(bass + KEY_LOG_FLOOR))
            weight += BASS_WEIGHT
        return estimate_from_correlations(corr / weight)

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
