"""`production`: does it sound mastered — loudness for its genre, dynamics, spectral balance and,
for stereo clips, a sound stereo image."""

from __future__ import annotations

import numpy as np

from tuneforge.scoring import features, signal_quality
from tuneforge.scoring.base import Challenge, RoundContext, Scorer, ScoreResult
from tuneforge.scoring.clip import Clip

DEFAULT_TARGET_LUFS = -14.0  # streaming-platform normalisation level
# Typical integrated loudness of released masters by genre (LUFS), matched by substring.
GENRE_TARGET_LUFS: dict[str, float] = {
    "classical": -20.0,
    "orchestral": -20.0,
    "ambient": -18.0,
    "jazz": -16.0,
    "folk": -15.0,
    "acoustic": -15.0,
    "lofi": -14.0,
    "lo-fi": -14.0,
    "cinematic": -16.0,
    "pop": -10.0,
    "rock": -10.0,
    "hip hop": -9.0,
    "hip-hop": -9.0,
    "rap": -9.0,
    "edm": -8.0,
    "electronic": -9.0,
    "house": -9.0,
    "techno": -9.0,
    "metal": -9.0,
    "trap": -8.0,
}
LOUDNESS_TOLERANCE_LU = 3.0  # full marks within ±3 LU of the target...
LOUDNESS_ZERO_LU = 15.0  # ...none at 15 LU off
# Peak-to-loudness ratio (true peak − integrated, dB): squashed masters < 6, healthy 8-18.
PLR_LOW, PLR_GOOD_LOW, PLR_GOOD_HIGH, PLR_HIGH = 4.0, 8.0, 18.0, 26.0
# Spectral tilt of the long-term spectrum, dB per octave from 100 Hz to 8 kHz: released music
# is roughly -3 to -8; flat (white) or steeper than -12 sounds harsh or dull.
TILT_GOOD_LOW, TILT_GOOD_HIGH, TILT_MARGIN = -9.0, -2.5, 5.0
# Hiss under the music (signal_quality.floor_snr_db): a mastered clip keeps its floor far under the
# music; the credit rises over the whole range so more hiss always costs something.
NOISE_FLOOR_RANGE_DB = (10.0, 45.0)


def genre_target_lufs(genre: str | None) -> float:
    if genre:
        lowered = genre.lower()
        for name, target in GENRE_TARGET_LUFS.items():
            if name in lowered:
                return target
    return DEFAULT_TARGET_LUFS


def _band(value: float, low: float, good_low: float, good_high: float, high: float) -> float:
    """1 inside [good_low, good_high], linear to 0 at `low` and `high`."""
    if good_low <= value <= good_high:
        return 1.0
    if value < good_low:
        return float(np.clip((value - low) / (good_low - low), 0.0, 1.0))
    return float(np.clip((high - value) / (high - good_high), 0.0, 1.0))


def spectral_tilt_db_per_octave(clip: Clip) -> float:
    """Least-squares slope of the long-term spectrum (dB) against log2(frequency), 100 Hz-8 kHz,
    with bins weighted so every octave counts the same."""
    spectrum = features.long_term_spectrum_db(clip)
    freqs = features.fft_frequencies(clip)
    band = (freqs >= 100.0) & (freqs <= 8000.0)
    octaves = np.log2(freqs[band])
    weights = 1.0 / freqs[band]  # bins are linear in Hz: weight 1/f makes octaves equal
    slope = np.polyfit(octaves, spectrum[band], 1, w=np.sqrt(weights))[0]
    return float(slope)


class ProductionScorer(Scorer):
    """Weighted mean: loudness vs genre target 0.35, dynamics (PLR) 0.25, spectral balance 0.25,
    clean noise floor 0.2, stereo image 0.15 (stereo clips only; mono clips reweight the rest)."""

    name = "production"

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        level = signal_quality.loudness(clip)
        peak = signal_quality.true_peak(clip)
        if level.integrated_lufs <= signal_quality.SILENCE_LUFS or peak < -60.0:
            return ScoreResult(0.0, "silent", {"integrated_lufs": level.integrated_lufs})
        target = genre_target_lufs(challenge.genre)
        off = abs(level.integrated_lufs - target)
        span = LOUDNESS_ZERO_LU - LOUDNESS_TOLERANCE_LU
        loud_score = 1.0 - float(np.clip((off - LOUDNESS_TOLERANCE_LU) / span, 0.0, 1.0))
        plr = peak - level.integrated_lufs
        dyn_score = _band(plr, PLR_LOW, PLR_GOOD_LOW, PLR_GOOD_HIGH, PLR_HIGH)
        tilt = spectral_tilt_db_per_octave(clip)
        balance_score = _band(
            tilt, TILT_GOOD_LOW - TILT_MARGIN, TILT_GOOD_LOW, TILT_GOOD_HIGH, TILT_GOOD_HIGH + 5
        )
        parts = {"loudness": (loud_score, 0.35), "dynamics": (dyn_score, 0.25)}
        parts["balance"] = (balance_score, 0.25)
        floor_db = signal_quality.floor_snr_db(clip)
        clean_score = float(np.clip((floor_db - NOISE_FLOOR_RANGE_DB[0]) / (
            NOISE_FLOOR_RANGE_DB[1] - NOISE_FLOOR_RANGE_DB[0]), 0.0, 1.0))  # fmt: skip
        parts["clean"] = (clean_score, 0.2)
        details: dict[str, object] = {
            "integrated_lufs": round(level.integrated_lufs, 2),
            "target_lufs": target,
            "loudness_range_lu": round(level.loudness_range_lu, 2),
            "true_peak_dbfs": round(peak, 2),
            "plr_db": round(plr, 2),
            "spectral_tilt_db_per_octave": round(tilt, 2),
            "floor_snr_db": round(floor_db, 1),
        }
        complaints = []
        if loud_score < 1:
            complaints.append(f"loudness {level.integrated_lufs:.1f} LUFS vs target {target:.0f}")
        if dyn_score < 1:
            complaints.append(f"peak-to-loudness {plr:.1f} dB")
        if balance_score < 1:
            complaints.append(f"spectral tilt {tilt:.1f} dB/octave")
        if clip.original.channels == 2:
            image = signal_quality.stereo_image(clip)
            correlation, side_ratio = image["correlation"], image["side_mid_ratio"]
            # out of phase (< 0) collapses in mono; ~1 is mono in two channels (fine, not wide)
            stereo_score = _band(correlation, -0.2, 0.3, 0.97, 1.5) if correlation < 0.97 else 0.8
            parts["stereo"] = (stereo_score, 0.15)
            details.update(lr_correlation=round(correlation, 3), side_ratio=round(side_ratio, 3))
            if stereo_score < 0.8:
                complaints.append(f"stereo correlation {correlation:.2f}")
        total = sum(w for _, w in parts.values())
        value = sum(s * w for s, w in parts.values()) / total
        details["parts"] = {k: round(s, 3) for k, (s, _) in parts.items()}
        return ScoreResult(value, "; ".join(complaints), details)
