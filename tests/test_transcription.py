"""The shipped note model (Basic Pitch, ONNX) names notes, not their overtones, and the key is read
from those notes (D69)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tests.helpers import signals
from tuneforge.core.audio import Audio
from tuneforge.scoring import features, transcription
from tuneforge.scoring.base import ScorerUnavailable
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.harmony_features import key_estimate
from tuneforge.scoring.onnx_model import OnnxModel
from tuneforge.scoring.registry import load
from tuneforge.scoring.weights import SCORERS

SR = 32_000
MODEL_SHA256 = "2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec"


def sawtooth(midi: float, seconds: float = 3.0) -> np.ndarray:
    """A bright tone: every harmonic at 1/k, so the 3rd (a fifth up) is strong."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
    return sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12)) * 0.2


def test_the_shipped_model_is_basic_pitch_as_published() -> None:
    digest = hashlib.sha256(transcription.MODEL_PATH.read_bytes()).hexdigest()
    assert digest == MODEL_SHA256
    assert (transcription.MODEL_PATH.parent / "LICENSE-basic-pitch.txt").is_file()


def test_a_bright_note_is_its_pitch_class_not_its_fifth_overtone() -> None:
    clip = Clip(Audio(sawtooth(48.0)[None, :], SR))  # C3
    shares = transcription.pitch_class_shares(clip)
    assert int(np.argmax(shares)) == 0 and shares[0] > 0.8
    assert shares[7] < 0.1
    # A spectrum hears the overtone: its chroma gives G a large share of C's.
    spectrum = features.chroma(clip).mean(axis=1)
    assert spectrum[7] / spectrum[0] > 2.0 * shares[7] / shares[0]


def test_posteriors_cover_the_clip_at_86_frames_a_second() -> None:
    clip = Clip(Audio(sawtooth(60.0, seconds=5.0)[None, :], SR))
    framed = transcription.note_posteriors(clip.y)
    assert framed.shape == (len(clip.y) // transcription.HOP, 88)
    middle_c = 60 - transcription.LOWEST_MIDI
    assert framed[20:-20, middle_c].mean() > 0.5  # the note sounds throughout, windows joined


def test_a_long_clip_is_read_at_evenly_spread_windows_in_time_order() -> None:
    y = np.concatenate([sawtooth(m, 2.0) for m in (48, 52, 55, 60, 64, 67)]).astype(np.float32)
    clip = Clip(Audio(y[None, :], SR))
    whole = transcription.note_posteriors(clip.y)
    inner = transcription.WINDOW_FRAMES - transcription.OVERLAP_FRAMES
    windows = -(-len(whole) // inner)
    read = transcription.note_posteriors(clip.y, max_windows=3)
    chosen = np.unique(np.round(np.linspace(0, windows - 1, 3)).astype(int))
    frames = np.concatenate(
        [np.arange(i * inner, min((i + 1) * inner, len(whole))) for i in chosen]
    )
    assert chosen[0] == 0 and chosen[-1] == windows - 1 and len(chosen) == 3
    np.testing.assert_array_equal(read, whole[frames])  # the same windows, read alone


def test_silence_and_scraps_have_no_notes() -> None:
    assert transcription.note_posteriors(np.zeros(100, dtype=np.float32)).shape == (0, 88)
    shares = transcription.pitch_class_shares(Clip(signals.silence(3.0)))
    assert shares.shape == (12,) and shares.sum() == 0.0


def test_key_of_a_bright_cadence_is_its_tonic_not_its_dominant() -> None:
    """I-IV-V-I in F major on sawtooth voices: overtones of F, A, C add C, E and G, the
    dominant's notes; the transcription keeps the key on F."""
    chords = [(53, 57, 60), (58, 62, 65), (60, 64, 67), (53, 57, 60)] * 2
    y = np.concatenate([sum(sawtooth(m, 1.0) for m in chord) / 3 for chord in chords])
    assert key_estimate(Clip(Audio(y[None, :], SR))).key.name == "F major"


def test_a_validator_without_the_note_model_excludes_its_scorers_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transcription, "MODEL_PATH", transcription.MODEL_PATH.with_name("gone"))
    fresh = OnnxModel(transcription._model_path, transcription.TranscriberUnavailable)
    monkeypatch.setattr(transcription, "_MODEL", fresh)
    with pytest.raises(ScorerUnavailable, match="note model"):
        transcription.ensure_available()
    rows = {spec.name: spec for spec in SCORERS}
    for name in ("musicality", "attribute"):
        loaded = load(rows[name])
        assert loaded.instance is None and "note model" in loaded.not_run_reason
