"""SynthBackend: weight-free, seeded, rule-based music at 32 kHz.

The model-free demo backend for localnet and tests — never a calibration baseline (the scorers
are calibrated on real music, docs/scoring.md). Plain rule-based music:
drums (kick, snare, hi-hat), a bass line, chord pads and a stepwise melody built from repeated
motifs, in the requested key and tempo, ending on the tonic with a fade. One seed, one piece.
"""

from __future__ import annotations

import math

import numpy as np

from tuneforge.core.audio import Audio
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.generation.configs import SAMPLE_RATE  # the rate MusicGen answers at
from tuneforge.generation.postprocess import finish
from tuneforge.generation.settings import GenerationSettings

DEFAULT_TEMPO = 100
DEFAULT_KEY = "C major"
# Typical tempi; the first genre name found in the request's genre wins.
GENRE_TEMPOS = {"drum and bass": 174, "dnb": 174, "techno": 130, "house": 124, "edm": 128,
                "trap": 140, "metal": 140, "punk": 160, "disco": 118, "rock": 120, "pop": 110,
                "funk": 105, "country": 110, "blues": 95, "jazz": 120, "lo-fi": 85, "lofi": 85,
                "hip hop": 90, "hip-hop": 90, "r&b": 90, "reggae": 75, "ambient": 70,
                "classical": 90, "cinematic": 90}  # fmt: skip
PITCH_CLASS = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6,
               "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}  # fmt: skip
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Chord roots as 0-based scale degrees, one chord per bar, all starting on the tonic.
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 3), (0, 3, 5, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 5, 4)),
}
# One-bar melody rhythms in eighth notes (each sums to 8).
RHYTHMS = ((2, 1, 1, 2, 2), (1, 1, 1, 1, 2, 2), (3, 1, 2, 2), (2, 2, 1, 1, 2), (2, 1, 1, 4))
# Kick positions in eighth notes (the snare stays on beats 2 and 4 so the pulse is clear).
KICK_PATTERNS = ((0, 4), (0, 3, 4), (0, 4, 5), (0, 1, 4), (0, 4, 7))
# Mostly stepwise motion: steps of one scale degree dominate, small leaps are rare.
STEPS, STEP_P = (-2, -1, 0, 1, 2), (0.08, 0.38, 0.08, 0.38, 0.08)


def tempo_for(genre: str | None) -> int:
    text = (genre or "").lower()
    return next((bpm for name, bpm in GENRE_TEMPOS.items() if name in text), DEFAULT_TEMPO)


def parse_key(key: str | None) -> tuple[int, str]:
    """ "A minor" -> (9, "minor"); None -> C major."""
    tonic, mode = (key or DEFAULT_KEY).split()
    return PITCH_CLASS[tonic], mode.lower()


def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _tone(freq: float, seconds: float, bright: float, attack: float, decay: float) -> np.ndarray:
    """Additive tone: harmonics falling as 1/h**bright, linear attack, exponential decay."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = np.zeros_like(t)
    for h in range(1, 8):
        if freq * h < SAMPLE_RATE / 2.5:
            wave += np.sin(2 * np.pi * freq * h * t) / h**bright
    release = np.minimum(1.0, (t[-1] - t) / 0.03) if len(t) else t  # no click at note off
    return wave * np.minimum(1.0, t / attack) * np.exp(-decay * t) * release


class _Score:
    """A stereo buffer that notes and hits are added into at sample offsets."""

    def __init__(self, seconds: float) -> None:
        self.buffer = np.zeros((2, int(seconds * SAMPLE_RATE) + 1))

    def add(self, sound: np.ndarray, at_s: float, gain: float, pan: float = 0.0) -> None:
        start = int(at_s * SAMPLE_RATE)
        end = min(self.buffer.shape[1], start + len(sound))
        if end <= start:
            return
        angle = (pan + 1.0) * math.pi / 4  # constant-power pan, -1 left .. 1 right
        self.buffer[0, start:end] += gain * math.cos(angle) * sound[: end - start]
        self.buffer[1, start:end] += gain * math.sin(angle) * sound[: end - start]


def _drum_kit(rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(int(0.35 * SAMPLE_RATE)) / SAMPLE_RATE
    sweep = 45.0 * t + 90.0 * (1 - np.exp(-t * 35.0)) / 35.0  # pitch falls ~135 Hz -> 45 Hz
    kick = np.sin(2 * np.pi * sweep) * np.exp(-t * 12.0)
    ts = t[: int(0.2 * SAMPLE_RATE)]
    snare = rng.standard_normal(len(ts)) * np.exp(-ts * 22.0) * 0.6
    snare += np.sin(2 * np.pi * 185.0 * ts) * np.exp(-ts * 30.0) * 0.5
    th = t[: int(0.06 * SAMPLE_RATE)]
    hat = np.diff(rng.standard_normal(len(th) + 1)) * np.exp(-th * 70.0) * 0.25  # bright noise
    return {"kick": kick, "snare": snare, "hat": hat}


def _motif(rng: np.random.Generator, start: int, end: int | None = None) -> list[tuple[float, int]]:
    """One bar of (eighths, scale degree); stepwise walk from `start`, landing on `end` if set."""
    rhythm = RHYTHMS[rng.integers(len(RHYTHMS))]
    degrees = [start]
    for _ in rhythm[1:]:
        degrees.append(int(np.clip(degrees[-1] + rng.choice(STEPS, p=STEP_P), -3, 9)))
    if end is not None:  # approach the target by step
        degrees[-1] = end
        if len(degrees) > 2:
            degrees[-2] = end + (1 if degrees[-3] > end else -1)
    return list(zip(rhythm, degrees, strict=True))


def render(
    duration_s: float, tempo_bpm: float, key: str | None, seed: int, instruments: list[str]
) -> Audio:
    """Raw stereo piece of `duration_s` seconds (not loudness-normalised)."""
    rng = np.random.default_rng(seed)
    tonic, mode = parse_key(key)
    scale = SCALES[mode]
    progression = PROGRESSIONS[mode][rng.integers(4)]
    # Where in the progression the piece opens and how the pad is voiced both vary by seed: with
    # every piece opening on the same tonic pad, short clips of different seeds fingerprinted as
    # copies of each other (chroma is dominated by the pad).
    opening = int(rng.integers(4))
    inversion = int(rng.integers(3))
    pad_octave = 4
    beat = 60.0 / tempo_bpm
    bar = 4 * beat
    # Whole bars, the last one stretched to the end so the final tonic chord is heard.
    n_bars = max(1, int(duration_s // bar))
    last_beats = (duration_s - (n_bars - 1) * bar) / beat
    wanted = " ".join(instruments).lower()
    lead_decay, lead_bright = (2.5, 1.0) if "piano" in wanted else (0.6, 1.6)

    def midi(degree: int, octave: int) -> int:
        return 12 * (octave + 1) + tonic + scale[degree % 7] + 12 * (degree // 7)

    motif_a = _motif(rng, 0)
    motifs = (motif_a, _motif(rng, 4), motif_a, _motif(rng, 4, 7))
    bass_pattern = ((0, 1.5), (1.5, 0.5), (2, 1.5), (3.5, 0.5))[: 2 + rng.integers(3)]
    kit = _drum_kit(rng)
    kicks = KICK_PATTERNS[rng.integers(len(KICK_PATTERNS))]
    score = _Score(duration_s + 2.0)
    for b in range(n_bars):
        t0 = b * bar
        last = b == n_bars - 1
        root = 0 if last else progression[(b + opening) % 4]
        triad = (root, root + 2, root + 4)
        voicing = [d + 7 if i < inversion else d for i, d in enumerate(triad)]
        for degree in voicing:  # pad: the triad, held for the bar
            held = last_beats * beat if last else bar * 1.02
            tone = _tone(_hz(midi(degree, pad_octave)), held, 2.0, 0.08, 0.3)
            score.add(tone, t0, 0.09, pan=-0.5 + 0.5 * ((degree - root) // 2))
        for offset, length in ((0, last_beats),) if last else bass_pattern:
            score.add(
                _tone(_hz(midi(root, 2)), length * beat, 1.3, 0.005, 1.5), t0 + offset * beat, 0.32
            )
        # The last bar holds the tonic; a full phrase is A, B, A, cadence to the tonic.
        phrase = [(2 * last_beats, 7)] if last else motifs[b % 4]
        at = t0
        for eighths, degree in phrase:
            length = eighths * beat / 2
            note = _tone(_hz(midi(degree, 5)), length, lead_bright, 0.01, lead_decay)
            score.add(note, at, 0.22, pan=0.1)
            score.add(note, at + 0.75 * beat, 0.05, pan=-0.6)  # a dotted-eighth echo
            at += length
        for eighth in range(1 if last else 8):
            when = t0 + eighth * beat / 2
            if eighth in kicks:
                score.add(kit["kick"], when, 0.7)
            if eighth in (2, 6):
                score.add(kit["snare"], when, 0.35, pan=0.1)
            score.add(kit["hat"], when, 0.3 if eighth % 2 == 0 else 0.18, pan=0.4)
    samples = score.buffer[:, : int(round(duration_s * SAMPLE_RATE))]
    fade = min(int(2.5 * SAMPLE_RATE), samples.shape[1] // 5)  # the ending: a fade to silence
    if fade > 0:
        samples[:, -fade:] *= np.linspace(1.0, 0.0, fade) ** 2
    return Audio(samples.astype(np.float32), SAMPLE_RATE)


class SynthBackend:
    """Backend that renders rule-based music; no weights, no accelerator, ~real time / 50."""

    name = "synth"
    model_id = "tuneforge-synth-v1"
    sings = False
    sample_rate = SAMPLE_RATE

    def __init__(self, settings: GenerationSettings | None = None) -> None:
        self.settings = settings or GenerationSettings(backend="synth")
        self.max_duration_seconds = self.settings.max_duration_seconds

    def load(self) -> None:
        """Nothing to load (the same start-up call as the model backends)."""

    def generate(self, request: MusicGenerationSynapse) -> Audio:
        tempo = request.tempo_bpm or tempo_for(request.genre)
        seed = self.settings.seed_for(request.seed)
        raw = render(request.duration_seconds, tempo, request.key, seed, request.instruments)
        return finish(
            raw, request.duration_seconds, self.settings.target_lufs, self.settings.true_peak_dbfs
        )
