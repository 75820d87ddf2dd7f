"""Deterministic synthesised test signals (tuneforge.core.audio.Audio) for scoring tests.

Every function is pure and seeded: the same arguments give the same samples, so tests that compare
an original with a degraded copy compare like with like.
"""

from __future__ import annotations

import numpy as np

from tuneforge.core.audio import Audio

NOTE_INDEX = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6,
              "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}  # fmt: skip
MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10)
# Scale degrees (0-based) of the chord roots: I-V-vi-IV in major, i-VI-III-VII in minor.
MAJOR_PROGRESSION = (0, 4, 5, 3)
MINOR_PROGRESSION = (0, 5, 2, 6)


def parse_key(key: str) -> tuple[int, bool]:
    """("A minor") -> (pitch class 9, is_minor True)."""
    tonic, mode = key.split()
    return NOTE_INDEX[tonic], mode.lower() == "minor"


def midi_to_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _tone(freq: float, n: int, sr: int, harmonics: int = 4, decay: float = 1.5) -> np.ndarray:
    """A harmonic tone with a short attack and exponential decay (a plucked/keyboard shape)."""
    t = np.arange(n, dtype=np.float64) / sr
    wave = np.zeros(n)
    for h in range(1, harmonics + 1):
        if freq * h < sr / 2:
            wave += np.sin(2 * np.pi * freq * h * t) / h
    attack = np.minimum(1.0, t / 0.01)
    return wave * attack * np.exp(-decay * t)


def _scale_midi(key: str, degree: int, octave: int) -> int:
    tonic, minor = parse_key(key)
    steps = MINOR_STEPS if minor else MAJOR_STEPS
    return 12 * (octave + 1) + tonic + steps[degree % 7] + 12 * (degree // 7)


def drum_pattern(tempo_bpm: float = 100, seconds: float = 10, sr: int = 32_000) -> Audio:
    """Kick on beats 1 and 3, snare on 2 and 4, closed hi-hat on every eighth note."""
    n = int(round(seconds * sr))
    out = np.zeros(n)
    rng = np.random.default_rng(1234)
    beat = 60.0 / tempo_bpm
    kick_len, snare_len, hat_len = int(0.25 * sr), int(0.18 * sr), int(0.05 * sr)
    tk = np.arange(kick_len) / sr
    kick = np.sin(2 * np.pi * (50 * tk + 60 * (1 - np.exp(-tk * 30)) / 30)) * np.exp(-tk * 18)
    snare = rng.standard_normal(snare_len) * np.exp(-np.arange(snare_len) / sr * 25) * 0.5
    hat_noise = np.diff(rng.standard_normal(hat_len + 1))  # differenced noise: bright
    hat = hat_noise * np.exp(-np.arange(hat_len) / sr * 80) * 0.15
    for sound in (kick, snare, hat):  # let every hit die out instead of stopping dead
        tail = len(sound) // 5
        sound[-tail:] *= np.linspace(1.0, 0.0, tail)
    step = 0
    while True:
        start = int(round(step * beat / 2 * sr))
        if start >= n:
            break
        beat_in_bar = (step // 2) % 4
        if step % 2 == 0:
            sound = kick if beat_in_bar in (0, 2) else snare
            end = min(n, start + len(sound))
            out[start:end] += sound[: end - start]
        end = min(n, start + hat_len)
        out[start:end] += hat[: end - start]
        step += 1
    return Audio((out * 0.5).astype(np.float32), sr)


def chords(
    key: str = "A minor",
    tempo_bpm: float = 100,
    seconds: float = 10,
    sr: int = 32_000,
    beats_per_chord: int = 4,
) -> Audio:
    """Triads of the key's progression, one per bar, voiced in octave 3 with a bass root."""
    n = int(round(seconds * sr))
    out = np.zeros(n)
    chord_len = int(round(beats_per_chord * 60.0 / tempo_bpm * sr))
    progression = MINOR_PROGRESSION if parse_key(key)[1] else MAJOR_PROGRESSION
    for index, start in enumerate(range(0, n, chord_len)):
        root = progression[index % len(progression)]
        length = min(chord_len, n - start)
        for degree in (root, root + 2, root + 4):
            out[start : start + length] += 0.18 * _tone(
                midi_to_hz(_scale_midi(key, degree, 3)), length, sr, decay=0.6
            )
        out[start : start + length] += 0.25 * _tone(
            midi_to_hz(_scale_midi(key, root, 2)), length, sr, harmonics=2, decay=0.8
        )
    return Audio(out.astype(np.float32), sr)


def melody(
    key: str = "A minor",
    tempo_bpm: float = 100,
    seconds: float = 10,
    sr: int = 32_000,
    seed: int = 0,
) -> Audio:
    """A stepwise random-walk melody in the key, one note per beat, octave 4-5."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    out = np.zeros(n)
    note_len = int(round(60.0 / tempo_bpm * sr))
    degree = 0
    for start in range(0, n, note_len):
        degree = int(np.clip(degree + rng.choice([-2, -1, -1, 0, 1, 1, 2]), -3, 9))
        length = min(note_len, n - start)
        out[start : start + length] += 0.22 * _tone(
            midi_to_hz(_scale_midi(key, degree, 4)), length, sr, harmonics=3, decay=2.5
        )
    return Audio(out.astype(np.float32), sr)


def tonal_piece(
    key: str = "A minor",
    tempo_bpm: float = 100,
    seconds: float = 10,
    sr: int = 32_000,
    seed: int = 0,
) -> Audio:
    """Chords + melody + drums in `key` at `tempo_bpm`, with a 0.5 s fade-in and a fade-out over
    the last 15% (a real beginning and ending), peak-normalised to -3 dBFS."""
    mix = (
        chords(key, tempo_bpm, seconds, sr).samples[0]
        + melody(key, tempo_bpm, seconds, sr, seed).samples[0]
        + drum_pattern(tempo_bpm, seconds, sr).samples[0]
    ).astype(np.float64)
    n = len(mix)
    fade_in = min(n, int(0.5 * sr))
    mix[:fade_in] *= np.linspace(0.0, 1.0, fade_in)
    fade_out = min(n, int(0.15 * n))
    if fade_out > 0:
        mix[n - fade_out :] *= np.linspace(1.0, 0.0, fade_out)
    peak = np.max(np.abs(mix)) if n else 0.0
    if peak > 0:
        mix *= 10 ** (-3 / 20) / peak
    return Audio(mix.astype(np.float32), sr)


def white_noise(seconds: float = 10, sr: int = 32_000, level: float = 0.3, seed: int = 0) -> Audio:
    rng = np.random.default_rng(seed)
    return Audio((rng.standard_normal(int(round(seconds * sr))) * level).astype(np.float32), sr)


def silence(seconds: float = 10, sr: int = 32_000) -> Audio:
    return Audio(np.zeros(int(round(seconds * sr)), dtype=np.float32), sr)


def clipped(audio: Audio, drive: float = 8.0) -> Audio:
    """Gain by `drive` then hard-clip at ±1: flat-topped waveforms, harsh harmonics."""
    return Audio(np.clip(audio.samples * drive, -1.0, 1.0), audio.sample_rate)


def time_shuffled(audio: Audio, segment_s: float = 0.25, seed: int = 0) -> Audio:
    """Cut into `segment_s` pieces and shuffle them: same spectrum, destroyed structure."""
    rng = np.random.default_rng(seed)
    seg = max(1, int(round(segment_s * audio.sample_rate)))
    n_full = audio.num_samples // seg
    pieces = [audio.samples[:, i * seg : (i + 1) * seg] for i in range(n_full)]
    order = rng.permutation(n_full)
    tail = audio.samples[:, n_full * seg :]
    out = np.concatenate([pieces[i] for i in order] + [tail], axis=1) if n_full else audio.samples
    return Audio(out, audio.sample_rate)


def with_noise(audio: Audio, snr_db: float = 10.0, seed: int = 0) -> Audio:
    """Add white noise at `snr_db` below the signal's mean power."""
    rng = np.random.default_rng(seed)
    power = float(np.mean(audio.samples.astype(np.float64) ** 2))
    noise = rng.standard_normal(audio.samples.shape) * np.sqrt(power / 10 ** (snr_db / 10))
    return Audio(np.clip(audio.samples + noise, -1.0, 1.0), audio.sample_rate)


def looped(
    audio: Audio, loop_seconds: float = 2.0, total_seconds: float | None = None, offset_s: float = 0
) -> Audio:
    """Repeat the `loop_seconds` slice starting at `offset_s` until `total_seconds` (default: the
    input's duration). The classic cheap "generation": one bar on repeat."""
    sr = audio.sample_rate
    start = int(round(offset_s * sr))
    loop = audio.samples[:, start : start + max(1, int(round(loop_seconds * sr)))]
    total = int(round((total_seconds or audio.duration_seconds) * sr))
    reps = int(np.ceil(total / loop.shape[1]))
    return Audio(np.tile(loop, (1, reps))[:, :total], sr)


def shifted(audio: Audio, seconds: float) -> Audio:
    """Drop the first `seconds` (positive) or prepend that much silence (negative); any non-round
    number of samples is fine — it is how loops and copies hide from naive comparisons."""
    k = int(round(abs(seconds) * audio.sample_rate))
    if seconds >= 0:
        return Audio(audio.samples[:, k:], audio.sample_rate)
    pad = np.zeros((audio.channels, k), dtype=np.float32)
    return Audio(np.concatenate([pad, audio.samples], axis=1), audio.sample_rate)


def stereo(audio: Audio, width: float = 0.3, delay_ms: float = 7.0) -> Audio:
    """A stereo version: left = mono, right = mono delayed and partly decorrelated by `width`."""
    mono = audio.mono()
    d = int(round(delay_ms / 1000 * audio.sample_rate))
    delayed = np.concatenate([np.zeros(d, dtype=np.float32), mono[: len(mono) - d]])
    right = (1 - width) * mono + width * delayed
    return Audio(np.stack([mono, right.astype(np.float32)]), audio.sample_rate)


def scaled(audio: Audio, gain: float) -> Audio:
    return Audio(np.clip(audio.samples * gain, -1.0, 1.0), audio.sample_rate)


def in_room(audio: Audio, rt60_s: float = 0.8, wet: float = 0.5, seed: int = 0) -> Audio:
    """The same audio played in a room: convolved with an exponentially decaying noise tail
    (reverberation time `rt60_s`), mixed `wet` with the dry signal, peak kept. Real recordings
    and renders decay like this; dry synthesised notes stop dead."""
    from scipy.signal import fftconvolve

    sr = audio.sample_rate
    rng = np.random.default_rng(seed)
    t = np.arange(int(rt60_s * sr)) / sr
    response = rng.standard_normal(len(t)) * 10.0 ** (-3.0 * t / rt60_s)
    response /= np.sqrt(np.sum(response**2))
    dry = audio.samples.astype(np.float64)
    tail = np.stack([fftconvolve(ch, response)[: dry.shape[1]] for ch in dry])
    mix = (1.0 - wet) * dry + wet * tail
    peak = float(np.max(np.abs(mix))) or 1.0
    return Audio((mix * float(np.max(np.abs(dry))) / peak).astype(np.float32), sr)
