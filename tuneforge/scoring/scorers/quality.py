"""`quality`: technical fidelity of the signal — bandwidth, noise floor, clipping, DC offset and
dropouts. Says nothing about the music, only whether the audio is clean."""

from __future__ import annotations

import numpy as np

from tuneforge.scoring import signal_quality
from tuneforge.scoring.base import Challenge, RoundContext, Scorer, ScoreResult
from tuneforge.scoring.clip import Clip

# Bandwidth: the highest frequency within 60 dB of the long-term spectrum's peak. 4 kHz (phone)
# scores 0, 12 kHz or more (what a 32 kHz generator can reach after its low-pass) scores 1.
BANDWIDTH_ZERO_HZ, BANDWIDTH_FULL_HZ = 4_000.0, 12_000.0
# Noise floor (signal_quality.floor_snr_db): white noise ≈ 10 dB scores 0, ≥ 35 dB scores 1.
FLOOR_ZERO_DB, FLOOR_FULL_DB = 10.0, 35.0


def _ramp(value: float, start: float, end: float) -> float:
    return float(np.clip((value - start) / (end - start), 0.0, 1.0))


def bandwidth_hz(clip: Clip) -> float:
    """Highest frequency of the original whose long-term level is within 60 dB of the peak."""
    spectrum = signal_quality.original_spectrum(clip)
    smoothed = np.convolve(spectrum.power_db, np.ones(5) / 5.0, mode="same")
    above = np.nonzero(smoothed >= smoothed.max() - 60.0)[0]
    return float(spectrum.freqs[above[-1]]) if len(above) else 0.0


class QualityScorer(Scorer):
    """noise floor × (0.3 + 0.7 bandwidth), times multipliers for clipping, DC and dropouts."""

    name = "quality"

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        peak = signal_quality.true_peak(clip)
        if peak < -60.0:
            return ScoreResult(0.0, f"silent (peak {peak:.1f} dBFS)", {"true_peak_dbfs": peak})
        bandwidth = bandwidth_hz(clip)
        floor_db = signal_quality.floor_snr_db(clip)
        clipped = signal_quality.clipping_fraction(clip)
        dc = float(np.abs(clip.original.samples.mean(axis=1)).max())
        gaps = signal_quality.dropouts(clip)

        band_score = _ramp(bandwidth, BANDWIDTH_ZERO_HZ, BANDWIDTH_FULL_HZ)
        noise_score = _ramp(floor_db, FLOOR_ZERO_DB, FLOOR_FULL_DB)
        clip_mult = 1.0 - _ramp(clipped, 0.0005, 0.02)  # 2% of samples clipped: nothing left
        dc_mult = 1.0 - 0.5 * _ramp(dc, 0.005, 0.1)
        gap_mult = max(0.0, 1.0 - 0.25 * len(gaps))
        # noise multiplies: steady hiss (white noise) is worthless however wide its band
        value = noise_score * (0.3 + 0.7 * band_score) * clip_mult * dc_mult * gap_mult

        complaints = []
        if band_score < 1:
            complaints.append(f"bandwidth {bandwidth / 1000:.1f} kHz")
        if noise_score < 1:
            complaints.append(f"noise floor only {floor_db:.0f} dB under the signal")
        if clip_mult < 1:
            complaints.append(f"{clipped:.2%} of samples clipped")
        if dc_mult < 1:
            complaints.append(f"DC offset {dc:.3f}")
        if gaps:
            complaints.append(f"{len(gaps)} dropout(s)")
        details = {
            "bandwidth_hz": round(bandwidth),
            "floor_snr_db": round(floor_db, 1),
            "clipped_fraction": round(clipped, 5),
            "dc_offset": round(dc, 4),
            "dropouts": len(gaps),
            "true_peak_dbfs": round(peak, 2),
        }
        return ScoreResult(value, "; ".join(complaints), details)
