"""Musical features only the composition/attribute/vocal scorers need, cached on the Clip like the
shared ones in features.py (which they build on: one STFT, one chroma, one onset envelope).

Everything here runs at low resolution on purpose: segment-pooled chroma (beats or 0.5 s), a
semitone pitch-salience line, and silero-vad at 16 kHz in parallel streams — a 30 s clip costs
well under half a CPU-second for all of it.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuneforge.audio import Audio, resample
from tuneforge.scoring import features
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.keys import (
    KEY_NAMES,
    KeyEstimate,
    bass_correlations,
    estimate_from_correlations,
    key_correlations,
)

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


def chroma_contrast(clip: Clip) -> float:
    """How far the mean chroma is from flat: std/mean of its 12 bins (0 flat/noise, ~0.5+ tonal)."""

    def compute(c: Clip) -> float:
        g = global_chroma(c)
        return float(g.std() / g.mean()) if g.mean() > EPS else 0.0

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
        return acf / acf[0] * len(centred) / (len(centred) - np.arange(len(centred)))

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


# ---------------------------------------------------------------- predominant pitch line

PITCH_MIDI_LOW, PITCH_MIDI_HIGH = 48, 96  # C3..C7: where pitched parts are looked for
LEAD_MIDI_LOW = 55  # G3: lead lines sit above; below, chord voicings and bass win the sum
_HARMONICS = 6
_HARMONIC_DECAY = 0.8
WHITENING_BINS = 25  # ~270 Hz of 10.8 Hz bins (22.05 kHz, n_fft 2048)
# Salience of the best note: white noise has a median ~7.0 (90th pct 7.8), tonal mixes 10-15,
# the same mix with noise at 10 dB SNR ~10.6 (measured on tests.helpers.signals).
VOICED_SALIENCE = 8.5
_salience_cache: dict[tuple[int, int], np.ndarray] = {}
_salience_lock = threading.Lock()


def _salience_matrix(sr: int, n_fft: int) -> np.ndarray:
    """[midi notes, bins] harmonic-summation weights (Gaussian bumps, 0.35 semitone wide)."""
    with _salience_lock:
        key = (sr, n_fft)
        if key not in _salience_cache:
            freqs = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
            freqs[0] = freqs[1] / 2
            midi = np.arange(PITCH_MIDI_LOW, PITCH_MIDI_HIGH + 1)
            f0 = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
            matrix = np.zeros((len(midi), len(freqs)))
            for h in range(1, _HARMONICS + 1):
                distance = 12.0 * np.log2(freqs[None, :] / (h * f0[:, None]))
                matrix += _HARMONIC_DECAY ** (h - 1) * np.exp(-0.5 * (distance / 0.35) ** 2)
            matrix[:, freqs > 5000.0] = 0.0  # above 5 kHz harmonics add noise, not pitch
            _salience_cache[key] = matrix.astype(np.float32)
        return _salience_cache[key]


@dataclass(frozen=True)
class PitchLine:
    midi: np.ndarray  # predominant MIDI note per analysis frame (0 where unvoiced)
    salience: np.ndarray  # best whitened harmonic-sum salience per frame (noise stays ~7)
    voiced: np.ndarray  # bool per frame
    frame_seconds: float


def pitch_line(clip: Clip) -> PitchLine:
    """Predominant pitch per frame by harmonic summation of spectral peaks (cheap melody
    extraction: one matrix product; semitone resolution is all the melody scorer needs). The
    spectrum is whitened first — each bin over its ~270 Hz neighbourhood, in log units — so the
    salience is level-independent and a noise floor does not read as pitch."""

    def compute(c: Clip) -> PitchLine:
        from scipy.ndimage import uniform_filter1d

        magnitude = features.stft_magnitude(c)
        floor = uniform_filter1d(magnitude, WHITENING_BINS, axis=0) + EPS
        peaks = np.maximum(0.0, np.log(np.maximum(magnitude / floor, EPS)))
        weights = _salience_matrix(c.sr, features.N_FFT)
        best = (weights @ peaks).max(axis=0)
        # Which note leads is a question of level, so the choice uses the magnitude above the
        # local floor (compressed), while voicing above uses the level-free salience.
        leading = weights[LEAD_MIDI_LOW - PITCH_MIDI_LOW :] @ np.sqrt(
            np.maximum(0.0, magnitude - floor)
        )
        midi = (np.argmax(leading, axis=0) + LEAD_MIDI_LOW).astype(float)
        loud = frame_weights(c)[: len(midi)] > 0.05
        voiced = (best >= VOICED_SALIENCE) & loud
        midi = np.where(voiced, midi, 0.0)
        return PitchLine(midi, best, voiced, features.HOP / float(c.sr))

    return clip.feature(compute)


@dataclass(frozen=True)
class Notes:
    pitches: np.ndarray  # MIDI per note
    starts: np.ndarray  # seconds
    durations: np.ndarray  # seconds


def notes(clip: Clip, min_seconds: float = 0.07) -> Notes:
    """Note events from the pitch line: runs of the same (median-smoothed) MIDI note."""

    def compute(c: Clip, min_seconds: float) -> Notes:
        line = pitch_line(c)
        midi = line.midi
        if midi.size >= 5:
            from scipy.ndimage import median_filter

            midi = median_filter(midi, size=5, mode="nearest")
        change = np.flatnonzero(np.diff(midi) != 0) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change, [len(midi)]])
        keep = (midi[starts] > 0) & ((ends - starts) * line.frame_seconds >= min_seconds)
        return Notes(
            midi[starts][keep],
            starts[keep] * line.frame_seconds,
            (ends - starts)[keep] * line.frame_seconds,
        )

    return clip.feature(compute, min_seconds)


# ---------------------------------------------------------------- voice activity (silero-vad)

VAD_RATE = 16_000
VAD_CHUNK = 512  # samples per silero step at 16 kHz (32 ms)
VAD_CONTEXT = 64
VAD_STREAMS_SECONDS = 8.0  # one parallel stream per this much audio
VAD_WARMUP_CHUNKS = 32  # ~1 s of overlap so each stream's state settles before it counts
VOICE_PROBABILITY = 0.5
VOCAL_PRESENT_FRACTION = 0.08  # of the clip: below this, isolated blips are not "vocals"


class VoiceDetectorUnavailable(RuntimeError):
    """silero-vad or onnxruntime is missing or its model cannot be loaded."""


_vad_session: Any = None
_vad_lock = threading.Lock()


def _silero_session() -> Any:
    """One onnxruntime session of silero-vad per process (the model ships inside the wheel)."""
    global _vad_session
    with _vad_lock:
        if _vad_session is None:
            try:
                import onnxruntime
            except ImportError as error:
                raise VoiceDetectorUnavailable(f"onnxruntime not installed: {error}") from error
            path = _silero_model_path()
            options = onnxruntime.SessionOptions()
            options.inter_op_num_threads = 1
            options.intra_op_num_threads = 1
            _vad_session = onnxruntime.InferenceSession(
                path, sess_options=options, providers=["CPUExecutionProvider"]
            )
        return _vad_session


def _silero_model_path() -> str:
    """The ONNX model inside the silero-vad wheel, found without importing the package: its
    `__init__` imports torch (~570 MB resident), which a signal-only scoring worker never needs."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VoiceDetectorUnavailable("silero-vad not installed")
    folder = next(iter(spec.submodule_search_locations))
    path = os.path.join(folder, "data", "silero_vad.onnx")
    if not os.path.exists(path):
        raise VoiceDetectorUnavailable(f"silero-vad model missing at {path}")
    return path


def speech_probabilities(y16: np.ndarray) -> np.ndarray:
    """silero-vad speech probability per 32 ms chunk of 16 kHz mono audio. The clip is split into
    parallel streams (one batched ONNX call per step) that overlap by ~1 s of warm-up."""
    session = _silero_session()
    n_chunks = int(np.ceil(len(y16) / VAD_CHUNK))
    if n_chunks == 0:
        return np.zeros(0, dtype=np.float32)
    padded = np.zeros(n_chunks * VAD_CHUNK, dtype=np.float32)
    padded[: len(y16)] = y16
    chunks = padded.reshape(n_chunks, VAD_CHUNK)
    n_streams = max(1, int(len(y16) / VAD_RATE / VAD_STREAMS_SECONDS))
    per_stream = int(np.ceil(n_chunks / n_streams))
    steps = per_stream + VAD_WARMUP_CHUNKS
    # stream s covers chunks [s*per_stream - warmup, (s+1)*per_stream); index -1 = silence
    index = np.arange(n_streams)[:, None] * per_stream - VAD_WARMUP_CHUNKS + np.arange(steps)
    valid = (index >= 0) & (index < n_chunks)
    state = np.zeros((2, n_streams, 128), dtype=np.float32)
    context = np.zeros((n_streams, VAD_CONTEXT), dtype=np.float32)
    rate = np.array(VAD_RATE, dtype=np.int64)
    out = np.zeros(n_chunks, dtype=np.float32)
    zeros = np.zeros(VAD_CHUNK, dtype=np.float32)
    for step in range(steps):
        batch = np.stack(
            [chunks[index[s, step]] if valid[s, step] else zeros for s in range(n_streams)]
        )
        inputs = np.concatenate([context, batch], axis=1)
        prob, state = session.run(None, {"input": inputs, "state": state, "sr": rate})
        context = inputs[:, -VAD_CONTEXT:]
        if step >= VAD_WARMUP_CHUNKS:
            for s in range(n_streams):
                if valid[s, step]:
                    out[index[s, step]] = prob[s, 0]
    return out


@dataclass(frozen=True)
class VocalActivity:
    probabilities: np.ndarray  # speech probability per 32 ms chunk
    fraction: float  # share of the clip with voice (smoothed probability > 0.5)
    mean_voiced_probability: float  # confidence inside voiced chunks (0 when none)
    longest_run_seconds: float
    present: bool


def vocal_activity(clip: Clip) -> VocalActivity:
    """Sung/spoken voice detection with silero-vad. Raises VoiceDetectorUnavailable."""

    def compute(c: Clip) -> VocalActivity:
        y16 = resample(Audio(c.y, c.sr), VAD_RATE).samples[0]
        probabilities = speech_probabilities(y16)
        if probabilities.size == 0:
            return VocalActivity(probabilities, 0.0, 0.0, 0.0, False)
        smoothed = probabilities
        if probabilities.size >= 5:
            from scipy.ndimage import median_filter

            smoothed = median_filter(probabilities, size=5, mode="nearest")
        voiced = smoothed > VOICE_PROBABILITY
        fraction = float(voiced.mean())
        mean_voiced = float(probabilities[voiced].mean()) if voiced.any() else 0.0
        longest = _longest_run(voiced) * VAD_CHUNK / VAD_RATE
        return VocalActivity(
            probabilities, fraction, mean_voiced, longest, fraction >= VOCAL_PRESENT_FRACTION
        )

    return clip.feature(compute)


def _longest_run(mask: np.ndarray) -> int:
    best = run = 0
    for value in mask:
        run = run + 1 if value else 0
        best = max(best, run)
    return best


# ---------------------------------------------------------------- how sounds start and stop

FLUX_RANGE_DB = 80.0  # the log-mel is floored this far under its maximum: silence is not -100 dB


# Envelope skewness counts only cells within this many dB of the clip's loudest: the floor is
# where nothing sounds, and its flicker is symmetric noise.
SKEW_RANGE_DB = 50.0


@dataclass(frozen=True)
class FluxShape:
    """How sound energy arrives and leaves, from the frame-to-frame change of the log-mel.

    decay_peakiness: 99.5th percentile of the falling flux over its median. Instruments in a room
    (and generators trained on them) decay and reverberate, so energy leaves gradually: real
    music measures ~2-11. Sounds that stop dead — dry synthesised notes cut by a short release,
    a time-reversed clip's attacks, hard edits — measure 10-150.
    envelope_skewness: skewness of every sounding band's frame-to-frame level change (dB). A
    struck, plucked, bowed or blown note rises in a frame or two and dies away over many, so the
    changes are a few large rises and many small falls: positive skew (real music of the tuning
    half 0.07-5.4, bowed strings lowest). Played backwards the same notes swell slowly and stop
    dead: the sign flips (the same clips reversed -2.5-0.65; 51 of 51 pairs lower reversed).
    release_tail_db: how far the mean log-mel level keeps falling from ~45 to ~185 ms after the
    sharpest falls (the frames at the 99.5th percentile that decay_peakiness reads), median over
    them. A note released in a room (or through a reverb) keeps decaying after it stops: real
    music of the tuning half median 5 dB, up to 12.8; a dead stop is followed at once by
    whatever else sounds, flat or rising (the `synth` fakes of the tuning half -12.4-3.4 dB,
    reversed clips -22.8-1.6 dB)."""

    decay_peakiness: float
    envelope_skewness: float
    release_tail_db: float = 0.0


def flux_shape(clip: Clip) -> FluxShape:
    def compute(c: Clip) -> FluxShape:
        level = features.log_mel(c)
        if level.shape[1] < 3:
            return FluxShape(0.0, 0.0)
        top = float(level.max())
        level = np.maximum(level, top - FLUX_RANGE_DB)
        change = np.diff(level, axis=1)
        falling = np.maximum(-change, 0.0).mean(axis=0)
        sharpest = float(np.percentile(falling, 99.5))
        peakiness = sharpest / (float(np.median(falling)) + 1e-3)
        tail = _release_tail_db(level.mean(axis=0), falling, sharpest)
        sounding = change[level[:, 1:] > top - SKEW_RANGE_DB]
        skewness = 0.0
        if sounding.size >= 16:
            centred = sounding - sounding.mean()
            spread = float(centred.std())
            skewness = float((centred**3).mean() / spread**3) if spread > 1e-6 else 0.0
        return FluxShape(peakiness, skewness, tail)

    return clip.feature(compute)


RELEASE_TAIL_FRAMES = (2, 8)  # ~45-185 ms after a fall at HOP 512 / 22.05 kHz: past the STFT's
# own smearing of a step (its 93 ms window), inside a room's reverberation


def _release_tail_db(mix_level: np.ndarray, falling: np.ndarray, sharpest: float) -> float:
    """Median further fall (dB) of the mean log-mel level from 2 to 8 frames after each frame
    whose falling flux reaches `sharpest`; 0 when no such frame has 8 frames after it."""
    first, last = RELEASE_TAIL_FRAMES
    frames = np.flatnonzero(falling >= sharpest)
    frames = frames[frames + last < len(mix_level)]
    if len(frames) == 0:
        return 0.0
    return float(np.median(mix_level[frames + first] - mix_level[frames + last]))
