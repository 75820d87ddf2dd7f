"""A careful rule-based generator: what a miner without a model, but with some craft, would send.

Written for the bench only and independently of the project's `synth` backend (it shares no code
with tuneforge/generation/synth.py): Karplus-Strong plucked strings, detuned additive pads on a
voice-led I-vi-IV-V style progression in the challenge's key, a bass line, a melody in phrases
(antecedent, consequent, cadence on the tonic), swung drums with velocity and timing variation, a
synthetic room and a mix at the set's loudness. `Style` holds the arbitrary choices so that a
second variant (other voices, no room, straight time) can stand for a generator nobody tuned on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.random import Generator
from scipy.signal import fftconvolve, lfilter

from tuneforge.core.audio import COMMON_RATE, Audio
from tuneforge.core.protocol import MusicGenerationSynapse

RATE = COMMON_RATE
SCALES = {False: (0, 2, 4, 5, 7, 9, 11), True: (0, 2, 3, 5, 7, 8, 10)}
# Progressions as scale degrees (0 = tonic), four bars each, the pop and film staples.
PROGRESSIONS = {
    False: ((0, 5, 3, 4), (0, 4, 5, 3), (0, 3, 4, 4), (5, 3, 0, 4)),
    True: ((0, 5, 2, 6), (0, 3, 6, 2), (0, 5, 3, 4), (0, 3, 4, 0)),
}
Note = tuple[float, float, int]  # (start beat, length in beats, MIDI pitch)
QUIET_GENRES = ("classical", "ambient", "orchestral", "cinematic", "choral", "baroque")


@dataclass(frozen=True)
class Style:
    lead: str = "pluck"  # "pluck" (Karplus-Strong) or "fm" (bell-like two-operator FM)
    pad: str = "additive"  # "additive" (detuned partials) or "organ" (drawbar sines)
    room: str = "schroeder"  # "schroeder", "noise" (decaying-noise impulse) or "" (dry)
    swing: float = 0.58  # where the off-beat eighth falls (0.5 = straight)
    drums: bool = True


MAIN = Style()
# A second set of choices, checked but never tuned on: other voices, no room, straight time.
VARIANT = Style(lead="fm", pad="organ", room="", swing=0.5)


def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _add(out: np.ndarray, sound: np.ndarray, at_s: float, gain: float, pan: float) -> None:
    """Mix a mono sound into the stereo `out` at `at_s`, equal-power panned (-1 left .. 1 right)."""
    start = int(at_s * RATE)
    end = min(out.shape[1], start + len(sound))
    if start >= end or start < 0:
        return
    angle = (pan + 1.0) * np.pi / 4.0
    out[0, start:end] += gain * np.cos(angle) * sound[: end - start]
    out[1, start:end] += gain * np.sin(angle) * sound[: end - start]


# ----------------------------------------------------------------------------------- voices


def pluck(freq: float, seconds: float, rng: np.random.Generator, bright: float = 0.5) -> np.ndarray:
    """Karplus-Strong string: a noise burst circulating in a delay line with a damped average."""
    period = max(2, int(round(RATE / freq)))
    n = int(seconds * RATE)
    out = np.zeros(n + period + 1)
    burst = rng.uniform(-1.0, 1.0, period)
    # a softer pick: low-pass the burst, more for darker strings
    out[1 : period + 1] = lfilter([1.0 - bright], [1.0, -bright], burst)
    damping = 0.996 if freq < 200 else 0.994
    for start in range(period + 1, n + period + 1, period):
        stop = min(start + period, n + period + 1)
        width = stop - start
        back = start - period
        pair = out[back : back + width] + out[back - 1 : back - 1 + width]
        out[start:stop] = damping * 0.5 * pair
    sound = out[1 : n + 1]
    fade = min(len(sound), int(0.03 * RATE))
    sound[len(sound) - fade :] *= np.linspace(1.0, 0.0, fade)
    return sound


def fm_bell(freq: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    index = 2.5 * np.exp(-4.0 * t)
    wave = np.sin(2 * np.pi * freq * t + index * np.sin(2 * np.pi * 3.5 * freq * t))
    env = np.minimum(1.0, t / 0.005) * np.exp(-2.5 * t)
    return wave * env * np.minimum(1.0, (t[-1] - t) / 0.03)


def pad_voice(freq: float, seconds: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A sustained chord tone: three detuned additive copies (or drawbar organ sines)."""
    t = np.arange(int(seconds * RATE)) / RATE
    wave = np.zeros_like(t)
    if kind == "organ":
        for harmonic, level in ((0.5, 0.5), (1, 1.0), (2, 0.6), (3, 0.3), (4, 0.2)):
            if freq * harmonic < RATE / 2.5:
                wave += level * np.sin(2 * np.pi * freq * harmonic * t + rng.uniform(0, 6.28))
        attack = 0.02
    else:
        for cents in (-7.0, 0.0, 6.0):
            f = freq * 2.0 ** (cents / 1200.0)
            vibrato = 0.002 * np.sin(2 * np.pi * rng.uniform(4.5, 5.5) * t)
            for h in range(1, 9):
                if f * h < RATE / 2.5:
                    phase = 2 * np.pi * f * h * (t + vibrato / (2 * np.pi * 5.0))
                    wave += np.sin(phase + rng.uniform(0, 6.28)) / h**1.6
        attack = 0.35
    env = np.minimum(1.0, t / attack) * np.minimum(1.0, (t[-1] - t) / 0.4)
    return wave * env / 3.0


def kick(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.35 * RATE)) / RATE
    sweep = 50.0 + 90.0 * np.exp(-t * 30.0)
    return np.sin(2 * np.pi * np.cumsum(sweep) / RATE) * np.exp(-t * 9.0)


def snare(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.25 * RATE)) / RATE
    noise = lfilter([1.0, -0.9], [1.0], rng.standard_normal(len(t)))
    body = np.sin(2 * np.pi * 190.0 * t) * np.exp(-t * 30.0)
    return (0.5 * noise * np.exp(-t * 18.0) + body) * 0.8


def hat(rng: np.random.Generator, open_: bool = False) -> np.ndarray:
    t = np.arange(int((0.25 if open_ else 0.06) * RATE)) / RATE
    noise = lfilter([1.0, -1.0], [1.0, -0.3], rng.standard_normal(len(t)))
    return 0.3 * noise * np.exp(-t * (12.0 if open_ else 70.0))


# ----------------------------------------------------------------------------------- harmony


def chord_pcs(degree: int, tonic: int, scale: tuple[int, ...]) -> list[int]:
    """Pitch classes of the diatonic triad on `degree`."""
    return [(tonic + scale[(degree + step) % 7]) % 12 for step in (0, 2, 4)]


def voice_lead(previous: list[int], pcs: list[int]) -> list[int]:
    """The voicing of `pcs` (MIDI 52-76) whose notes move least from `previous` in total."""
    best: list[int] = []
    best_cost = 1e9
    for low in range(52, 64):
        for inversion in range(3):
            order = pcs[inversion:] + pcs[:inversion]
            notes = []
            pitch = low - 1
            for pc in order:
                pitch += 1 + (pc - pitch - 1) % 12  # next pitch of that class above
                notes.append(pitch)
            if notes[-1] > 76:
                continue
            cost = sum(abs(a - b) for a, b in zip(sorted(notes), sorted(previous), strict=False))
            if cost < best_cost:
                best, best_cost = notes, cost
    return best


def progression(tonic: int, minor: bool, bars: int, rng: np.random.Generator) -> list[list[int]]:
    """Voice-led triads, one a bar; the last bar returns to the tonic (an authentic cadence)."""
    scale = SCALES[minor]
    choices = PROGRESSIONS[minor]
    cycle = choices[int(rng.integers(len(choices)))]
    degrees = [cycle[i % 4] for i in range(bars)]
    if bars >= 2:
        degrees[-2], degrees[-1] = 4, 0
    voicings = []
    previous = [60 + tonic % 12, 64, 67]
    for degree in degrees:
        previous = voice_lead(previous, chord_pcs(degree, tonic, scale))
        voicings.append(previous)
    return voicings


def melody(
    tonic: int, minor: bool, chords: list[list[int]], rng: np.random.Generator
) -> list[tuple[float, float, int]]:
    """(start beat, length in beats, MIDI) notes: two-bar motifs repeated with variation, chord
    tones on strong beats, stepwise in between, a long note closing each four-bar phrase."""
    scale = SCALES[minor]
    pool = [72 + tonic % 12 - 12 + o * 12 + s for o in range(3) for s in scale]
    pool = [p for p in pool if 62 <= p <= 86]
    rhythms = ((1, 1, 0.5, 0.5, 1), (1.5, 0.5, 1, 1), (0.5, 0.5, 1, 2), (2, 1, 1))
    motif = [rhythms[int(rng.integers(len(rhythms)))] for _ in range(2)]
    notes: list[tuple[float, float, int]] = []
    current = pool[len(pool) // 2]
    for bar, chord in enumerate(chords):
        lengths = motif[bar % 2]
        if bar % 4 == 3 or bar == len(chords) - 1:
            lengths = (2.0, 2.0)  # phrase end: rest on a held chord tone
        beat = 0.0
        for i, length in enumerate(lengths):
            strong = beat in (0.0, 2.0)
            targets = [p for p in pool if p % 12 in {c % 12 for c in chord}] if strong else pool
            near = sorted(targets, key=lambda p: abs(p - current) + rng.uniform(0, 2.5))
            current = near[0] if strong else near[int(rng.integers(min(3, len(near))))]
            if not (bar % 4 == 3 and i == 1):  # the phrase breathes
                notes.append((bar * 4 + beat, length, current))
            beat += length
    return notes


# ----------------------------------------------------------------------------------- the mix


def _feedback(x: np.ndarray, delay: int, gain: float) -> np.ndarray:
    """y[n] = x[n] + gain * y[n - delay], a delay line at a time (vectorised per block)."""
    y = x.copy()
    for start in range(delay, len(y), delay):
        stop = min(start + delay, len(y))
        y[start:stop] += gain * y[start - delay : stop - delay]
    return y


def _allpass(x: np.ndarray, delay: int, gain: float) -> np.ndarray:
    fed = _feedback(x, delay, gain)  # w[n] = x[n] + g w[n-D]; y[n] = -g w[n] + w[n-D]
    delayed = np.concatenate([np.zeros(delay), fed[:-delay]])
    return -gain * fed + (1.0 - gain * gain) * delayed


def schroeder(x: np.ndarray, spread: int) -> np.ndarray:
    """Four parallel combs into two all-passes; `spread` samples detune the combs per channel."""
    wet = sum(_feedback(x, int(ms * RATE / 1000) + spread, 0.83) for ms in (29.7, 37.1, 41.1, 43.7))
    wet = lfilter([0.4], [1.0, -0.6], wet)  # the air darkens the tail
    for ms, gain in ((5.0, 0.7), (1.7, 0.7)):
        wet = _allpass(wet, int(ms * RATE / 1000), gain)
    return np.asarray(wet) / 4.0


def noise_room(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(1.6 * RATE)) / RATE
    response = rng.standard_normal(len(t)) * np.exp(-t * 6.9 / 1.6)
    response = lfilter([0.3], [1.0, -0.7], response)
    return np.asarray(fftconvolve(x, response)[: len(x)]) * 0.05


def _room(dry: np.ndarray, style: Style, rng: np.random.Generator) -> np.ndarray:
    if not style.room:
        return dry
    if style.room == "noise":
        wet = np.stack([noise_room(dry[c], rng) for c in range(2)])
    else:
        wet = np.stack([schroeder(dry[c], spread) for c, spread in ((0, 0), (1, 23))])
    wet *= np.sqrt(np.mean(dry**2) / max(float(np.mean(wet**2)), 1e-12)) * 0.45
    return dry + wet


def _master(mix: np.ndarray) -> np.ndarray:
    """Bus glue: a 20 Hz high-pass (plucks leave DC), then a soft clip of the peaks after a
    level that puts the loud notes near it."""
    pole = np.exp(-2 * np.pi * 20.0 / RATE)
    mix = lfilter([1.0, -1.0], [1.0, -pole], mix, axis=1)
    peak = float(np.max(np.abs(mix))) or 1.0
    return np.tanh(1.4 * mix / peak) / np.tanh(1.4)


# ----------------------------------------------------------------------------------- the piece


def _swung(beat: float, swing: float) -> float:
    """An off-beat eighth moved to `swing` of its beat."""
    whole = np.floor(beat)
    return float(whole + (swing if abs(beat - whole - 0.5) < 1e-6 else beat - whole))


def _play_pads(
    out: np.ndarray, chords: list[list[int]], spb: float, style: Style, rng: Generator
) -> None:
    for bar, chord in enumerate(chords):
        for i, note in enumerate(chord):
            sound = pad_voice(_hz(note), 4 * spb + 0.5, style.pad, rng)
            _add(out, sound, bar * 4 * spb + rng.uniform(0, 0.02), 0.16, (-0.5, 0.1, 0.5)[i])


def _play_bass(
    out: np.ndarray, chords: list[list[int]], spb: float, style: Style, rng: Generator
) -> None:
    pattern = ((0.0, 1.5, 0), (1.5, 0.5, 0), (2.0, 1.0, 7), (3.0, 1.0, 12))
    for bar, chord in enumerate(chords):
        root = 36 + (chord[0] - 36) % 12
        for beat, length, step in pattern:
            if bar == len(chords) - 1 and beat > 0:
                break
            sound = pluck(_hz(root + step), length * spb + 0.3, rng, bright=0.75)
            at = bar * 4 * spb + _swung(beat, style.swing) * spb + rng.normal(0, 0.004)
            _add(out, sound, at, rng.uniform(0.5, 0.65), 0.0)


def _play_lead(
    out: np.ndarray, notes: list[Note], spb: float, style: Style, rng: Generator
) -> None:
    for beat, length, pitch in notes:
        seconds = length * spb + 0.6
        voice = pluck(_hz(pitch), seconds, rng, 0.3) if style.lead == "pluck" else None
        sound = voice if voice is not None else fm_bell(_hz(pitch), seconds, rng)
        at = _swung(beat, style.swing) * spb + rng.normal(0, 0.008)
        _add(out, sound, at, rng.uniform(0.35, 0.5), 0.2)


def _play_drums(out: np.ndarray, bars: int, spb: float, style: Style, rng: Generator) -> None:
    kit = {"k": [kick(rng) for _ in range(3)], "s": [snare(rng) for _ in range(3)],
           "h": [hat(rng) for _ in range(4)], "o": [hat(rng, True)]}  # fmt: skip
    for bar in range(bars):
        hits = [(0.0, "k"), (1.0, "s"), (2.0, "k"), (3.0, "s")]
        if rng.random() < 0.4:
            hits.append((2.5, "k"))
        hits += [(e / 2, "h") for e in range(8)]
        if bar % 4 == 3:
            hits += [(3.5, "o"), (3.75, "s")]
        for beat, name in hits:
            sounds = kit[name]
            loud = 1.0 if beat in (0.0, 2.0) or name != "h" else 0.6
            at = bar * 4 * spb + _swung(beat, style.swing) * spb + rng.normal(0, 0.005)
            pan = {"k": 0.0, "s": 0.1, "h": -0.3, "o": -0.3}[name]
            gain = loud * rng.uniform(0.7, 1.0) * {"k": 0.9, "s": 0.5, "h": 0.5, "o": 0.4}[name]
            _add(out, sounds[int(rng.integers(len(sounds)))], at, gain, pan)


def procedural_piece(challenge: MusicGenerationSynapse, style: Style = MAIN) -> Audio:
    """Stereo piece of the challenge's duration in its key and tempo (C major, 100 BPM when the
    challenge names neither), drums unless its genre is a quiet one, at the set's loudness."""
    from tuneforge.calibration.real import _finish
    from tuneforge.scoring.keys import KeyParseError, parse_key

    try:
        key = parse_key(challenge.key or "C major")
    except KeyParseError:
        key = parse_key("C major")
    rng = np.random.default_rng(challenge.seed)
    spb = 60.0 / float(challenge.tempo_bpm or 100)
    n = int(round(challenge.duration_seconds * RATE))
    bars = max(1, int(np.ceil(n / RATE / (4 * spb))))
    chords = progression(key.tonic, key.minor, bars, rng)
    out = np.zeros((2, n + RATE))
    _play_pads(out, chords, spb, style, rng)
    _play_bass(out, chords, spb, style, rng)
    _play_lead(out, melody(key.tonic, key.minor, chords, rng), spb, style, rng)
    genre = (challenge.genre or "").lower()
    if style.drums and not any(q in genre for q in QUIET_GENRES):
        _play_drums(out, bars, spb, style, rng)
    mixed = _room(out, style, rng)[:, :n]
    fade = min(n, int(0.5 * RATE))
    mixed[:, n - fade :] *= np.linspace(1.0, 0.0, fade) ** 2
    return _finish(_master(mixed), RATE)
