"""Foundations: settings from flags/env, the protocol model's bounds, WAV limits, exact length."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf
from pydantic import ValidationError

from tuneforge.core.audio import (
    Audio,
    AudioError,
    WavAudio,
    decode_wav,
    encode_wav,
    fit_length,
    integrated_lufs,
    normalize_loudness,
    normalized_samples,
    resample,
    true_peak_dbfs,
)
from tuneforge.core.config import AxonSettings, TuneForgeSettings, WalletSettings, parse_settings
from tuneforge.core.protocol import MusicGenerationSynapse, is_compatible, new_challenge_id


class _RoleSettings(TuneForgeSettings):
    netuid: int = 234
    network: str = "test"
    wallet: WalletSettings = WalletSettings()
    axon: AxonSettings = AxonSettings()
    verbose: bool = False


def test_flags_override_env_which_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEFORGE_WALLET__NAME", "from-env")
    monkeypatch.setenv("TUNEFORGE_AXON__PORT", "9000")
    settings = parse_settings(_RoleSettings, ["--axon.port", "9001", "--netuid", "7", "--verbose"])
    assert settings.wallet.name == "from-env"
    assert settings.axon.port == 9001
    assert settings.netuid == 7 and settings.verbose is True
    assert parse_settings(_RoleSettings, []).axon.port == 9000


def test_invalid_flag_values_are_refused() -> None:
    with pytest.raises(ValidationError):
        parse_settings(_RoleSettings, ["--axon.port", "70000"])


def _tone(seconds: float = 2.0, rate: int = 32_000, channels: int = 1) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * 440 * t)
    return Audio(np.tile(mono, (channels, 1)), rate)


@pytest.mark.parametrize(
    "field",
    [
        {"duration_seconds": 0},
        {"duration_seconds": 10_000},
        {"tempo_bpm": 1_000},
        {"prompt": "x" * 10_000},
        {"prompt": ""},
        {"key": "H major"},
        {"challenge_id": "../../etc"},
        {"unexpected": 1},
        {"instruments": ["x" * 100]},
    ],
)
def test_out_of_range_synapse_fields_are_refused(field: dict) -> None:
    with pytest.raises(ValidationError):
        MusicGenerationSynapse.model_validate({"prompt": "calm piano", **field})


def test_synapse_defaults_always_carry_a_seed_and_an_id() -> None:
    synapse = MusicGenerationSynapse(prompt="calm piano", key="F# minor")
    assert synapse.seed >= 0 and synapse.challenge_id.startswith("ch_")
    assert new_challenge_id() != new_challenge_id()


def test_spec_compatibility_is_by_major_version() -> None:
    assert is_compatible("1.7")
    assert not is_compatible("2.0") and not is_compatible(None) and not is_compatible("x")


def test_wav_round_trip_keeps_rate_channels_and_length() -> None:
    audio = _tone(channels=2)
    decoded = decode_wav(encode_wav(audio))
    assert decoded.sample_rate == 32_000 and decoded.channels == 2
    assert decoded.num_samples == audio.num_samples
    assert np.max(np.abs(decoded.samples - audio.samples)) < 1e-3


def _float_wav(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def test_hostile_wav_bytes_get_clear_errors() -> None:
    good = encode_wav(_tone())
    cases = {
        b"": "empty",
        b"ID3\x00not a wav at all": "RIFF",
        good[: len(good) // 2]: "truncated",
        _float_wav(np.full(1000, np.nan, dtype=np.float32), 32_000): "NaN",
        _float_wav(np.zeros(100, dtype=np.float32), 4_000): "sample rate",
        _float_wav(np.zeros((100, 3), dtype=np.float32), 32_000): "channels",
    }
    for data, expected in cases.items():
        with pytest.raises(AudioError, match=expected):
            decode_wav(data)
        with pytest.raises(AudioError, match=expected):  # the validator's check of an answer
            WavAudio.checked(data, max_bytes=1 << 24, max_seconds=60.0)
    with pytest.raises(AudioError, match="limit"):
        decode_wav(good, max_bytes=1000)
    with pytest.raises(AudioError, match="limit"):
        decode_wav(good, max_seconds=1.0)


def test_an_integer_pcm_answer_is_checked_without_decoding_its_samples(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every 16-bit sample is a finite value in range: the header and the data chunk are all
    there is to check (float WAVs, which can carry NaN, are still decoded: the test above)."""
    import tuneforge.core.audio as audio_module

    wav = encode_wav(_tone(channels=2))

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("an integer PCM answer was decoded to be checked")

    monkeypatch.setattr(audio_module, "decode_wav", no_decoding)
    checked = WavAudio.checked(wav, max_bytes=1 << 24, max_seconds=60.0)
    assert (checked.sample_rate, checked.channels) == (32_000, 2)
    assert checked.num_samples == _tone(channels=2).num_samples


def test_normalised_samples_keep_their_values_and_refuse_nan_inf_and_huge() -> None:
    rng = np.random.default_rng(3)
    for scale in (0.3, 2.0):
        for dtype in (np.float32, np.float64):
            samples = (rng.standard_normal((2, 500)) * scale).astype(dtype)
            got = normalized_samples(samples.T.copy().T)  # not C-ordered, as decoded
            want = np.clip(samples.astype(np.float64), -1.0, 1.0).astype(np.float32)
            assert got.dtype == np.float32 and got.flags.c_contiguous
            assert np.array_equal(got, want)
    for bad, reason in ((np.nan, "NaN"), (-np.inf, "infinite"), (17.0, "out of range")):
        samples = np.zeros((1, 10), dtype=np.float32)
        samples[0, 4] = bad
        with pytest.raises(AudioError, match=reason):
            normalized_samples(samples)


def test_header_claiming_more_frames_than_present_is_truncated() -> None:
    good = bytearray(encode_wav(_tone(seconds=1.0)))
    data_at = good.find(b"data")
    struct.pack_into("<I", good, data_at + 4, 10 * 32_000 * 2)
    with pytest.raises(AudioError):
        decode_wav(bytes(good))


def test_fit_length_is_exact_for_trim_and_pad() -> None:
    audio = _tone(seconds=2.0)
    assert fit_length(audio, 1.5).num_samples == 48_000
    padded = fit_length(audio, 3.25)
    assert padded.num_samples == 104_000
    trimmed = fit_length(audio, 1.0)
    assert abs(trimmed.samples[0, -1]) < 1e-3  # faded, not cut at full level


def test_loudness_normalisation_hits_target_under_true_peak_ceiling() -> None:
    quiet = Audio(_tone(seconds=3.0).samples * 0.05, 32_000)
    loud = normalize_loudness(quiet, target_lufs=-16.0)
    assert abs(integrated_lufs(loud) - (-16.0)) < 0.5
    hot = normalize_loudness(quiet, target_lufs=0.0, true_peak_ceiling_dbfs=-1.0)
    assert true_peak_dbfs(hot) <= -0.9


def test_resample_changes_rate_and_keeps_duration() -> None:
    out = resample(_tone(seconds=1.0, rate=44_100, channels=2), 32_000)
    assert out.sample_rate == 32_000 and out.channels == 2
    assert abs(out.num_samples - 32_000) <= 1
