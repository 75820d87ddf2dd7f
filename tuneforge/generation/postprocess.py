"""Finishing raw model audio: exact length, loudness target and true-peak safety.

Every backend ends with `finish()`, so miners deliver the same loudness and the exact requested
length whatever produced the samples. Channels are kept as they are (mono stays mono).
"""

from __future__ import annotations

import numpy as np

from tuneforge.core.audio import Audio, fit_length, normalize_loudness
from tuneforge.generation.base import GenerationError

# High-pass corner: below hearing, enough to remove DC and sub-sonic drift.
DC_CUTOFF_HZ = 10.0
# Fade at a cut: long enough to avoid a click, short enough not to eat the ending.
CUT_FADE_SECONDS = 0.05


def finish(
    audio: Audio,
    duration_seconds: float,
    target_lufs: float,
    true_peak_dbfs: float,
) -> Audio:
    """Exactly round(duration * rate) samples at `target_lufs`, true peak under the ceiling."""
    if audio.num_samples == 0:
        raise GenerationError("backend produced no audio")
    if not np.all(np.isfinite(audio.samples)):
        raise GenerationError("backend produced NaN or infinite samples")
    fitted = fit_length(_remove_dc(audio), duration_seconds, CUT_FADE_SECONDS)
    finished = normalize_loudness(fitted, target_lufs, true_peak_dbfs)
    return Audio(np.clip(finished.samples, -1.0, 1.0), finished.sample_rate)


def _remove_dc(audio: Audio) -> Audio:
    """Zero-phase 10 Hz high-pass: an offset adds loudness nobody hears and eats true-peak
    headroom; unlike subtracting the mean it leaves silence silent."""
    from scipy.signal import butter, sosfiltfilt

    if audio.num_samples < 64:
        return audio
    sos = butter(2, DC_CUTOFF_HZ, btype="highpass", fs=audio.sample_rate, output="sos")
    padlen = min(audio.num_samples - 1, 3 * audio.sample_rate // 10)
    return Audio(sosfiltfilt(sos, audio.samples, axis=1, padlen=padlen), audio.sample_rate)
