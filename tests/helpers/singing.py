"""Singing-like voice made here without a singing model: espeak-ng words held on the notes of a
melody (pitch per word from the note, each word stretched to its note's length), mixed over an
accompaniment at a chosen voice-to-accompaniment level. It is not a singer, but it has what a
voice detector must cope with in songs: long pitched vowels, a melodic contour, and music
underneath."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tests.helpers import signals
from tuneforge.core.audio import Audio, resample

RATE = 32_000
LYRIC_LINES = (
    "we sail across the silver sea tonight",
    "hold my hand and sing along with me",
    "morning light is shining on the river",
    "every heart is beating like a drum",
)


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def _espeak(word: str, pitch: int, folder: Path) -> np.ndarray:
    path = folder / f"{abs(hash((word, pitch)))}.wav"
    # -s 90: slow (words/min) so vowels are long; -p: espeak's base pitch (0-99) for the note.
    subprocess.run(
        ["espeak-ng", "-v", "en", "-s", "90", "-p", str(pitch), "-w", str(path), word],
        check=True,
        timeout=30,
    )
    import soundfile as sf

    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    return resample(Audio(samples.T.copy(), rate), RATE).samples[0]


def sung_line(text: str, tempo_bpm: float = 90.0, seed: int = 0) -> np.ndarray:
    """One line "sung": each word on the next note of a stepwise melody, held for 1-2 beats."""
    import librosa

    rng = np.random.default_rng(seed)
    beat = 60.0 / tempo_bpm
    parts: list[np.ndarray] = []
    degree = 4
    with tempfile.TemporaryDirectory() as folder:
        for word in text.split():
            degree = int(np.clip(degree + rng.choice([-2, -1, 1, 2]), 0, 9))
            voice = _espeak(word, 20 + 7 * degree, Path(folder))
            voice = np.trim_zeros(voice) if np.any(voice) else voice
            target = int(beat * rng.choice([1.0, 1.5, 2.0]) * RATE)
            stretched = librosa.effects.time_stretch(voice, rate=max(len(voice) / target, 0.25))
            parts.append(stretched[:target])
    return np.concatenate(parts).astype(np.float32)


def song(level_db: float, seconds: float = 12.0, seed: int = 0, key: str = "C major") -> Audio:
    """Sung lines over `signals.tonal_piece`, the voice `level_db` above (or below) the music
    in RMS, from 1 s in; peak-normalised."""
    tempo = 90.0
    music = signals.tonal_piece(key, tempo, seconds=seconds, seed=seed).samples[0].astype(float)
    voice = np.zeros_like(music)
    start, line = RATE, 0
    while start < len(voice) - RATE:
        sung = sung_line(LYRIC_LINES[(seed + line) % len(LYRIC_LINES)], tempo, seed + line)
        end = min(len(voice), start + len(sung))
        voice[start:end] = sung[: end - start]
        start, line = end + RATE // 2, line + 1
    music_rms = float(np.sqrt(np.mean(music**2)))
    voice_rms = float(np.sqrt(np.mean(voice[voice != 0] ** 2)))
    mix = music + voice * (music_rms / max(voice_rms, 1e-9)) * 10 ** (level_db / 20)
    return Audio((0.9 * mix / np.max(np.abs(mix))).astype(np.float32), RATE)
