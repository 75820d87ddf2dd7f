"""Shared DSP features of a Clip, each computed once and cached on the clip.

Every function takes a `Clip` and returns `clip.feature(compute)`: the first scorer that
asks pays, the others read the cache. One STFT (n_fft 2048, hop 512 at 22.05 kHz) feeds the mel
spectrogram, MFCC, chroma (chroma_stft: ~2.5x cheaper than chroma_cqt), spectral shape and RMS;
the onset envelope reads the log-mel. Loudness and true peak use the ORIGINAL audio (rate and
channels as received) because that is what a listener hears.

Inputs shorter than one FFT window are zero-padded to one window so every feature exists for any
clip (scorers decide separately that such a clip is too short to be music).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuneforge.audio import true_peak_dbfs
from tuneforge.scoring import tempo_detect
from tuneforge.scoring.clip import Clip

N_FFT = 2048
HOP = 512
N_MELS = 96
N_MFCC = 20
EPS = 1e-10
SHORT_TERM_WINDOW_S = 3.0  # EBU R128 short-term loudness window
SHORT_TERM_HOP_S = 1.0
SILENCE_LUFS = -70.0  # BS.1770 absolute gate: anything quieter counts as silence


def padded_signal(clip: Clip) -> np.ndarray:
    """Mono analysis signal (float32, ANALYSIS_RATE), zero-padded to at least one FFT window."""

    def compute(c: Clip) -> np.ndarray:
        y = np.asarray(c.y, dtype=np.float32)
        if len(y) < N_FFT:
            y = np.concatenate([y, np.zeros(N_FFT - len(y), dtype=np.float32)])
        return y

    return clip.feature(compute)


def stft_magnitude(clip: Clip) -> np.ndarray:
    """|STFT| [1 + N_FFT/2, frames], Hann window, hop HOP."""

    def compute(c: Clip) -> np.ndarray:
        import librosa

        return np.abs(librosa.stft(padded_signal(c), n_fft=N_FFT, hop_length=HOP)).astype(
            np.float32
        )

    return clip.feature(compute)


def power_spectrum(clip: Clip) -> np.ndarray:
    """|STFT|² [bins, frames]."""
    return clip.feature(lambda c: stft_magnitude(c) ** 2)


def fft_frequencies(clip: Clip) -> np.ndarray:
    """Centre frequency in Hz of each STFT bin."""

    def compute(c: Clip) -> np.ndarray:
        return np.linspace(0.0, c.sr / 2.0, 1 + N_FFT // 2)

    return clip.feature(compute)


def frame_times(clip: Clip) -> np.ndarray:
    """Time in seconds of each STFT frame centre."""
    return clip.feature(lambda c: np.arange(stft_magnitude(c).shape[1]) * HOP / float(c.sr))


def mel_spectrogram(clip: Clip) -> np.ndarray:
    """Mel power spectrogram [N_MELS, frames] from the shared STFT."""

    def compute(c: Clip) -> np.ndarray:
        import librosa

        return librosa.feature.melspectrogram(S=power_spectrum(c), sr=c.sr, n_mels=N_MELS)

    return clip.feature(compute)


def log_mel(clip: Clip) -> np.ndarray:
    """Mel spectrogram in dB (ref 1.0, floor -100 dB): absolute levels, comparable across clips."""
    return clip.feature(lambda c: 10.0 * np.log10(np.maximum(mel_spectrogram(c), EPS)).clip(-100.0))


def mfcc(clip: Clip) -> np.ndarray:
    """MFCC [N_MFCC, frames] from the log-mel: timbre summary."""

    def compute(c: Clip) -> np.ndarray:
        import librosa

        return librosa.feature.mfcc(S=log_mel(c), n_mfcc=N_MFCC)

    return clip.feature(compute)


def chroma(clip: Clip) -> np.ndarray:
    """Chroma [12, frames] (chroma_stft, C first), each frame max-normalised to 1."""

    def compute(c: Clip) -> np.ndarray:
        import librosa

        # tuning=0: skip the per-clip tuning estimate (most of chroma_stft's cost)
        return librosa.feature.chroma_stft(S=power_spectrum(c), sr=c.sr, n_fft=N_FFT, tuning=0.0)

    return clip.feature(compute)


def onset_envelope(clip: Clip) -> np.ndarray:
    """Spectral-flux onset strength per frame (librosa onset_strength on the log-mel)."""

    def compute(c: Clip) -> np.ndarray:
        import librosa

        # librosa wants dB relative to the peak; ours is absolute dB, which only shifts it
        return librosa.onset.onset_strength(S=log_mel(c), sr=c.sr, hop_length=HOP)

    return clip.feature(compute)


def change_envelope(clip: Clip) -> np.ndarray:
    """Note-change strength per frame: the rising flux of `onset_envelope` plus the falling flux.

    Beats are where notes change, and in legato music (organ, strings, winds) a change is as
    much the old chord stopping as the new one starting: attacks alone miss the pulse there.
    Rise + fall is also the same forwards and backwards, so a reversed clip's dead stops (its
    "attacks") cannot earn it a clearer pulse than the music it was made from."""

    def compute(c: Clip) -> np.ndarray:
        import librosa

        falling = librosa.onset.onset_strength(S=-log_mel(c), sr=c.sr, hop_length=HOP)
        return onset_envelope(c) + falling

    return clip.feature(compute)


TEMPO_REFINE_MIN_BEATS = 8
# log ratio: the tracked beats may sharpen the estimate, not move it. The estimate is exact to a
# grid step (0.5 BPM); a tracker that strays further has locked onto something else.
TEMPO_REFINE_TOLERANCE = 0.02


@dataclass(frozen=True)
class Beats:
    tempo_bpm: float  # 0.0 when no beat was found
    frames: np.ndarray  # beat positions in STFT frames
    times: np.ndarray  # beat positions in seconds


def estimate_tempo(envelope: np.ndarray, sr: int, hop: int = HOP) -> float:
    """Beat rate (BPM) that a metrical grid explains best in a note-change envelope at `sr` /
    `hop` frames per second; 0.0 if none (`tempo_detect.estimate_tempo`)."""
    return tempo_detect.estimate_tempo(envelope, sr / float(hop))


def refined_tempo(estimate_bpm: float, beat_times: np.ndarray) -> float:
    """The tempo of the tracked beats (least-squares slope of beat time over beat number) when
    it agrees with `estimate_bpm` within TEMPO_REFINE_TOLERANCE, else `estimate_bpm`.

    The estimate is exact to a grid step; the beats, tracked at that estimate, follow the
    actual pulse, and a line through many of them is exact to a fraction of a frame."""
    if len(beat_times) < TEMPO_REFINE_MIN_BEATS:
        return estimate_bpm
    period = float(np.polyfit(np.arange(len(beat_times)), beat_times, 1)[0])
    if period <= 0:
        return estimate_bpm
    tracked = 60.0 / period
    return (
        tracked if abs(np.log(tracked / estimate_bpm)) <= TEMPO_REFINE_TOLERANCE else estimate_bpm
    )


def beats(clip: Clip) -> Beats:
    """Tempo (BPM, `estimate_tempo`) and beat positions (librosa beat_track at that tempo) on
    the note-change envelope."""

    def compute(c: Clip) -> Beats:
        import librosa

        envelope = change_envelope(c)
        tempo_value = estimate_tempo(envelope, c.sr)
        if not np.isfinite(tempo_value) or tempo_value <= 0:
            return Beats(0.0, np.zeros(0, dtype=int), np.zeros(0))
        _, frames = librosa.beat.beat_track(
            onset_envelope=envelope, sr=c.sr, hop_length=HOP, bpm=tempo_value
        )
        frames = np.asarray(frames, dtype=int)
        times = frames * HOP / float(c.sr)
        return Beats(refined_tempo(tempo_value, times), frames, times)

    return clip.feature(compute)


def tempo_bpm(clip: Clip) -> float:
    """Estimated tempo in BPM (0.0 when there is no beat)."""
    return beats(clip).tempo_bpm


def rms(clip: Clip) -> np.ndarray:
    """Frame RMS amplitude [frames] from the shared STFT (librosa's Parseval form)."""

    def compute(c: Clip) -> np.ndarray:
        import librosa

        return librosa.feature.rms(S=stft_magnitude(c), frame_length=N_FFT, hop_length=HOP)[0]

    return clip.feature(compute)


def spectral_centroid(clip: Clip) -> np.ndarray:
    """Magnitude-weighted mean frequency per frame, Hz ("brightness")."""

    def compute(c: Clip) -> np.ndarray:
        mag = stft_magnitude(c)
        return (fft_frequencies(c) @ mag) / np.maximum(mag.sum(axis=0), EPS)

    return clip.feature(compute)


def spectral_bandwidth(clip: Clip) -> np.ndarray:
    """Magnitude-weighted standard deviation of frequency around the centroid per frame, Hz."""

    def compute(c: Clip) -> np.ndarray:
        mag = stft_magnitude(c)
        freqs = fft_frequencies(c)[:, None]
        norm = mag / np.maximum(mag.sum(axis=0, keepdims=True), EPS)
        deviation = (freqs - spectral_centroid(c)[None, :]) ** 2
        return np.sqrt(np.sum(norm * deviation, axis=0))

    return clip.feature(compute)


def spectral_flatness(clip: Clip) -> np.ndarray:
    """Geometric / arithmetic mean of each frame's power spectrum: ~1 noise, ~0 tones."""

    def compute(c: Clip) -> np.ndarray:
        power = np.maximum(power_spectrum(c), EPS)
        return np.exp(np.mean(np.log(power), axis=0)) / np.mean(power, axis=0)

    return clip.feature(compute)


def spectral_contrast(clip: Clip) -> np.ndarray:
    """Peak-to-valley dB per octave band [7, frames] (librosa spectral_contrast)."""

    def compute(c: Clip) -> np.ndarray:
        import librosa

        return librosa.feature.spectral_contrast(S=stft_magnitude(c), sr=c.sr, n_fft=N_FFT)

    return clip.feature(compute)


def long_term_spectrum_db(clip: Clip) -> np.ndarray:
    """Mean power per STFT bin over the clip, dB (spectral balance, bandwidth, holes)."""
    return clip.feature(
        lambda c: 10.0 * np.log10(np.maximum(power_spectrum(c).mean(axis=1), EPS)),
    )


@dataclass(frozen=True)
class Loudness:
    integrated_lufs: float  # BS.1770 gated; SILENCE_LUFS for silence or < 400 ms
    short_term_lufs: np.ndarray  # 3 s windows every 1 s (one value for clips under 3 s)
    loudness_range_lu: float  # EBU Tech 3342 LRA: 95th - 10th percentile of gated short-term


def _k_weighted(samples: np.ndarray, rate: int) -> np.ndarray:
    """BS.1770 K-weighting (pyloudnorm's two biquads) of [channels, n] float64."""
    import pyloudnorm

    meter = pyloudnorm.Meter(rate)
    out = np.empty_like(samples)
    for channel in range(samples.shape[0]):
        data = samples[channel]
        for stage in meter._filters.values():  # the meter's own filter coefficients
            data = stage.apply_filter(data)
        out[channel] = data
    return out


def _window_loudness(weighted: np.ndarray, rate: int, window_s: float, hop_s: float) -> np.ndarray:
    """Loudness (LUFS) of each window of the K-weighted signal, channels summed with gain 1."""
    n = weighted.shape[1]
    window, hop = int(window_s * rate), int(hop_s * rate)
    if n < window:
        window = n
    starts = np.arange(0, n - window + 1, max(1, hop))
    cumulative = np.concatenate(
        [np.zeros((weighted.shape[0], 1)), np.cumsum(weighted**2, axis=1)], axis=1
    )
    energy = (cumulative[:, starts + window] - cumulative[:, starts]) / max(window, 1)
    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(np.maximum(energy.sum(axis=0), 1e-20))


def loudness(clip: Clip) -> Loudness:
    """EBU R128 integrated loudness, short-term loudness and loudness range of the original."""

    def compute(c: Clip) -> Loudness:
        audio = c.original
        rate = audio.sample_rate
        if audio.num_samples < int(0.4 * rate):
            return Loudness(SILENCE_LUFS, np.array([SILENCE_LUFS]), 0.0)
        weighted = _k_weighted(audio.samples.astype(np.float64), rate)
        blocks = _window_loudness(weighted, rate, 0.4, 0.1)  # BS.1770 gating blocks
        gated = blocks[blocks > SILENCE_LUFS]
        integrated = SILENCE_LUFS
        if len(gated):
            relative = _mean_power_lufs(gated) - 10.0
            gated = gated[gated > relative]
            integrated = max(SILENCE_LUFS, _mean_power_lufs(gated)) if len(gated) else integrated
        short = np.maximum(
            _window_loudness(weighted, rate, SHORT_TERM_WINDOW_S, SHORT_TERM_HOP_S), SILENCE_LUFS
        )
        audible = short[short > max(SILENCE_LUFS, integrated - 20.0)]
        lra = float(np.percentile(audible, 95) - np.percentile(audible, 10)) if len(audible) else 0
        return Loudness(float(integrated), short, lra)

    return clip.feature(compute)


def _mean_power_lufs(values: np.ndarray) -> float:
    return float(10.0 * np.log10(np.mean(10.0 ** (values / 10.0))))


def true_peak(clip: Clip) -> float:
    """True peak of the original in dBFS (4x oversampled); -120.0 for digital silence."""

    def compute(c: Clip) -> float:
        if c.original.num_samples == 0:
            return -120.0
        peak = true_peak_dbfs(c.original)
        return float(peak) if np.isfinite(peak) else -120.0

    return clip.feature(compute)


# Fixed per-block scales so MFCC levels (hundreds of dB-units) do not drown chroma (0..1) and
# contrast (tens of dB) in the embedding; chosen from typical ranges, not fitted.
_MFCC_SCALE = np.array([200.0] + [40.0] * (N_MFCC - 1))
_CONTRAST_SCALE = 30.0
DSP_EMBEDDING_DIM = 2 * N_MFCC + 2 * 12 + 2 * 7


def dsp_embedding(clip: Clip) -> np.ndarray:
    """Compact timbre+harmony embedding (mean/std of MFCC, chroma, spectral contrast; 78 dims),
    L2-normalised. Used for diversity and, when no neural model is loaded, as FAD stand-in."""

    def compute(c: Clip) -> np.ndarray:
        m, ch, con = mfcc(c), chroma(c), spectral_contrast(c)
        parts = [
            m.mean(axis=1) / _MFCC_SCALE,
            m.std(axis=1) / _MFCC_SCALE,
            ch.mean(axis=1),
            ch.std(axis=1),
            con.mean(axis=1) / _CONTRAST_SCALE,
            con.std(axis=1) / _CONTRAST_SCALE,
        ]
        vector = np.nan_to_num(np.concatenate(parts)).astype(np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector

    return clip.feature(compute)


def warm_up() -> None:
    """Pay librosa's numba compilation once (≈6 s cold) before timing anything."""
    from tuneforge.audio import Audio

    rng = np.random.default_rng(0)
    clip = Clip(Audio(rng.standard_normal(22_050).astype(np.float32) * 0.1, 22_050))
    for compute in (dsp_embedding, beats, rms, spectral_flatness, loudness, true_peak):
        compute(clip)


@dataclass(frozen=True)
class OriginalSpectrum:
    freqs: np.ndarray  # Hz
    power_db: np.ndarray  # Welch PSD of the original's channel mean, dB


def original_spectrum(clip: Clip) -> OriginalSpectrum:
    """Long-term spectrum of the ORIGINAL (full rate): bandwidth must be judged before the
    analysis resampling cuts everything above 11 kHz."""

    def compute(c: Clip) -> OriginalSpectrum:
        from scipy.signal import welch

        mono = c.original.mono().astype(np.float64)
        rate = c.original.sample_rate
        if len(mono) < 16:
            mono = np.concatenate([mono, np.zeros(16 - len(mono))])
        freqs, psd = welch(mono, fs=rate, nperseg=min(4096, len(mono)))
        return OriginalSpectrum(freqs, 10.0 * np.log10(np.maximum(psd, 1e-20)))

    return clip.feature(compute)


MIN_CLIP_RUN = 3  # samples in a row on one flat level: single peaks are legal
CLIP_LEVEL_TOLERANCE = 1e-3  # "at the peak": within 0.1 % of the channel's largest magnitude
CLIP_FLAT_TOLERANCE = 1e-5  # "flat": neighbours differ by less than this share of the peak


def clipping_fraction(clip: Clip) -> float:
    """Fraction of the original's samples that sit in flat runs (>= 3 samples) at the channel's
    own peak magnitude: hard clipping at whatever level the clipped signal was later scaled to.
    Real waveforms round their crests, so even a 40 Hz crest changes from sample to sample."""

    def compute(c: Clip) -> float:
        samples = np.asarray(c.original.samples, dtype=np.float64)
        if samples.size == 0:
            return 0.0
        clipped_count = 0
        for channel in samples:
            magnitude = np.abs(channel)
            peak = float(magnitude.max()) if magnitude.size else 0.0
            if not np.isfinite(peak) or peak < 1e-3:
                continue  # silence (or garbage the decoder let through) cannot clip
            hot = magnitude >= peak * (1.0 - CLIP_LEVEL_TOLERANCE)
            flat = np.zeros_like(hot)
            flat[1:] = np.abs(np.diff(channel)) <= CLIP_FLAT_TOLERANCE * peak
            in_run = hot & flat
            in_run[:-1] |= in_run[1:] & hot[:-1]  # the first sample of a flat run counts too
            padded = np.concatenate([[0], in_run.astype(np.int8), [0]])
            edges = np.diff(padded)
            starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
            lengths = ends - starts
            clipped_count += int(lengths[lengths >= MIN_CLIP_RUN].sum())
        return clipped_count / float(samples.size)

    return clip.feature(compute)


DROPOUT_MIN_S = 0.05
DROPOUT_LEVEL = 1e-4  # -80 dBFS: digital silence, not a quiet passage with a reverb tail
CUT_LEVEL = 1e-2  # a cut: the 5 ms before the gap still carry -40 dBFS or more


def dropouts(clip: Clip) -> list[tuple[float, float]]:
    """(start_s, length_s) of digital-silence gaps ≥ 50 ms INSIDE the audio that start with an
    abrupt cut (sound at ≥ -40 dBFS within 5 ms before): samples dropped by a generator or
    transport, not an intro, an outro, a rest or a sound that decayed to nothing."""

    def compute(c: Clip) -> list[tuple[float, float]]:
        y = np.abs(np.asarray(c.y))
        if len(y) == 0 or y.max() < CUT_LEVEL:
            return []
        quiet = y < DROPOUT_LEVEL
        padded = np.concatenate([[0], quiet.astype(np.int8), [0]])
        edges = np.diff(padded)
        starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
        min_len, lookback = int(DROPOUT_MIN_S * c.sr), max(1, int(0.005 * c.sr))
        found = []
        for start, end in zip(starts, ends, strict=True):
            if end - start < min_len or start == 0 or end >= len(y):
                continue  # too short, or leading/trailing silence
            if y[max(0, start - lookback) : start].max() >= CUT_LEVEL:
                found.append((float(start / c.sr), float((end - start) / c.sr)))
        return found

    return clip.feature(compute)


def floor_snr_db(clip: Clip) -> float:
    """Signal over noise floor, dB: per frame, mean bin power up to 8 kHz over its 10th
    percentile, median over the non-quiet frames. Tones leave deep valleys between partials
    (clean synth ≈ 55-70 dB); steady hiss fills them (white noise ≈ 10 dB, music + noise at
    10 dB SNR ≈ 21 dB). 0.0 for silence."""

    def compute(c: Clip) -> float:
        top_bin = int(8000 / (c.sr / N_FFT))
        power = power_spectrum(c)[1:top_bin]  # DC bin excluded: offsets are judged elsewhere
        frame_rms = rms(c)
        if frame_rms.max() < 1e-6:
            return 0.0
        loud = frame_rms > 0.1 * max(float(np.median(frame_rms)), 1e-6)
        if not loud.any():
            loud = frame_rms >= frame_rms.max()
        power = power[:, loud]
        floor = np.maximum(np.percentile(power, 10, axis=0), 1e-20)
        ratio = np.maximum(power.mean(axis=0), 1e-20) / floor
        return float(np.clip(np.median(10.0 * np.log10(ratio)), 0.0, 150.0))

    return clip.feature(compute)
