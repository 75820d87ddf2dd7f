"""Calibration set: fakes are made for the paired challenge, twins carry exactly their defect,
and on a few real renders the reward ranks real music first and each detector catches its twin.

The render tests need Debian's fluidsynth + fluid-soundfont-gm and music21; they skip with the
reason when those are missing. The full table is `tuneforge bench reward` (docs/scoring.md)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import signals
from tuneforge.calibration import fakes, twins
from tuneforge.calibration.midi import NoteEvent, write_smf
from tuneforge.calibration.real import (
    TARGET_LUFS,
    CalibrationUnavailable,
    RealPiece,
    _finish,
    split_of,
)
from tuneforge.core.audio import Audio, integrated_lufs
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.harmony_features import key_estimate
from tuneforge.tools.bench.reward import Tally, tempo_is_right


@pytest.fixture(scope="module")
def piece() -> RealPiece:
    """A stand-in real piece (no soundfont needed): chords, melody and drums in a room."""
    audio = signals.in_room(signals.tonal_piece("D minor", tempo_bpm=96, seconds=12))
    challenge = MusicGenerationSynapse(
        prompt="test", key="D minor", tempo_bpm=96, duration_seconds=12.0, seed=5
    )
    return RealPiece("test-piece", "test", _finish(audio.samples, audio.sample_rate), challenge,
                     "tune", true_key="D minor", key_certain=True, true_tempo_bpm=96.0,
                     bar_seconds=4 * 60 / 96)  # fmt: skip


@pytest.mark.parametrize("kind", list(fakes.FAKES))
def test_every_fake_answers_the_same_challenge_at_the_same_loudness(
    piece: RealPiece, kind: str
) -> None:
    audio = fakes.FAKES[kind](piece)
    assert abs(audio.duration_seconds - piece.challenge.duration_seconds) < 0.05
    assert np.all(np.isfinite(audio.samples))
    # normalised to the set's level, or quieter where the true-peak ceiling stops the gain
    assert integrated_lufs(audio) <= TARGET_LUFS + 0.5


def test_tonal_fakes_are_in_the_requested_key(piece: RealPiece) -> None:
    assert key_estimate(Clip(fakes.arpeggio(piece))).key.name == "D minor"


def test_loop_and_reversed_fakes_are_made_from_the_real_clip(piece: RealPiece) -> None:
    reversed_audio = fakes.reversed_clip(piece)
    assert np.allclose(
        reversed_audio.samples[:, ::-1] / np.abs(reversed_audio.samples).max(),
        piece.audio.samples / np.abs(piece.audio.samples).max(),
        atol=1e-4,
    )
    looped = fakes.loop(piece).samples[0]
    size = int(fakes.LOOP_SECONDS * piece.audio.sample_rate)
    assert np.allclose(looped[:size], looped[size : 2 * size])


def test_twins_carry_their_defect_and_nothing_else(piece: RealPiece) -> None:
    shuffled = twins.shuffled(piece)
    assert shuffled.num_samples == piece.audio.num_samples
    assert not np.allclose(shuffled.samples, piece.audio.samples)
    assert twins.short(piece).duration_seconds == pytest.approx(
        twins.SHORT_FRACTION * piece.audio.duration_seconds, abs=0.01
    )
    clipped = twins.clipped(piece).samples[0]
    assert np.mean(np.abs(clipped) >= 0.999 * np.abs(clipped).max()) > 0.01  # flat tops
    noisy = twins.noisy(piece)
    assert noisy.num_samples == piece.audio.num_samples
    assert not np.allclose(noisy.samples, piece.audio.samples)


def test_split_is_stable_and_by_piece() -> None:
    assert split_of("m21-bach-bwv1.6") == split_of("m21-bach-bwv1.6")
    assert {split_of(f"piece-{i}") for i in range(20)} == {"tune", "heldout"}


def test_tempo_accuracy_allows_octave_errors_only() -> None:
    assert tempo_is_right(100.0, 100.0) and tempo_is_right(201.0, 100.0)
    assert tempo_is_right(49.0, 100.0)
    assert not tempo_is_right(150.0, 100.0) and not tempo_is_right(110.0, 100.0)


def test_a_side_that_was_not_measured_never_wins() -> None:
    tally = Tally()
    tally.add(None, 0.2)
    tally.add(0.5, None)
    tally.add(0.4, 0.4)
    assert tally.summary() == {"win_rate": 0.333, "median_margin": 0.25, "pairs": 3}


def test_the_pairs_a_fake_won_are_listed_by_piece() -> None:
    tally = Tally()
    tally.add(0.9, 0.5, "bach-a")
    tally.add(0.4, 0.6, "bach-b")
    tally.add(None, 0.2, "fadtk-c")
    assert tally.summary(pairs=True)["lost"] == ["bach-b (-0.200)", "fadtk-c (not measured)"]
    assert "lost" not in tally.summary()


def test_midi_writer_emits_a_standard_file() -> None:
    data = write_smf([NoteEvent(0.0, 1.0, 60, 90, 0)], 120.0, {0: 0})
    assert data[:4] == b"MThd" and b"MTrk" in data
    assert b"\xff\x51\x03\x07\xa1\x20" in data  # 500000 us per beat = 120 BPM
    assert data.endswith(b"\x00\xff\x2f\x00")


# ---------------------------------------------------------------- a few real renders


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> list[RealPiece]:
    from tuneforge.calibration.real import corpus_scores, render_piece

    try:
        paths = corpus_scores()[:6]
        cache = tmp_path_factory.mktemp("calibration")
        return [render_piece(path, cache) for path in paths]
    except CalibrationUnavailable as error:
        pytest.skip(f"calibration renders unavailable: {error}")


@pytest.mark.slow
def test_on_real_renders_the_reward_ranks_real_music_first(renders: list[RealPiece]) -> None:
    from tuneforge.tools.bench.reward import _engine, score_one

    engine = _engine()
    beaten = {kind: 0 for kind in ("synth", "arpeggio", "beat_noise", "loop", "clicks")}
    for piece in renders:
        real = score_one(engine, piece.challenge, piece.audio)
        assert real.penalties["artifact_penalty"] == 1.0, piece.piece_id
        assert real.penalties["fad_penalty"] == 1.0, piece.piece_id
        clipped = score_one(engine, piece.challenge, twins.clipped(piece))
        assert clipped.penalties["artifact_penalty"] < 1.0, piece.piece_id
        noisy = score_one(engine, piece.challenge, twins.noisy(piece))
        assert real.breakdown["quality"] > noisy.breakdown["quality"], piece.piece_id
        for kind in beaten:
            fake = score_one(engine, piece.challenge, fakes.FAKES[kind](piece))
            beaten[kind] += int(real.final > fake.final)
    for kind, wins in beaten.items():
        assert wins >= len(renders) - 1, (kind, wins)


@pytest.mark.slow
def test_key_and_tempo_are_read_from_real_renders(renders: list[RealPiece]) -> None:
    from tuneforge.scoring.features import tempo_bpm

    certain = [p for p in renders if p.key_certain]
    keys = sum(key_estimate(Clip(p.audio)).key.name == p.true_key for p in certain)
    tempi = sum(tempo_is_right(tempo_bpm(Clip(p.audio)), p.true_tempo_bpm or 0) for p in renders)
    assert keys >= len(certain) - 1
    assert tempi >= len(renders) - 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    ["bach/bwv323.mxl", "bach/bwv259.mxl", "palestrina/Agnus_I.krn", "palestrina/Agnus_14.krn"],
)
def test_keys_a_spectrum_misreads_are_read_from_the_notes(
    path: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Scores outside the calibration set whose renders the chroma key finder read as the
    dominant (Agnus_I, Agnus_14) or the relative key (bwv323, bwv259); D69."""
    from tuneforge.calibration.real import render_piece

    try:
        piece = render_piece(path, tmp_path_factory.mktemp("keys"))
    except CalibrationUnavailable as error:
        pytest.skip(f"calibration renders unavailable: {error}")
    assert key_estimate(Clip(piece.audio)).key.name == piece.true_key


def test_real_set_loudness_helper_keeps_channels() -> None:
    stereo = _finish(np.stack([np.sin(np.arange(32_000) / 5.0)] * 2) * 0.1, 32_000)
    assert isinstance(stereo, Audio) and stereo.channels == 2


@pytest.mark.slow
def test_on_real_renders_reversal_and_shuffling_are_caught(renders: list[RealPiece]) -> None:
    """Played backwards, every render's envelopes skew the other way (and most cost the
    artifact penalty); cut at its bar lines and reordered, it loses structure (D28)."""
    from tuneforge.scoring.envelope_features import flux_shape
    from tuneforge.tools.bench.reward import _engine, score_one

    engine = _engine()
    structural_wins = 0
    for piece in renders:
        forward = flux_shape(Clip(piece.audio)).envelope_skewness
        backward = flux_shape(Clip(fakes.reversed_clip(piece))).envelope_skewness
        assert forward > max(backward, 0.0), piece.piece_id
        real = score_one(engine, piece.challenge, piece.audio)
        shuffled = score_one(engine, piece.challenge, twins.shuffled(piece))
        structural_wins += int(real.breakdown["structural"] > shuffled.breakdown["structural"])
    assert structural_wins >= len(renders) - 1
