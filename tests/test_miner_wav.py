"""The miner's fast WAV encoder writes what the shared decoder reads, sample for sample."""

from __future__ import annotations

import numpy as np
import pytest

from tuneforge.core.audio import Audio, AudioError, decode_wav, encode_wav
from tuneforge.miner.wav import encode_pcm16_wav


@pytest.mark.parametrize(("channels", "rate"), [(1, 32_000), (2, 44_100)])
def test_fast_encoder_round_trips_like_the_reference_encoder(channels: int, rate: int) -> None:
    rng = np.random.default_rng(3)
    samples = rng.uniform(-1.2, 1.2, size=(channels, rate // 2)).astype(np.float32)
    audio = Audio(samples, rate)
    fast = decode_wav(encode_pcm16_wav(audio))
    reference = decode_wav(encode_wav(audio))
    assert (fast.sample_rate, fast.channels, fast.num_samples) == (rate, channels, rate // 2)
    # Same clipping and scale; rounding may differ by one 16-bit step.
    assert np.max(np.abs(fast.samples - reference.samples)) <= 1.0 / 32768
    assert np.max(np.abs(fast.samples)) <= 1.0


def test_fast_encoder_refuses_non_finite_samples_and_odd_rates() -> None:
    with pytest.raises(AudioError, match="NaN"):
        encode_pcm16_wav(Audio(np.array([[0.0, np.nan]], dtype=np.float32), 32_000))
    with pytest.raises(AudioError, match="sample rate"):
        encode_pcm16_wav(Audio(np.zeros((1, 10), dtype=np.float32), 96_000))
