"""Shared DSP features of a Clip, each computed once and cached on the clip.

Every function takes a `Clip` and returns `clip.feature(compute)`: the first scorer that
asks pays, the others read the cache. One STFT (n_fft 2048, hop 512 at 22.05 kHz) feeds the mel
spectrogram, MFCC, chroma (chroma_stft: ~2.5x cheaper than chroma_cqt), spectral shape and RMS;
the onset envelope reads the log-mel, and the tempo and beats read the onsets. Measurements of the
received audio as a signal (loudness, true peak, clipping, dropouts, noise floor) are in
signal_quality.py; the musical ones built on these (segments, key, chords, pitch line) in
music_features.py and the modules it names.

Inputs shorter than one FFT window are zero-padded to one window so every feature exists for any
clip (scorers decide separately that such a clip is too short to be music).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuneforge.scoring import tempo_detect
from tuneforge.scoring.clip import Clip

N_FFT = 2048
HOP = 512
N_MELS = 96
N_MFCC = 20
EPS = 1e-10


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

        result: np.ndarray = np.abs(
            librosa.stft(padded_signal(c), n_fft=N_FFT, hop_length=HOP)
        ).astype(np.float32)
        return result

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
        result: np.ndarray = onset_envelope(c) + falling
        return result

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

        result: np.ndarray = librosa.feature.rms(
            S=stft_magnitude(c), frame_length=N_FFT, hop_length=HOP
        )[0]
        return result

    return clip.feature(compute)


def spectral_centroid(clip: Clip) -> np.ndarray:
    """Magnitude-weighted mean frequency per frame, Hz ("brightness")."""

    def compute(c: Clip) -> np.ndarray:
        mag = stft_magnitude(c)
        result: np.ndarray = (fft_frequencies(c) @ mag) / np.maximum(mag.sum(axis=0), EPS)
        return result

    return clip.feature(compute)


def spectral_bandwidth(clip: Clip) -> np.ndarray:
    """Magnitude-weighted standard deviation of frequency around the centroid per frame, Hz."""

    def compute(c: Clip) -> np.ndarray:
        mag = stft_magnitude(c)
        freqs = fft_frequencies(c)[:, None]
        norm = mag / np.maximum(mag.sum(axis=0, keepdims=True), EPS)
        deviation = (freqs - spectral_centroid(c)[None, :]) ** 2
        result: np.ndarray = np.sqrt(np.sum(norm * deviation, axis=0))
        return result

    return clip.feature(compute)


def spectral_flatness(clip: Clip) -> np.ndarray:
    """Geometric / arithmetic mean of each frame's power spectrum: ~1 noise, ~0 tones."""

    def compute(c: Clip) -> np.ndarray:
        power = np.maximum(power_spectrum(c), EPS)
        result: np.ndarray = np.exp(np.mean(np.log(power), axis=0)) / np.mean(power, axis=0)
        return result

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
        result: np.ndarray = vector / norm if norm > 0 else vector
        return result

    return clip.feature(compute)


def warm_up() -> None:
    """Pay librosa's numba compilation once (≈6 s cold) before timing anything."""
    from tuneforge.core.audio import Audio
    from tuneforge.scoring.signal_quality import loudness, true_peak  # it builds on this module

    rng = np.random.default_rng(0)
    clip = Clip(Audio(rng.standard_normal(22_050).astype(np.float32) * 0.1, 22_050))
    for compute in (dsp_embedding, beats, rms, spectral_flatness, loudness, true_peak):
        compute(clip)
