"""A second rule-based generator, written only to check that the retuned scorers do not merely
recognise the project's `synth` backend. It shares no code with synth.py and is never used while
tuning: FM-synthesised voices, a Markov chain over diatonic chords, a waltz or straight comping
pattern, a random-walk melody quantised to the scale, and a different drum kit."""

from __future__ import annotations

import numpy as np

from tuneforge.core.audio import COMMON_RATE, Audio
from tuneforge.core.protocol import MusicGenerationSynapse

RATE = COMMON_RATE
SCALES = {False: (0, 2, 4, 5, 7, 9, 11), True: (0, 2, 3, 5, 7, 8, 10)}
# Diatonic chord transitions (scale degree -> likely next degrees), the common-practice kind.
NEXT_CHORD = {0: (3, 4, 5, 1), 1: (4, 6), 2: (5, 3), 3: (4, 0, 1), 4: (0, 5), 5: (1, 3, 4),
              6: (0, 2)}  # fmt: skip


def _fm(freq: float, seconds: float, index: float, decay: float) -> np.ndarray:
    """Two-operator FM voice (modulator at 2x the carrier), exponential decay."""
    t = np.arange(int(seconds * RATE)) / RATE
    modulator = index * np.exp(-3.0 * t) * np.sin(2 * np.pi * 2.0 * freq * t)
    wave = np.sin(2 * np.pi * freq * t + modulator)
    envelope = np.minimum(1.0, t / 0.004) * np.exp(-decay * t)
    release = np.minimum(1.0, (t[-1] - t) / 0.015) if len(t) else t
    return wave * envelope * release


def _add(out: np.ndarray, sound: np.ndarray, at_s: float, gain: float) -> None:
    start = int(at_s * RATE)
    end = min(len(out), start + len(sound))
    if start < end:
        out[start:end] += gain * sound[: end - start]


def markov_piece(challenge: MusicGenerationSynapse) -> Audio:
    """Mono piece of the challenge's duration in its key and tempo (defaults: C major, 96 BPM)."""
    from tuneforge.scoring.keys import KeyParseError, parse_key

    try:
        key = parse_key(challenge.key or "C major")
    except KeyParseError:
        key = parse_key("C major")
    bpm = float(challenge.tempo_bpm or 96)
    rng = np.random.default_rng(challenge.seed + 17)
    scale = SCALES[key.minor]
    beat = 60.0 / bpm
    beats_per_bar = 3 if rng.random() < 0.3 else 4
    n = int(round(challenge.duration_seconds * RATE))
    out = np.zeros(n)

    def midi(degree: int, base: int) -> int:
        return base + key.tonic + scale[degree % 7] + 12 * (degree // 7)

    def hz(m: float) -> float:
        return 440.0 * 2.0 ** ((m - 69.0) / 12.0)

    chord, melody_degree, at = 0, 7, 0.0
    t_kick = np.arange(int(0.25 * RATE)) / RATE
    kick = np.sin(2 * np.pi * (60.0 + 80.0 * np.exp(-t_kick * 40.0)) * t_kick) * np.exp(-t_kick * 9)
    tick = rng.standard_normal(int(0.03 * RATE)) * np.exp(-np.arange(int(0.03 * RATE)) / 120.0)
    while at < challenge.duration_seconds:
        bar = beats_per_bar * beat
        for voice in (0, 2, 4):  # chord tones on each beat after the first (comping)
            for b in range(1, beats_per_bar):
                tone = _fm(hz(midi(chord + voice, 48)), beat * 0.9, 1.2, 2.5)
                _add(out, tone, at + b * beat, 0.1)
        _add(out, _fm(hz(midi(chord, 36)), bar * 0.95, 0.8, 1.0), at, 0.35)  # bass on the downbeat
        _add(out, kick, at, 0.5)
        for b in range(beats_per_bar):
            _add(out, tick, at + b * beat + beat / 2, 0.15)
        position = 0.0
        while position < beats_per_bar - 1e-9:
            length = float(rng.choice((0.5, 1.0, 1.0, 1.5, 2.0)))
            length = min(length, beats_per_bar - position)
            step = int(rng.choice((-2, -1, -1, 1, 1, 2, 0)))
            melody_degree = int(np.clip(melody_degree + step, 3, 12))
            if position == 0:  # downbeats land on a chord tone
                tones = [chord + v for v in (0, 2, 4, 7, 9, 11)]
                melody_degree = min(tones, key=lambda d: abs(d - melody_degree))
            note = _fm(hz(midi(melody_degree, 60)), length * beat, 2.0, 1.8)
            _add(out, note, at + position * beat, 0.25)
            position += length
        chord = int(rng.choice(NEXT_CHORD[chord]))
        at += bar
    fade = min(n // 6, int(1.5 * RATE))
    if fade:
        out[-fade:] *= np.linspace(1.0, 0.0, fade)
    return Audio(out[None, :].astype(np.float32), RATE)
