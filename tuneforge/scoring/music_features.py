"""Musical features the composition/attribute/vocal scorers share, cached on the Clip like the
ones in features.py (which they build on: one STFT, one chroma, one onset envelope): whether a
clip can be judged at all, segments (beats or 0.5 s) with chroma pooled over them, and the pulse.

Built on these, each in its own module: harmony_features (key, chords), melody_features (pitch
line, notes), voice_activity (silero-vad) and envelope_features (how sounds start and stop).
Everything runs at low resolution on purpose — a 30 s clip costs well under half a CPU-second
for all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuneforge.scoring import features
from tuneforge.scoring.clip import Clip

EPS = 1e-10
POOL_SECONDS = 0.5  # segment length when no usable beat grid exists


def frames_per_second(clip: Clip) -> float:
    return clip.sr / float(features.HOP)


MIN_MUSIC_SECONDS = 1.0  # protocol.MIN_DURATION_S: shorter is not a piece of music


def ramp(value: float, low: float, high: float) -> float:
    """0 at or below `low`, 1 at or above `high`, linear between (reversed when high < low)."""
    if not np.isfinite(value):
        return 0.0
    return float(np.clip((value - low) / (high - low), 0.0, 1.0))


def unscorable_reason(clip: Clip) -> str | None:
    """Why a clip cannot be judged musically (too short, silent, constant), or None."""
    if clip.duration_seconds < MIN_MUSIC_SECONDS:
        return f"clip is {clip.duration_seconds:.2f} s, shorter than {MIN_MUSIC_SECONDS:g} s"
    if not np.all(np.isfinite(clip.y)):
        return "clip contains non-finite samples"
    edge = int(0.05 * clip.sr)  # resampling rings at the edges even for a constant input
    inner = clip.y[edge:-edge] if clip.y.size > 4 * edge else clip.y
    if float(np.std(inner)) < 1e-4:  # -80 dBFS: digital silence or a DC offset
        return "clip is silent (or a constant DC level)"
    return None


# ---------------------------------------------------------------- segments and pooled features


@dataclass(frozen=True)
class Segments:
    """Frame index where each segment starts (last one ends at the clip end), and their kind."""

    starts: np.ndarray
    kind: str  # "beats" or "fixed"
    seconds: float  # median segment length


def segments(clip: Clip) -> Segments:
    """Beat-synchronous segments when the beat grid is plausible (40-240 BPM, >= 8 beats),
    otherwise fixed 0.5 s segments. Used for chords, self-similarity and melody pooling."""

    def compute(c: Clip) -> Segments:
        n_frames = features.stft_magnitude(c).shape[1]
        fps = frames_per_second(c)
        grid = features.beats(c)
        beat_frames = np.unique(grid.frames[(grid.frames >= 0) & (grid.frames < n_frames)])
        if 40.0 <= grid.tempo_bpm <= 240.0 and len(beat_frames) >= 8:
            starts = np.concatenate([[0], beat_frames[beat_frames > 0]]).astype(int)
            return Segments(starts, "beats", float(np.median(np.diff(starts)) / fps))
        step = max(1, int(round(POOL_SECONDS * fps)))
        return Segments(np.arange(0, n_frames, step, dtype=int), "fixed", step / fps)

    return clip.feature(compute)


def pool(matrix: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Mean of `matrix` [d, frames] over each segment -> [d, len(starts)]."""
    n = matrix.shape[1]
    starts = starts[starts < n]
    if len(starts) == 0:
        return np.zeros((matrix.shape[0], 0))
    sums = np.add.reduceat(matrix, starts, axis=1)
    lengths = np.diff(np.concatenate([starts, [n]]))
    return sums / np.maximum(lengths, 1)[None, :]


def frame_weights(clip: Clip) -> np.ndarray:
    """Per-frame weight in [0, 1]: RMS relative to the clip's loud frames (quiet frames' chroma is
    noise, so they count less)."""

    def compute(c: Clip) -> np.ndarray:
        level = features.rms(c)
        top = float(np.quantile(level, 0.95)) if level.size else 0.0
        return np.clip(level / top, 0.0, 1.0) if top > EPS else np.zeros_like(level)

    return clip.feature(compute)


def segment_chroma(clip: Clip) -> np.ndarray:
    """Chroma pooled per segment [12, segments], each column summing to 1 (0 if silent)."""

    def compute(c: Clip) -> np.ndarray:
        chroma = features.chroma(c) * frame_weights(c)[None, : features.chroma(c).shape[1]]
        pooled = pool(chroma, segments(c).starts)
        totals = pooled.sum(axis=0, keepdims=True)
        return np.where(totals > EPS, pooled / np.maximum(totals, EPS), 0.0)

    return clip.feature(compute)


def global_chroma(clip: Clip) -> np.ndarray:
    """Loudness-weighted mean chroma over the clip [12], summing to 1 (all zero if silent)."""

    def compute(c: Clip) -> np.ndarray:
        chroma = features.chroma(c)
        weights = frame_weights(c)[: chroma.shape[1]]
        total = chroma @ weights
        return total / total.sum() if total.sum() > EPS else np.zeros(12)

    return clip.feature(compute)


def chroma_contrast(clip: Clip) -> float:
    """How far the mean chroma is from flat: std/mean of its 12 bins (0 flat/noise, ~0.5+ tonal)."""

    def compute(c: Clip) -> float:
        g = global_chroma(c)
        return float(g.std() / g.mean()) if g.mean() > EPS else 0.0

    return clip.feature(compute)


# ---------------------------------------------------------------- pulse


def onset_autocorrelation(clip: Clip, changes: bool = False) -> np.ndarray:
    """Autocorrelation by lag in frames of the attack envelope (or, with `changes`, of the
    note-change envelope: attacks and releases), 1 at lag 0, unbiased (divided by the overlap
    so long lags are not penalised for being long). Empty without onsets."""

    def compute(c: Clip, changes: bool) -> np.ndarray:
        source = features.change_envelope(c) if changes else features.onset_envelope(c)
        envelope = source.astype(np.float64)
        if envelope.size < 4 or not np.any(envelope > 0):
            return np.zeros(0)
        centred = envelope - envelope.mean()
        spectrum = np.fft.rfft(centred, n=2 * len(centred))
        acf = np.fft.irfft(np.abs(spectrum) ** 2)[: len(centred)]
        if acf[0] <= EPS:
            return np.zeros(0)
        result: np.ndarray = acf / acf[0] * len(centred) / (len(centred) - np.arange(len(centred)))
        return result

    return clip.feature(compute, changes)


def tempo_salience(clip: Clip, bpm: float) -> float:
    """How strongly the onsets repeat at the beat period of `bpm` (best autocorrelation within
    +-3 % of that lag), 0..1; 0 when the lag does not fit in half the clip."""
    acf = onset_autocorrelation(clip)
    if bpm <= 0 or acf.size == 0:
        return 0.0
    lag = 60.0 / bpm * frames_per_second(clip)
    lo, hi = int(np.floor(lag * 0.97)), int(np.ceil(lag * 1.03)) + 1
    if lo < 1 or hi > acf.size // 2:
        return 0.0
    return float(np.clip(acf[lo:hi].max(), 0.0, 1.0))


@dataclass(frozen=True)
class Pulse:
    strength: float  # best onset autocorrelation at a lag of 0.25-2 s, 0..1
    lag_seconds: float
    beat_regularity: float  # 1 - CV of inter-beat intervals, 0..1


def pulse(clip: Clip) -> Pulse:
    """How clearly the onsets repeat at a steady period, and how even the beat grid is."""

    def compute(c: Clip) -> Pulse:
        # The pulse is where notes change, releases included (legato music; and a reversed
        # clip's dead stops cannot make its pulse clearer than the original's).
        acf = onset_autocorrelation(c, changes=True)
        fps = frames_per_second(c)
        lo, hi = int(0.25 * fps), int(2.0 * fps)
        if acf.size < 2 * hi:
            return Pulse(0.0, 0.0, 0.0)
        window = acf[lo:hi]
        best = int(np.argmax(window))
        grid = features.beats(c)
        regularity = 0.0
        if len(grid.times) >= 4:
            intervals = np.diff(grid.times)
            regularity = float(np.clip(1.0 - intervals.std() / max(intervals.mean(), EPS), 0, 1))
        return Pulse(float(np.clip(window[best], 0.0, 1.0)), (best + lo) / fps, regularity)

    return clip.feature(compute)
