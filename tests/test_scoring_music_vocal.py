"""Vocal presence with silero-vad: pitched instruments are not vocals; synthesised speech is."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.helpers import signals
from tuneforge.core.audio import Audio, resample
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring.base import RoundContext, ScoreResult
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.history import InMemoryHistory
from tuneforge.scoring.scorers.attribute import AttributeScorer
from tuneforge.scoring.scorers.vocal import VocalScorer
from tuneforge.scoring.voice_activity import vocal_activity


def score(scorer: object, clip: Clip, vocals: bool) -> ScoreResult:
    context = RoundContext([clip], ["hotkey"], [None], InMemoryHistory())
    synapse = MusicGenerationSynapse(prompt="a test piece", vocals=vocals)
    return scorer.run(clip, synapse, context, 0)  # type: ignore[attr-defined]


def vibrato_lead(seconds: float = 12.0, sr: int = 32_000) -> Audio:
    """A bright synth lead with 5.5 Hz vibrato — the kind of pitched line a naive voice detector
    mistakes for singing."""
    t = np.arange(int(seconds * sr)) / sr
    notes = 220.0 * 2 ** (np.array([0, 2, 4, 5, 7, 5, 4, 2]) / 12)
    freq = notes[(t / 0.75).astype(int) % len(notes)] * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(freq) / sr
    wave = sum(np.sin(h * phase) / h for h in range(1, 9))
    return Audio((0.2 * wave).astype(np.float32), sr)


@pytest.mark.parametrize(
    "audio",
    [
        signals.tonal_piece("A minor", 100, seconds=15, seed=1),
        signals.chords("E major", 80, seconds=12),
        signals.melody("D minor", 120, seconds=12, seed=4),
        vibrato_lead(),
    ],
    ids=["piece", "chords", "melody", "vibrato_lead"],
)
def test_a_clean_pitched_instrument_piece_is_not_treated_as_vocals(audio: Audio) -> None:
    clip = Clip(audio)
    result = score(VocalScorer(), clip, vocals=False)
    assert result.details["vocals_detected"] is False
    assert result.details["vocal_fraction"] < 0.03
    assert result.value > 0.9
    assert score(VocalScorer(), clip, vocals=True).value < 0.1
    assert score(AttributeScorer(), clip, vocals=False).details["parts"]["vocals"] == 1.0


@pytest.fixture(scope="module")
def speech_over_music(tmp_path_factory: pytest.TempPathFactory) -> Audio:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed: no synthetic voice for the positive control")
    path = Path(tmp_path_factory.mktemp("voice")) / "speech.wav"
    text = "We sing about the river and the moon, and the night is long and slow. " * 2
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, timeout=60)
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    voice = resample(Audio(samples.T.copy(), rate), 32_000).samples[0]
    music = signals.tonal_piece("C major", 100, seconds=len(voice) / 32_000 + 1, seed=2)
    mix = music.samples[0].copy()
    mix[16_000 : 16_000 + len(voice)] += 0.8 * voice / max(float(np.abs(voice).max()), 1e-6)
    return Audio(np.clip(mix, -1, 1), 32_000)


def test_a_voice_over_music_is_detected_and_rewarded_only_when_requested(
    speech_over_music: Audio,
) -> None:
    clip = Clip(speech_over_music)
    activity = vocal_activity(clip)
    assert activity.present and activity.fraction > 0.3
    wanted = score(VocalScorer(), clip, vocals=True)
    unwanted = score(VocalScorer(), clip, vocals=False)
    assert wanted.details["vocals_detected"] is True
    assert wanted.value > 0.6 > 0.2 > unwanted.value
    assert score(AttributeScorer(), clip, vocals=True).details["parts"]["vocals"] == 1.0
