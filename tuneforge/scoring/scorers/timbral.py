"""Timbral scorer: does it sound like instruments — a spectral envelope that falls with
frequency like acoustic and produced music (not flat like noise), tonal rather than noisy
frames, clear attacks, spectral change that flows (no isolated bursts of flux), and sounds that
start sharply and die away gradually (decay and room), as played instruments do?"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tuneforge.scoring import features
from tuneforge.scoring.base import Challenge, RoundContext, Scorer, ScoreResult
from tuneforge.scoring.envelope_features import flux_shape
from tuneforge.scoring.music_features import frames_per_second, pool, ramp

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip

SLOPE_BAND_HZ = (150.0, 8000.0)
# Long-term spectral slope of music, dB per octave of per-bin power: mixes sit around -4..-12;
# white noise is 0, a muffled (low-passed) clip is steeper than -16.
NATURAL_SLOPE_DB_PER_OCT = (-12.0, -4.0)
SLOPE_SPREAD_DB = 3.0
# FluxShape ranges (tuning half of the calibration set): real music's decay peakiness 1.9-10.9
# (median 3.7), dry synthesised notes 10-59; envelope skewness 0.07-5.4 for real music (bowed
# strings lowest), -2.5-0.65 for the same music reversed.
DECAY_PEAKINESS_RANGE = (5.0, 15.0)
SKEWNESS_RANGE = (-0.5, 1.0)


def spectral_slope_db_per_octave(spectrum_db: np.ndarray, freqs: np.ndarray) -> float:
    """Least-squares slope of a long-term spectrum (dB) against log2 frequency over SLOPE_BAND,
    with one point per 1/3 octave so the many high bins do not dominate the fit."""
    lo, hi = SLOPE_BAND_HZ
    centres = lo * 2.0 ** (np.arange(0, np.log2(hi / lo), 1.0 / 3.0))
    points = []
    for centre in centres:
        band = (freqs >= centre / 2 ** (1 / 6)) & (freqs < centre * 2 ** (1 / 6))
        if band.any():
            power = np.mean(10.0 ** (spectrum_db[band] / 10.0))
            points.append((np.log2(centre), 10.0 * np.log10(max(power, 1e-20))))
    if len(points) < 3:
        return 0.0
    x, y = np.array(points).T
    return float(np.polyfit(x, y, 1)[0])


def slope_credit(slope: float) -> float:
    lo, hi = NATURAL_SLOPE_DB_PER_OCT
    outside = max(lo - slope, slope - hi, 0.0)
    return float(np.exp(-0.5 * (outside / SLOPE_SPREAD_DB) ** 2))


class TimbralScorer(Scorer):
    name = "timbral"
    needs_music = True

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        level = features.rms(clip)
        loud = level > 0.05 * max(float(level.max()), 1e-10)
        slope = spectral_slope_db_per_octave(
            features.long_term_spectrum_db(clip), features.fft_frequencies(clip)
        )
        flatness = features.spectral_flatness(clip)[: loud.size]
        median_flatness = float(np.median(flatness[loud])) if loud.any() else 1.0
        envelope = features.onset_envelope(clip)
        attacks, attack_ratio = self._attacks(envelope)
        # Flux per 0.5 s: isolated windows far above the typical level are glitches/bursts.
        step = max(1, int(round(0.5 * frames_per_second(clip))))
        flux = pool(envelope[None, :], np.arange(0, envelope.size, step))[0]
        median = float(np.median(flux)) if flux.size else 0.0
        mad = float(np.median(np.abs(flux - median))) if flux.size else 0.0
        outliers = float(np.mean(flux > median + 6.0 * max(mad, 0.05 * median, 1e-6)))
        static = median <= 1e-6
        shape = flux_shape(clip)

        parts = {
            "spectral_envelope": slope_credit(slope),
            "tonality": 1.0 - ramp(median_flatness, 0.05, 0.4),
            "attacks": attacks,
            "flux_consistency": 0.0 if static else 1.0 - ramp(outliers, 0.02, 0.15),
            # one part: sharp starts and gradual ends belong together (a note's envelope)
            "note_envelope": 0.5 * (1.0 - ramp(shape.decay_peakiness, *DECAY_PEAKINESS_RANGE))
            + 0.5 * ramp(shape.envelope_skewness, *SKEWNESS_RANGE),
        }
        value = float(np.mean(list(parts.values())))
        details = {
            "spectral_slope_db_per_octave": round(slope, 2),
            "median_spectral_flatness": round(median_flatness, 4),
            "median_attack_prominence": round(attack_ratio, 2),
            "flux_outlier_share": round(outliers, 3),
            "decay_peakiness": round(shape.decay_peakiness, 2),
            "envelope_skewness": round(shape.envelope_skewness, 3),
            "parts": {name: round(v, 3) for name, v in parts.items()},
        }
        reason = ", ".join(f"{name} {v:.2f}" for name, v in parts.items())
        return ScoreResult(value, reason, details)

    @staticmethod
    def _attacks(envelope: np.ndarray) -> tuple[float, float]:
        """(credit, median prominence): onset-envelope peaks over the local median — sharp,
        distinct attacks stand 3-10x above it; noise and smeared sound barely rise."""
        if envelope.size < 8 or not np.any(envelope > 0):
            return 0.0, 0.0
        from scipy.ndimage import median_filter

        local = median_filter(envelope, size=31, mode="nearest")
        is_peak = (envelope[1:-1] > envelope[:-2]) & (envelope[1:-1] >= envelope[2:])
        peaks = np.flatnonzero(is_peak) + 1
        strong = peaks[envelope[peaks] > np.quantile(envelope, 0.9)]
        if strong.size == 0:
            return 0.0, 0.0
        ratio = float(np.median(envelope[strong] / np.maximum(local[strong], 1e-6)))
        return ramp(ratio, 1.5, 4.0), ratio
