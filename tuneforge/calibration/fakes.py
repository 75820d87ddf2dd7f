"""Cheap fakes: what a miner without a model could send for a challenge. Each is made for the SAME
challenge as the real piece it is paired with (key, tempo, duration, instruments) and delivered
at the same loudness, so the only thing that differs is whether it is real music."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tuneforge.calibration.heldout import markov_piece
from tuneforge.calibration.procedural import VARIANT, procedural_piece
from tuneforge.calibration.real import TARGET_LUFS, RealPiece, _finish
from tuneforge.core.audio import COMMON_RATE, Audio
from tuneforge.core.protocol import MusicGenerationSynapse

RATE = COMMON_RATE
LOOP_SECONDS = 1.5
DEFAULT_TEMPO = 100.0
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)


def _key_and_tempo(challenge: MusicGenerationSynapse) -> tuple[int, bool, float]:
    """(tonic pitch class, minor, bpm) the challenge asks for (C major, 100 BPM when silent)."""
    from tuneforge.scoring.keys import KeyParseError, parse_key

    try:
        key = parse_key(challenge.key or "C major")
    except KeyParseError:
        key = parse_key("C major")
    return key.tonic, key.minor, float(challenge.tempo_bpm or DEFAULT_TEMPO)


def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _tone(freq: float, seconds: float, decay: float = 1.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    wave = sum(np.sin(2 * np.pi * freq * h * t) / h for h in range(1, 6) if freq * h < RATE / 2.5)
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-decay * t)
    release = np.minimum(1.0, (t[-1] - t) / 0.02) if len(t) else t
    return np.asarray(wave * envelope * release)


def _samples(challenge: MusicGenerationSynapse) -> int:
    return int(round(challenge.duration_seconds * RATE))


def synth(piece: RealPiece) -> Audio:
    """The project's own `synth` backend for the challenge."""
    from tuneforge.generation.synth import SynthBackend

    return SynthBackend().generate(piece.challenge)


def arpeggio(piece: RealPiece) -> Audio:
    """I-IV-V-I triads of the requested key, arpeggiated in eighth notes at the requested tempo."""
    tonic, minor, bpm = _key_and_tempo(piece.challenge)
    scale = MINOR if minor else MAJOR
    out = np.zeros(_samples(piece.challenge))
    eighth = 30.0 / bpm
    for i in range(int(len(out) / RATE / eighth) + 1):
        root = (0, 3, 4, 0)[(i // 8) % 4]
        degree = root + (0, 2, 4, 7, 4, 2, 0, 2)[i % 8]
        midi = 60 + tonic + scale[degree % 7] + 12 * (degree // 7)
        note = _tone(_hz(midi), eighth * 1.5, decay=3.0)
        start = int(i * eighth * RATE)
        end = min(len(out), start + len(note))
        if start < end:
            out[start:end] += note[: end - start]
    return _finish(out[None, :], RATE)


def drone(piece: RealPiece) -> Audio:
    """Tonic, fifth and octave held for the whole clip, with a slow swell."""
    tonic, _, _ = _key_and_tempo(piece.challenge)
    n = _samples(piece.challenge)
    t = np.arange(n) / RATE
    wave = sum(_partial(_hz(48 + tonic + step), t) for step in (0, 7, 12))
    return _finish((wave * (0.8 + 0.2 * np.sin(2 * np.pi * 0.2 * t)))[None, :], RATE)


def _partial(freq: float, t: np.ndarray) -> np.ndarray:
    return sum(np.sin(2 * np.pi * freq * h * t) / h for h in range(1, 5))


def beat_noise(piece: RealPiece) -> Audio:
    """White noise bursts on every beat of the requested tempo, decaying in ~100 ms."""
    _, _, bpm = _key_and_tempo(piece.challenge)
    n = _samples(piece.challenge)
    t = np.arange(n) / RATE
    since_beat = np.mod(t, 60.0 / bpm)
    rng = np.random.default_rng(piece.challenge.seed)
    return _finish((rng.standard_normal(n) * np.exp(-since_beat * 25.0))[None, :], RATE)


def loop(piece: RealPiece) -> Audio:
    """A 1.5 s stretch of the real clip (from a quarter of the way in) repeated to length."""
    samples = piece.audio.samples
    rate = piece.audio.sample_rate
    size = int(LOOP_SECONDS * rate)
    start = min(samples.shape[1] // 4, max(0, samples.shape[1] - size))
    cell = samples[:, start : start + size]
    repeats = int(np.ceil(samples.shape[1] / max(cell.shape[1], 1)))
    return _finish(np.tile(cell, (1, repeats))[:, : samples.shape[1]], rate)


def reversed_clip(piece: RealPiece) -> Audio:
    """The real clip played backwards."""
    return _finish(piece.audio.samples[:, ::-1].copy(), piece.audio.sample_rate)


def clicks(piece: RealPiece) -> Audio:
    """Digital silence with a click on every beat."""
    _, _, bpm = _key_and_tempo(piece.challenge)
    out = np.zeros(_samples(piece.challenge))
    period = int(60.0 / bpm * RATE)
    out[::period] = 1.0
    out[1::period] = -0.6
    return _finish(out[None, :], RATE)


def heldout_generator(piece: RealPiece) -> Audio:
    """A second rule-based generator written for the bench only (never used to tune)."""
    audio = markov_piece(piece.challenge)
    return _finish(audio.samples, audio.sample_rate)


def procedural(piece: RealPiece) -> Audio:
    """A careful rule-based piece (procedural.py): plucked strings, pads on a voice-led
    progression, a bass line, a phrased melody, swung drums, a room."""
    return procedural_piece(piece.challenge)


def procedural_variant(piece: RealPiece) -> Audio:
    """The same generator with other choices (FM lead, organ pad, no room, straight time): the
    stand-in for a rule-based generator nobody tuned against."""
    return procedural_piece(piece.challenge, VARIANT)


# Kinds measured on the tune split and reported on both; HELDOUT_KINDS only ever on held-out.
FAKES: dict[str, Callable[[RealPiece], Audio]] = {
    "synth": synth,
    "arpeggio": arpeggio,
    "drone": drone,
    "beat_noise": beat_noise,
    "loop": loop,
    "reversed": reversed_clip,
    "clicks": clicks,
    "procedural": procedural,
    "procedural_variant": procedural_variant,
    "heldout_generator": heldout_generator,
}
HELDOUT_KINDS = ("heldout_generator",)
assert TARGET_LUFS < 0  # fakes share the real set's loudness through _finish
