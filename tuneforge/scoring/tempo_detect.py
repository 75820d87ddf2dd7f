"""Tempo of a note-change envelope: the beat rate a metrical grid explains best (D29, D44).

A beat period P shows in the envelope's autocorrelation at P and its multiples (two beats, the
bar) and in its spectrum at the rate 1/P and its harmonics. Each reading alone is ambiguous: the
autocorrelation also peaks at every multiple of a sub-beat, the spectrum at every harmonic, which
is how a chorale whose quavers are strong reads at a 3:2 or 4:3 tempo. Their product keeps only a
rate that both the subharmonic and the harmonic evidence support (Peeters' ACF x DFT agreement).

Both curves are read at the exact lag and rate of each candidate, not at the nearest bin of a
coarse grid: one frame of lag is ~6 % at 160 BPM and one bin of an 8 s spectrum is 7.5 BPM, so a
reading that takes the best of the neighbouring bins is 1-3 % off and lets a 4:3 rate borrow the
support of the true beat's multiples. Both come from one mean power spectrum of windowed envelope
frames, zero-padded 4x: the autocorrelation is its inverse transform (Wiener-Khinchin), upsampled
to a quarter frame of lag, and the spectrum is fine enough to interpolate between bins.

A tempo in BPM counts quarter notes. In compound metre (6/8, 9/8) the grid's beat is a dotted
quarter, 2:3 of the quarter and no octave of it; its three quavers are. A beat whose division in
three is clearly the envelope's strongest pulse is therefore reported at the quavers' rate (D53).
"""

from __future__ import annotations

import numpy as np

TEMPO_RANGE_BPM = (40.0, 240.0)  # candidate beat rates
TEMPO_STEP_BPM = 0.5
TEMPO_PRIOR_BPM = 120.0  # centre of the log-normal tempo prior (librosa's)
TEMPO_PRIOR_STD = 1.0  # octaves: librosa's default width; octave errors are chosen by the comb
ANALYSIS_SECONDS = 6.0  # window of the spectra: a bar or more at any tempo in range
ANALYSIS_HOP_SECONDS = 1.0
SPECTRUM_OVERSAMPLING = 4  # zero-padding: spectrum bins 4x finer than the window's resolution
# Weights of the metrical comb: the beat itself, the two-beat level and the bar level (3 or 4
# beats, whichever is stronger: triple or duple metre). A true beat period repeats at all three.
METRICAL_WEIGHTS = (1.0, 0.5, 0.33)
METRICAL_MULTIPLES = (1.0, 2.0, 3.0, 4.0)
LAG_UPSAMPLING = 4  # the autocorrelation is read on a grid of a quarter frame
# An onset lands on a whole frame, so two beats a fractional number of frames apart (15.66 at
# 165 BPM) sit 15 or 16 frames apart: the autocorrelation at a lag takes the best value within
# half a frame of it.
LAG_TOLERANCE_FRAMES = 0.5
# A beat is read as compound (three quavers to a dotted-quarter beat) when the envelope's pulse at
# three times its rate is this much stronger than at the beat and at twice it. BPM counts quarter
# notes (a score's tempo mark, MIDI, a DAW), whose octaves are the quaver, not the dotted quarter.
# On tuning-side renders (D53) the 2:3 misreadings scored 1.59-1.75, right readings at most 1.10.
COMPOUND_DOMINANCE = 1.3


def _mean_power_spectrum(envelope: np.ndarray, window: int, n_fft: int, hop: int) -> np.ndarray:
    """Mean |FFT|^2 of Hann-windowed, mean-removed envelope frames, each normalised to unit
    energy so that loud passages do not outvote quiet ones."""
    starts = range(0, max(1, len(envelope) - window + 1), hop)
    taper = np.hanning(window)
    frames = np.stack([envelope[s : s + window] for s in starts])
    if frames.shape[1] < window:  # a clip shorter than one window: pad it
        frames = np.pad(frames, ((0, 0), (0, window - frames.shape[1])))
    frames = (frames - frames.mean(axis=1, keepdims=True)) * taper
    power = np.abs(np.fft.rfft(frames, n=n_fft, axis=1)) ** 2
    energy = power.sum(axis=1, keepdims=True)
    keep = energy[:, 0] > 0
    if not np.any(keep):
        return np.zeros(n_fft // 2 + 1)
    result: np.ndarray = (power[keep] / energy[keep]).mean(axis=0)
    return result


def _autocorrelation(power: np.ndarray, upsampling: int) -> np.ndarray:
    """Autocorrelation (1 at lag 0) on a grid of 1/`upsampling` frame: the inverse transform of
    the one-sided power spectrum, zero-padded (band-limited interpolation between whole lags)."""
    n_fft = 2 * (len(power) - 1)
    acf = np.fft.irfft(power, n=n_fft * upsampling)[: n_fft * upsampling // 2]
    result: np.ndarray = acf / max(acf[0], 1e-12)
    return result


def _metrical(readings: list[np.ndarray]) -> np.ndarray:
    """Weighted sum over the metrical levels (beat, two beats, bar of 3 or 4)."""
    beat_w, pair_w, bar_w = METRICAL_WEIGHTS
    beat, pair, triple, quadruple = readings
    result: np.ndarray = beat_w * beat + pair_w * pair + bar_w * np.maximum(triple, quadruple)
    return result


def _subharmonic_salience(power: np.ndarray, period: np.ndarray, window: int) -> np.ndarray:
    """Metrical comb on the autocorrelation at multiples of each beat `period` (frames); a lag
    beyond one analysis window counts 0 (the windowed frames know nothing of it)."""
    from scipy.ndimage import maximum_filter1d

    acf = _autocorrelation(power, LAG_UPSAMPLING)
    reach = int(round(LAG_TOLERANCE_FRAMES * LAG_UPSAMPLING))
    acf = maximum_filter1d(acf, 2 * reach + 1)
    readings = []
    for multiple in METRICAL_MULTIPLES:
        lag = period * multiple
        value = np.interp(lag * LAG_UPSAMPLING, np.arange(len(acf)), acf)
        readings.append(np.where(lag < window, value, 0.0))
    result: np.ndarray = np.maximum(_metrical(readings), 0.0)
    return result


def _harmonic_salience(power: np.ndarray, rate_bins: np.ndarray) -> np.ndarray:
    """Metrical comb on the magnitude spectrum at multiples of each beat rate (in bins),
    interpolated between the (oversampled) bins."""
    magnitude = np.sqrt(power)
    magnitude = magnitude / max(float(magnitude[1:].max()), 1e-12)
    bins = np.arange(len(magnitude))
    return _metrical([np.interp(rate_bins * m, bins, magnitude, 0, 0) for m in METRICAL_MULTIPLES])


def _envelope_power(envelope: np.ndarray, frame_rate: float) -> tuple[np.ndarray, int, int] | None:
    """(mean power spectrum, n_fft, window) of the envelope; None when it has no pulse."""
    if len(envelope) < 16 or not np.any(envelope > 0):
        return None
    window = min(len(envelope), int(round(ANALYSIS_SECONDS * frame_rate)))
    hop = max(1, int(round(ANALYSIS_HOP_SECONDS * frame_rate)))
    # twice the window: the autocorrelation from this spectrum has no circular wrap
    n_fft = 2 * window * SPECTRUM_OVERSAMPLING
    power = _mean_power_spectrum(envelope.astype(np.float64), window, n_fft, hop)
    if not np.any(power[1:] > 0):
        return None
    return power, n_fft, window


def _salience(
    power: np.ndarray, n_fft: int, window: int, frame_rate: float, candidates: np.ndarray
) -> np.ndarray:
    """Salience >= 0 of each candidate BPM: the two metrical combs times the tempo prior."""
    subharmonic = _subharmonic_salience(power, 60.0 * frame_rate / candidates, window)
    harmonic = _harmonic_salience(power, candidates / 60.0 / (frame_rate / n_fft))
    prior = np.exp(-0.5 * (np.log2(candidates / TEMPO_PRIOR_BPM) / TEMPO_PRIOR_STD) ** 2)
    result: np.ndarray = subharmonic * harmonic * prior
    return result


def tempo_salience_curve(envelope: np.ndarray, frame_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """(candidate BPMs, salience >= 0 of each as the beat rate); salience all 0 when the
    envelope has no pulse."""
    low, high = TEMPO_RANGE_BPM
    candidates = np.arange(low, high, TEMPO_STEP_BPM)
    analysis = _envelope_power(envelope, frame_rate)
    if analysis is None:
        return candidates, np.zeros_like(candidates)
    return candidates, _salience(*analysis, frame_rate, candidates)


def pulse_strengths(
    power: np.ndarray, n_fft: int, frame_rate: float, bpm: float, multiples: tuple[float, ...]
) -> np.ndarray:
    """Envelope spectrum magnitude (1 = its strongest rate) at `bpm` times each multiple."""
    magnitude = np.sqrt(power)
    magnitude = magnitude / max(float(magnitude[1:].max()), 1e-12)
    bins = np.array(multiples) * bpm / 60.0 / (frame_rate / n_fft)
    result: np.ndarray = np.interp(bins, np.arange(len(magnitude)), magnitude, 0, 0)
    return result


def compound_reading(beat_bpm: float, strengths: np.ndarray) -> float:
    """The tempo to report for a beat of `beat_bpm` whose pulse strengths at 1, 2 and 3 times
    its rate are `strengths`: the beat itself, unless its division in three is clearly the
    strongest of the three (a compound-metre beat, a dotted quarter of three quavers), and then
    the quavers' rate, or half of it (the quarter note) above the candidate range."""
    beat, halves, thirds = (float(v) for v in strengths)
    if thirds <= COMPOUND_DOMINANCE * max(beat, halves):
        return beat_bpm
    quavers = 3.0 * beat_bpm
    if quavers <= TEMPO_RANGE_BPM[1]:
        return quavers
    # Even the quarter notes of such a beat would be faster than any beat we read: the "beat" is
    # already a subdivision (e.g. a hi-hat's quavers), whose third harmonic is no quaver pulse.
    return quavers / 2.0 if quavers / 2.0 <= TEMPO_RANGE_BPM[1] else beat_bpm


def estimate_tempo(envelope: np.ndarray, frame_rate: float) -> float:
    """Beat rate (BPM) that a metrical grid explains best in a note-change envelope sampled at
    `frame_rate` frames per second, read in quarter notes when the beat is compound
    (`compound_reading`); 0.0 if it has no pulse."""
    low, high = TEMPO_RANGE_BPM
    candidates = np.arange(low, high, TEMPO_STEP_BPM)
    analysis = _envelope_power(envelope, frame_rate)
    if analysis is None:
        return 0.0
    power, n_fft, window = analysis
    salience = _salience(power, n_fft, window, frame_rate, candidates)
    if not np.any(salience > 0):
        return 0.0
    beat = float(candidates[int(np.argmax(salience))])
    return compound_reading(beat, pulse_strengths(power, n_fft, frame_rate, beat, (1.0, 2.0, 3.0)))
