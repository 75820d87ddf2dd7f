"""The bench's careful rule-based generator: a piece for the challenge (key, tempo, duration),
stereo, the same for the same seed, and its variant really makes other choices."""

from __future__ import annotations

import numpy as np

from tuneforge.calibration.procedural import VARIANT, procedural_piece, progression, voice_lead
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.features import tempo_bpm
from tuneforge.scoring.harmony_features import key_estimate


def challenge(**fields: object) -> MusicGenerationSynapse:
    base: dict[str, object] = {"prompt": "test", "key": "E minor", "tempo_bpm": 110,
                               "duration_seconds": 8.0, "seed": 11, "genre": "pop"}  # fmt: skip
    base.update(fields)
    return MusicGenerationSynapse(**base)  # type: ignore[arg-type]


def test_the_piece_answers_the_challenge() -> None:
    audio = procedural_piece(challenge())
    assert audio.channels == 2
    assert abs(audio.duration_seconds - 8.0) < 0.01
    assert np.all(np.isfinite(audio.samples))
    clip = Clip(audio)
    assert key_estimate(clip).key.name == "E minor"
    assert abs(tempo_bpm(clip) / 110.0 - 1.0) < 0.04


def test_same_seed_same_piece_and_the_variant_differs() -> None:
    first = procedural_piece(challenge())
    assert np.array_equal(first.samples, procedural_piece(challenge()).samples)
    other = procedural_piece(challenge(), VARIANT)
    assert not np.allclose(first.samples, other.samples)


def test_chords_are_voice_led_and_cadence_on_the_tonic() -> None:
    chords = progression(tonic=2, minor=False, bars=6, rng=np.random.default_rng(0))
    assert {n % 12 for n in chords[-1]} == {2, 6, 9}  # D major triad closes
    for before, after in zip(chords, chords[1:], strict=False):
        assert sum(abs(a - b) for a, b in zip(sorted(before), sorted(after), strict=True)) <= 7
    assert voice_lead([60, 64, 67], [5, 9, 0]) == [60, 65, 69]  # C -> F: 6/4 voicing, common C
