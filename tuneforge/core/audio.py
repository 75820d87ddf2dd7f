"""Audio in memory and on the wire: WAV bytes with limits, loudness, exact length, resampling.

`Audio.samples` is always float32 shaped [channels, n] in [-1, 1].
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from tuneforge.core.errors import TuneForgeError

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 48_000
MAX_CHANNELS = 2
DEFAULT_MAX_SECONDS = 120.0
DEFAULT_TARGET_LUFS = -14.0
# MusicGen's EnCodec rate: what most miners answer at, and the rate the calibration set and the
# benches make their audio at.
COMMON_RATE = 32_000
DEFAULT_TRUE_PEAK_DBFS = -1.0
# A float WAV may legitimately overshoot full scale a little (inter-sample peaks, a hot master);
# beyond +24 dBFS it is not audio but an attack on the numerics (|x| ~ 1e20 overflows squares).
MAX_ABS_SAMPLE = 16.0


class AudioError(TuneForgeError, ValueError):
    """Audio bytes or samples that cannot be accepted; the message says why."""

    status = 400
    code = "bad_audio"


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # float32 [channels, n]
    sample_rate: int

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples, dtype=np.float32)
        if samples.ndim == 1:
            samples = samples[np.newaxis, :]
        if samples.ndim != 2:
            raise AudioError(f"samples must be [channels, n], got shape {samples.shape}")
        object.__setattr__(self, "samples", samples)

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_seconds(self) -> float:
        return self.num_samples / float(self.sample_rate)

    def mono(self) -> np.ndarray:
        """Channel mean as a 1-D float32 array."""
        return self.samples.mean(axis=0).astype(np.float32, copy=False)


def encode_wav(audio: Audio, subtype: str = "PCM_16") -> bytes:
    """WAV bytes (16-bit PCM by default: half the size of float, inaudible difference)."""
    buffer = io.BytesIO()
    clipped = np.clip(audio.samples, -1.0, 1.0).T
    sf.write(buffer, clipped, audio.sample_rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


# Integer PCM: every byte pattern decodes to a finite sample in [-1, 1), so once the header and
# the data chunk are checked, reading the samples can find nothing more wrong with them.
_INTEGER_PCM = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32"})


@dataclass(frozen=True)
class WavHeader:
    """What a checked WAV header says: rate, channels, frames and libsndfile's subtype."""

    sample_rate: int
    channels: int
    frames: int
    subtype: str


def check_wav_header(
    data: bytes, *, max_bytes: int = 32 * 1024 * 1024, max_seconds: float = DEFAULT_MAX_SECONDS
) -> WavHeader:
    """Everything `decode_wav` checks before it reads the samples: size, container, rate,
    channels, length and a complete data chunk. Raises AudioError."""
    if not data:
        raise AudioError("empty audio body")
    if len(data) > max_bytes:
        raise AudioError(f"audio is {len(data)} bytes, limit is {max_bytes}")
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError("not a RIFF/WAVE file")
    _check_data_chunk_complete(data)
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"unreadable WAV: {exc}") from exc
    if info.format != "WAV":
        raise AudioError(f"unsupported container {info.format}")
    rate, channels, frames = int(info.samplerate), int(info.channels), int(info.frames)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"sample rate {rate} Hz outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{channels} channels, expected 1 or 2")
    if frames / rate > max_seconds:
        raise AudioError(f"audio is {frames / rate:.1f} s, limit is {max_seconds:.1f} s")
    return WavHeader(rate, channels, frames, str(info.subtype))


def decode_wav(
    data: bytes,
    *,
    max_bytes: int = 32 * 1024 * 1024,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    min_seconds: float = 0.0,
) -> Audio:
    """Decode untrusted WAV bytes, checking size, format, rate, channels, length, finiteness."""
    header = check_wav_header(data, max_bytes=max_bytes, max_seconds=max_seconds)
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            samples = handle.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"unreadable WAV: {exc}") from exc
    if samples.shape[0] < header.frames:
        raise AudioError(
            f"truncated WAV: header says {header.frames} frames, got {samples.shape[0]}"
        )
    audio = Audio(normalized_samples(samples.T), header.sample_rate)
    if audio.duration_seconds < min_seconds:
        raise AudioError(f"audio is {audio.duration_seconds:.2f} s, minimum is {min_seconds} s")
    return audio


@dataclass(frozen=True)
class WavAudio:
    """An answer `decode_wav` accepted, kept as its WAV bytes: a validator holding a round of
    answers holds ~4 MB per 30 s stereo answer instead of 7.7 MB of float samples (and the copies
    made of them), and whoever scores it decodes it then. `decode()` gives the checked samples."""

    wav: bytes = field(repr=False)
    sample_rate: int
    channels: int
    num_samples: int
    max_bytes: int
    max_seconds: float

    @classmethod
    def checked(cls, wav: bytes, *, max_bytes: int, max_seconds: float) -> WavAudio:
        """Check everything `decode_wav` checks, keep only the bytes and facts. Integer PCM is
        checked from its header and data chunk alone (its samples cannot be out of range, and
        the validator decoded every answer only to find that); float PCM and anything else is
        decoded once. Raises AudioError as `decode_wav` does."""
        header = check_wav_header(wav, max_bytes=max_bytes, max_seconds=max_seconds)
        if header.subtype in _INTEGER_PCM:
            return cls(
                wav, header.sample_rate, header.channels, header.frames, max_bytes, max_seconds
            )
        audio = decode_wav(wav, max_bytes=max_bytes, max_seconds=max_seconds)
        return cls(
            wav, audio.sample_rate, audio.channels, audio.num_samples, max_bytes, max_seconds
        )

    @property
    def duration_seconds(self) -> float:
        return self.num_samples / float(self.sample_rate)

    def read(self) -> bytes:
        """The answer's bytes as the miner signed them (a spooled answer reads them back)."""
        return self.wav

    def decode(self) -> Audio:
        return decode_wav(self.read(), max_bytes=self.max_bytes, max_seconds=self.max_seconds)


def decoded(audio: Audio | WavAudio) -> Audio:
    """`audio` as samples (a WavAudio is decoded now)."""
    return audio.decode() if isinstance(audio, WavAudio) else audio


def normalized_samples(samples: np.ndarray) -> np.ndarray:
    """Range-check untrusted samples once, at the boundary: finite, at most MAX_ABS_SAMPLE, then
    clipped to [-1, 1] as any player's converter would (the artifact penalty hears the clipping).
    Everything downstream may then assume bounded, C-ordered float32.

    float32 input is checked in float32 (its min and max carry any NaN or inf) and copied only
    when it must change: a decoded 30 s stereo clip took 27 ms through float64, now 2-3 ms, with
    the same values (D65)."""
    samples = np.asarray(samples)
    if samples.dtype != np.float32:
        samples = samples.astype(np.float64)
    if samples.size == 0:
        return np.ascontiguousarray(samples, dtype=np.float32)
    low, high = float(samples.min()), float(samples.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise AudioError("audio contains NaN or infinite samples")
    peak = max(high, -low)
    if peak > MAX_ABS_SAMPLE:
        raise AudioError(f"sample values out of range (peak {peak:.3g}, limit {MAX_ABS_SAMPLE:g})")
    if peak > 1.0:
        samples = np.clip(samples, -1.0, 1.0)
    return np.ascontiguousarray(samples, dtype=np.float32)


def checked_audio(audio: Audio) -> Audio:
    """`audio` as scoring may use it: a sane rate, 1-2 channels, bounded finite samples."""
    if not MIN_SAMPLE_RATE <= int(audio.sample_rate) <= MAX_SAMPLE_RATE:
        raise AudioError(f"sample rate {audio.sample_rate} Hz is not supported")
    if not 1 <= audio.channels <= MAX_CHANNELS:
        raise AudioError(f"{audio.channels} channels, expected 1 or 2")
    return Audio(normalized_samples(audio.samples), int(audio.sample_rate))


def _check_data_chunk_complete(data: bytes) -> None:
    """Walk the RIFF chunks: libsndfile silently reads a cut-off file, so compare the declared
    size of the `data` chunk with the bytes actually present."""
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        if chunk_id == b"data":
            present = len(data) - offset - 8
            if size > present:
                raise AudioError(f"truncated WAV: data chunk declares {size} bytes, has {present}")
            return
        offset += 8 + size + (size & 1)
    raise AudioError("truncated WAV: no data chunk")


def resample(audio: Audio, target_rate: int) -> Audio:
    """High-quality resampling (soxr) to `target_rate`."""
    if audio.sample_rate == target_rate:
        return audio
    import soxr

    out = soxr.resample(audio.samples.T, audio.sample_rate, target_rate, quality="HQ")
    out = np.asarray(out, dtype=np.float32)
    if out.ndim == 1:
        out = out[:, np.newaxis]
    return Audio(out.T.copy(), target_rate)


# True peak is computed exactly, but only where it can be: an oversampled value is at most the
# filter phase's sum of |taps| times the largest sample the filter reads, so blocks whose bound
# lies under a peak already found cannot hold the peak (a 30 s clip: 170 -> ~20 ms; D65).
_PEAK_BLOCK = 4096  # samples per block
_PEAK_MARGIN = 64  # samples read on each side of a block: more than the filter reaches (±10)


def true_peak_dbfs(audio: Audio, oversample: int = 4) -> float:
    """Inter-sample peak estimate (4x oversampling, as in ITU-R BS.1770): the peak of
    `scipy.signal.resample_poly(samples, oversample, 1)`, exactly."""
    samples = audio.samples
    n = samples.shape[1]
    if n == 0:
        return -np.inf
    if n <= 4 * _PEAK_BLOCK:
        peak = _oversampled_peak(samples, 0, n, oversample)
        return 20.0 * np.log10(peak) if peak > 0 else -np.inf
    blocks = -(-n // _PEAK_BLOCK)
    padded = np.zeros((samples.shape[0], blocks * _PEAK_BLOCK), dtype=samples.dtype)
    padded[:, :n] = np.abs(samples)
    block_max = padded.reshape(samples.shape[0], blocks, _PEAK_BLOCK).max(axis=(0, 2))
    reach = block_max.copy()  # a block's filter also reads its neighbours' edges
    reach[1:] = np.maximum(reach[1:], block_max[:-1])
    reach[:-1] = np.maximum(reach[:-1], block_max[1:])
    bound = reach.astype(np.float64) * _tap_sum(oversample) * (1.0 + 1e-6)
    loudest = int(np.argmax(block_max))
    peak = _oversampled_peak(
        samples, loudest * _PEAK_BLOCK, min(n, (loudest + 1) * _PEAK_BLOCK), oversample
    )
    needed = np.flatnonzero(bound > peak)
    # consecutive blocks in one call
    for run in np.split(needed, np.flatnonzero(np.diff(needed) > 1) + 1) if len(needed) else []:
        start, stop = int(run[0]) * _PEAK_BLOCK, min(n, (int(run[-1]) + 1) * _PEAK_BLOCK)
        peak = max(peak, _oversampled_peak(samples, start, stop, oversample))
    return 20.0 * np.log10(peak) if peak > 0 else -np.inf


def _oversampled_peak(samples: np.ndarray, start: int, stop: int, oversample: int) -> float:
    """max |resample_poly(samples, oversample, 1)| over the outputs of samples [start, stop)."""
    from scipy.signal import resample_poly

    low, high = max(0, start - _PEAK_MARGIN), min(samples.shape[1], stop + _PEAK_MARGIN)
    upsampled = resample_poly(samples[:, low:high], oversample, 1, axis=1)
    inside = upsampled[:, (start - low) * oversample : (stop - low) * oversample]
    return float(np.max(np.abs(inside)))


@functools.cache
def _tap_sum(oversample: int) -> float:
    """The largest sum of |taps| over the oversampling filter's phases (read off its response
    to an impulse, so it is the filter resample_poly really uses)."""
    from scipy.signal import resample_poly

    impulse = np.zeros(4 * _PEAK_MARGIN, dtype=np.float32)
    impulse[2 * _PEAK_MARGIN] = 1.0
    response = np.abs(resample_poly(impulse, oversample, 1).astype(np.float64))
    return float(max(response[phase::oversample].sum() for phase in range(oversample)))


def integrated_lufs(audio: Audio) -> float:
    """EBU R128 integrated loudness; -inf for silence or clips shorter than one 400 ms block."""
    import pyloudnorm

    if audio.duration_seconds < 0.4:
        return -np.inf
    meter = pyloudnorm.Meter(audio.sample_rate)
    with np.errstate(divide="ignore"):
        return float(meter.integrated_loudness(audio.samples.T.astype(np.float64)))


def normalize_loudness(
    audio: Audio,
    target_lufs: float = DEFAULT_TARGET_LUFS,
    true_peak_ceiling_dbfs: float = DEFAULT_TRUE_PEAK_DBFS,
) -> Audio:
    """Gain to `target_lufs`, then lowered if needed so the true peak stays under the ceiling."""
    loudness = integrated_lufs(audio)
    gain_db = target_lufs - loudness if np.isfinite(loudness) else 0.0
    gained = Audio(audio.samples * np.float32(10.0 ** (gain_db / 20.0)), audio.sample_rate)
    peak = true_peak_dbfs(gained)
    if np.isfinite(peak) and peak > true_peak_ceiling_dbfs:
        reduction = 10.0 ** ((true_peak_ceiling_dbfs - peak) / 20.0)
        gained = Audio(gained.samples * np.float32(reduction), audio.sample_rate)
    return gained


def fit_length(audio: Audio, duration_seconds: float, fade_seconds: float = 0.05) -> Audio:
    """Trim or zero-pad to exactly round(duration * rate) samples, fading at a cut."""
    target = int(round(duration_seconds * audio.sample_rate))
    samples = audio.samples
    if samples.shape[1] > target:
        samples = samples[:, :target].copy()
        fade = min(int(fade_seconds * audio.sample_rate), target)
        if fade > 0:
            samples[:, -fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    elif samples.shape[1] < target:
        pad = np.zeros((samples.shape[0], target - samples.shape[1]), dtype=np.float32)
        samples = np.concatenate([samples, pad], axis=1)
    return Audio(samples, audio.sample_rate)


def split_windows(y: np.ndarray, size: int, min_last: int) -> list[np.ndarray]:
    """Consecutive windows of `size` samples (what a fixed-window model reads); a short tail is
    kept only if it holds >= `min_last` samples."""
    if len(y) <= size:
        return [y]
    out = [y[i : i + size] for i in range(0, len(y), size)]
    if len(out) > 1 and len(out[-1]) < min_last:
        out.pop()
    return out
