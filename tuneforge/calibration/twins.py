"""Degraded twins of real pieces: the same music with one defect each, for the scorer named
after that defect to catch (original must beat twin on that scorer)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tuneforge.calibration.real import RealPiece, _finish
from tuneforge.core.audio import Audio

NOISE_SNR_DB = 10.0  # white noise this far under the music's RMS
CLIP_DRIVE_DB = 12.0  # gain before hard clipping at full scale
SHORT_FRACTION = 0.6  # a short twin keeps this much of the clip
SPLICE_FADE_S = 0.005  # joins are crossfaded so a shuffle is not merely a click


def shuffled(piece: RealPiece) -> Audio:
    """Cut at the bar lines and reordered (every bar moves; joins crossfaded over 5 ms)."""
    samples, rate = piece.audio.samples, piece.audio.sample_rate
    bar = int(round((piece.bar_seconds or 2.0) * rate))
    cuts = list(range(0, samples.shape[1], bar))
    bars = [samples[:, c : c + bar] for c in cuts]
    rng = np.random.default_rng(piece.challenge.seed)
    order = np.arange(len(bars))
    if len(bars) > 1:
        while np.any(order == np.arange(len(bars))):
            order = rng.permutation(len(bars))
    fade = max(1, int(SPLICE_FADE_S * rate))
    ramp = np.linspace(0.0, 1.0, fade)
    out = bars[order[0]].copy()
    for index in order[1:]:
        nxt = bars[index].copy()
        if out.shape[1] >= fade and nxt.shape[1] >= fade:
            out[:, -fade:] *= ramp[::-1]
            nxt[:, :fade] *= ramp
        out = np.concatenate([out, nxt], axis=1)
    return _finish(out, rate)


def noisy(piece: RealPiece) -> Audio:
    """White noise added NOISE_SNR_DB under the music's RMS."""
    samples = piece.audio.samples.astype(np.float64)
    rms = float(np.sqrt(np.mean(samples**2)))
    rng = np.random.default_rng(piece.challenge.seed)
    noise = rng.standard_normal(samples.shape) * rms * 10.0 ** (-NOISE_SNR_DB / 20.0)
    return _finish(samples + noise, piece.audio.sample_rate)


def clipped(piece: RealPiece) -> Audio:
    """Driven CLIP_DRIVE_DB into a hard clip at full scale, then brought back to loudness (the
    flat tops stay flat, at whatever level they end up)."""
    samples = piece.audio.samples.astype(np.float64)
    peak = float(np.abs(samples).max()) or 1.0
    driven = np.clip(samples / peak * 10.0 ** (CLIP_DRIVE_DB / 20.0), -1.0, 1.0)
    return _finish(driven, piece.audio.sample_rate)


def short(piece: RealPiece) -> Audio:
    """The first SHORT_FRACTION of the clip, with a 50 ms fade-out."""
    samples, rate = piece.audio.samples, piece.audio.sample_rate
    kept = samples[:, : int(samples.shape[1] * SHORT_FRACTION)].copy()
    fade = min(kept.shape[1], int(0.05 * rate))
    kept[:, kept.shape[1] - fade :] *= np.linspace(1.0, 0.0, fade)
    return Audio(kept.astype(np.float32), rate)


# twin kind -> (degrade, the scorers or penalties that must prefer the original)
TWINS: dict[str, tuple[Callable[[RealPiece], Audio], tuple[str, ...]]] = {
    "shuffled": (shuffled, ("structural", "musicality")),
    "noisy": (noisy, ("quality", "production")),
    "clipped": (clipped, ("artifact_penalty",)),
    "short": (short, ("duration_penalty",)),
}
