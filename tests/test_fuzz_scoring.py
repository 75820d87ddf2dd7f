"""Property-based fuzzing of the two scoring boundaries: the WAV decoder and the engine.

Whatever a miner sends: no exception escapes, every number is finite and in [0, 1] (or null for
a check that does not run here), and a broken clip never outscores an ordinary one.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.helpers import signals
from tuneforge.core.audio import MAX_ABS_SAMPLE, Audio, AudioError, decode_wav
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring.base import ClipScore, Submission
from tuneforge.scoring.engine import ScoringEngine
from tuneforge.scoring.history import InMemoryHistory

CHALLENGE = MusicGenerationSynapse(prompt="anything", genre="rock", duration_seconds=2)
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

any_float32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
rates = st.sampled_from([1, 100, 8000, 11025, 22050, 32000, 44100, 48000, 96000, 2**31 - 1])


def _float_wav(samples: np.ndarray, rate: int) -> bytes:
    """A float32 WAV written field by field, NaN/huge values included (soundfile would not)."""
    frames = samples.astype("<f4")
    channels = 1 if frames.ndim == 1 else frames.shape[1]
    data = frames.tobytes()
    fmt = (
        b"fmt "
        + (16).to_bytes(4, "little")
        + (3).to_bytes(2, "little")
        + channels.to_bytes(2, "little")
        + (rate % 2**32).to_bytes(4, "little")
        + ((rate * 4 * channels) % 2**32).to_bytes(4, "little")
        + (4 * channels).to_bytes(2, "little")
        + (32).to_bytes(2, "little")
    )
    body = fmt + b"data" + len(data).to_bytes(4, "little") + data
    return b"RIFF" + (4 + len(body)).to_bytes(4, "little") + b"WAVE" + body


def _assert_bounded(audio: Audio) -> None:
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 2
    assert np.all(np.isfinite(audio.samples))
    assert float(np.max(np.abs(audio.samples), initial=0.0)) <= 1.0


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_decode_or_fail_with_audio_error(data: bytes) -> None:
    try:
        audio = decode_wav(data)
    except AudioError:
        return
    _assert_bounded(audio)


@FUZZ
@given(
    samples=arrays(np.float32, st.integers(0, 4000), elements=any_float32),
    rate=rates,
    stereo=st.booleans(),
)
def test_any_float_wav_decodes_to_bounded_audio_or_a_clear_error(
    samples: np.ndarray, rate: int, stereo: bool
) -> None:
    frames = np.stack([samples, samples[::-1]], axis=1) if stereo else samples
    try:
        audio = decode_wav(_float_wav(frames, rate))
    except AudioError as exc:
        assert str(exc)
        return
    _assert_bounded(audio)
    peak = float(np.max(np.abs(samples), initial=0.0))
    assert math.isfinite(peak) and peak <= MAX_ABS_SAMPLE


def test_huge_finite_floats_are_refused_at_the_boundary() -> None:
    huge = np.full(16_000, 1e20, dtype=np.float32)
    with pytest.raises(AudioError, match="out of range"):
        decode_wav(_float_wav(huge, 16_000))
    hot = (3.0 * np.sin(np.arange(16_000) / 5.0)).astype(np.float32)
    audio = decode_wav(_float_wav(hot, 16_000))
    assert float(np.abs(audio.samples).max()) == 1.0  # clipped as a converter would


def test_pcm_wavs_still_decode_exactly() -> None:
    samples = (0.5 * np.sin(np.arange(8000) / 3.0)).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, samples, 8000, format="WAV", subtype="PCM_16")
    audio = decode_wav(buffer.getvalue())
    np.testing.assert_allclose(audio.samples[0], samples, atol=1e-4)


@pytest.fixture(scope="module")
def engine() -> ScoringEngine:
    return ScoringEngine.create(InMemoryHistory())


@pytest.fixture(scope="module")
def ordinary() -> Audio:
    return signals.tonal_piece("E minor", tempo_bpm=110, seconds=2.0)


def _values(score: ClipScore) -> list[float | None]:
    return [
        score.final_score,
        score.composite,
        *score.score_breakdown.values(),
        *score.penalties.values(),
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    samples=arrays(
        np.float64,
        st.integers(0, 3 * 8000),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=64),
    ),
    rate=rates,
    channels=st.sampled_from([1, 2, 3]),
)
def test_the_engine_survives_any_array_and_never_ranks_it_above_music(
    engine: ScoringEngine, ordinary: Audio, samples: np.ndarray, rate: int, channels: int
) -> None:
    hostile = Audio(np.tile(samples, (channels, 1)), rate)
    engine.history = InMemoryHistory()  # each example alone: no cross-example copies
    scores = engine.score_round(
        CHALLENGE,
        [Submission("music", ordinary, 1000.0), Submission("hostile", hostile, 1000.0)],
    )
    assert len(scores) == 2
    for score in scores:
        for value in _values(score):
            assert value is None or (math.isfinite(value) and 0.0 <= value <= 1.0)
    music, attack = scores
    assert attack.final_score <= music.final_score
