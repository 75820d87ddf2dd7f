"""Mix-separation scorer: do the parts of the mix stand apart (spectral peaks over valleys in
each octave band, energy spread over the bands rather than piled into one) without standing in
a vacuum (the valleys of a recorded or rendered mix hold room, bleed and noise), and, for
stereo, is the image wide but mono-compatible (L/R correlation, side/mid energy, downmix loss)?

Each part is scored against the range real mixes occupy, not "more is better": separation past
anything a real mix shows is a sign of dry, sample-exact synthesis (D52)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tuneforge.scoring import features
from tuneforge.scoring.base import Challenge, RoundContext, Scorer, ScoreResult
from tuneforge.scoring.music_features import ramp
from tuneforge.scoring.signal_quality import stereo_image

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip

# Band edges in Hz: sub, bass, low-mid, mid, high-mid, presence, air (to the analysis Nyquist).
BAND_EDGES = (20.0, 60.0, 250.0, 500.0, 2000.0, 4000.0, 6000.0, 11025.0)
# Peak-over-valley dB of librosa's 0.8-1.6 and 1.6-3.2 kHz contrast bands (mean), loud frames.
# Where the partials of real mixes crowd, something always fills the valleys between them:
# reverberation, bow/breath/hammer noise, other voices. Tuning half (51 real clips: renders of
# scores and MusicGen/MusicLM/Mubert output) 14.4-32.8 dB (95th percentile 31.9); dry additive
# tones with nothing between their partials 35-45 dB. Full credit up to 31, none from 37 dB.
ROOM_BANDS = slice(2, 4)  # rows of `band_contrast` (librosa bands 1-5 -> 0.8-3.2 kHz)
ROOM_CONTRAST_DB = (31.0, 37.0)
# Downmix energy retention (1 mono, 0.5 uncorrelated). Real stereo mixes with a wide room sit at
# 0.62-0.81 (5th percentile, median; tuning half): that is healthy width, not a risk. Below 0.5
# the channels cancel and the mono downmix thins out.
MONO_RETENTION_RANGE = (0.5, 0.7)


def band_shares(power: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Share of total energy per BAND_EDGES band [bands] (long-term)."""
    totals = power.sum(axis=1)
    shares = np.array(
        [
            totals[(freqs >= lo) & (freqs < hi)].sum()
            for lo, hi in zip(BAND_EDGES[:-1], BAND_EDGES[1:], strict=True)
        ]
    )
    return shares / max(float(shares.sum()), 1e-20)


def stereo_credit(image: dict[str, float]) -> float:
    """1 for a moderately wide, mono-safe image; dual-mono earns 0.6 (no separation, no harm);
    anti-phase or near-uncorrelated channels (downmix loses energy, sounds hollow) fall to 0."""
    compatible = ramp(image["mono_retention"], *MONO_RETENTION_RANGE)
    ratio = image["side_mid_ratio"]
    width = 0.6 + 0.4 * ramp(ratio, 0.0, 0.05) if ratio < 0.05 else 1.0 - ramp(ratio, 0.5, 1.0)
    return compatible * width


class MixSeparationScorer(Scorer):
    name = "mix_separation"
    needs_music = True

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        contrast = features.spectral_contrast(clip)
        loud = features.rms(clip) > 0.05 * max(float(features.rms(clip).max()), 1e-10)
        loud = loud[: contrast.shape[1]]
        frames = contrast[:, loud] if loud.any() else contrast
        band_contrast = frames[1:6].mean(axis=1)  # librosa's bands 1-5: ~200 Hz - 6.4 kHz
        mean_contrast = float(band_contrast.mean())
        clarity = ramp(mean_contrast, 10.0, 24.0)
        room_contrast = float(band_contrast[ROOM_BANDS].mean())
        room = 1.0 - ramp(room_contrast, *ROOM_CONTRAST_DB)
        shares = band_shares(features.power_spectrum(clip), features.fft_frequencies(clip))
        nonzero = shares[shares > 0]
        entropy = float(-(nonzero * np.log(nonzero)).sum() / np.log(len(shares)))
        balance = ramp(entropy, 0.2, 0.6)
        parts: dict[str, float] = {"clarity": clarity, "room": room, "balance": balance}
        details: dict[str, Any] = {
            "spectral_contrast_db": round(mean_contrast, 2),
            "band_contrast_db": [round(float(v), 1) for v in band_contrast],
            "room_contrast_db": round(room_contrast, 2),
            "band_energy_shares": [round(float(v), 3) for v in shares],
            "band_entropy": round(entropy, 3),
        }
        notes = []
        if clip.original.channels == 2:
            image = stereo_image(clip)
            parts["stereo"] = stereo_credit(image)
            details.update({k: round(v, 3) for k, v in image.items()})
        else:
            notes.append("mono clip: stereo image not assessed")
        details["parts"] = {name: round(value, 3) for name, value in parts.items()}
        value = float(np.mean(list(parts.values())))
        summary = ", ".join(f"{name} {value:.2f}" for name, value in parts.items())
        return ScoreResult(value, "; ".join([summary, *notes]), details)
