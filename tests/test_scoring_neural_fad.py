"""Fréchet distance math, reference statistics, the DSP embedding and the fad_penalty."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.helpers import signals
from tuneforge.core.audio import Audio, encode_wav
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring.base import RoundContext
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.fad import (
    CURVES,
    DSP_EMBEDDING,
    MERT_EMBEDDING,
    REFERENCE_FILES,
    FadCurve,
    FadError,
    FadPenalty,
    ReferenceStats,
    dsp_frame_embeddings,
    frechet_distance,
    load_reference,
    load_references,
    save_reference,
    statistics,
)
from tuneforge.scoring.history import InMemoryHistory
from tuneforge.tools.fad import app as fad_app

CHALLENGE = MusicGenerationSynapse(prompt="a song", seed=1)


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    # 1-D: (mu1 - mu2)^2 + (sigma1 - sigma2)^2.
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)
    # Commuting (diagonal) covariances: sum over dimensions of the 1-D formula.
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected)


def test_frechet_distance_is_zero_for_equal_statistics_symmetric_and_rotation_invariant():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((200, 6)) @ rng.standard_normal((6, 6))
    b = rng.standard_normal((150, 6)) * 2 + 1
    mu_a, cov_a = statistics(a)
    mu_b, cov_b = statistics(b)
    assert frechet_distance(mu_a, cov_a, mu_a, cov_a) == pytest.approx(0.0, abs=1e-8)
    d_ab = frechet_distance(mu_a, cov_a, mu_b, cov_b)
    assert d_ab == pytest.approx(frechet_distance(mu_b, cov_b, mu_a, cov_a), rel=1e-8)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    rotated = frechet_distance(q @ mu_a, q @ cov_a @ q.T, q @ mu_b, q @ cov_b @ q.T)
    assert rotated == pytest.approx(d_ab, rel=1e-6)


def test_frechet_distance_handles_singular_covariances_and_rejects_mismatches():
    rng = np.random.default_rng(1)
    few = rng.standard_normal((5, 20))  # 5 frames in 20 dimensions: rank-deficient covariance
    ref = rng.standard_normal((500, 20))
    value = frechet_distance(*statistics(few), *statistics(ref))
    assert np.isfinite(value) and value > 0
    with pytest.raises(FadError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_curve_is_one_below_ok_and_falls_to_the_floor_at_bad():
    curve = FadCurve(ok=10.0, bad=100.0, floor=0.2)
    assert curve(0.0) == 1.0 and curve(10.0) == 1.0
    assert curve(np.sqrt(10.0 * 100.0)) == pytest.approx(0.6)  # log-midpoint
    assert curve(100.0) == pytest.approx(0.2) and curve(1e6) == pytest.approx(0.2)
    assert curve(float("nan")) == pytest.approx(0.2)


def test_reference_round_trips_and_shipped_references_load(tmp_path: Path):
    stats = ReferenceStats("x", np.arange(3.0), np.eye(3) * 2, 10, "test")
    loaded = load_reference(save_reference(tmp_path / "r.npz", stats))
    assert loaded.embedding == "x" and loaded.num_frames == 10 and loaded.source == "test"
    np.testing.assert_allclose(loaded.cov, stats.cov)
    shipped = load_references()
    assert shipped[DSP_EMBEDDING].dim == dsp_frame_embeddings(np.zeros(22050), 22050).shape[1]
    assert shipped[MERT_EMBEDDING].dim == 768
    with pytest.raises(FadError):
        load_reference(tmp_path / "missing.npz")


def test_dsp_embedding_ignores_gain():
    piece = signals.tonal_piece(seconds=4)
    quiet = signals.scaled(piece, 0.1)
    a = dsp_frame_embeddings(Clip(piece).y, 22050)
    b = dsp_frame_embeddings(Clip(quiet).y, 22050)
    assert a.shape == (8, 21)
    np.testing.assert_allclose(a, b, atol=0.02)  # float32 rounding in spectral valleys


def _dsp_reference(pieces: list[Audio]) -> ReferenceStats:
    frames = np.concatenate([dsp_frame_embeddings(Clip(p).y, 22050) for p in pieces])
    mu, cov = statistics(frames)
    return ReferenceStats(DSP_EMBEDDING, mu, cov, len(frames), "test")


@pytest.fixture(scope="module")
def test_reference() -> ReferenceStats:
    keys = ["A minor", "C major", "E minor", "G major", "D minor", "F major"]
    return _dsp_reference(
        [
            signals.tonal_piece(key, tempo, seconds=8, seed=seed)
            for seed, (key, tempo) in enumerate(
                zip(keys, [80, 95, 110, 125, 140, 100], strict=True)
            )
        ]
    )


def _penalise(penalty: FadPenalty, audio: Audio, history: InMemoryHistory | None = None):
    clip = Clip(audio)
    context = RoundContext([clip], ["miner"], [None], history or InMemoryHistory(), None)
    return penalty.run(clip, CHALLENGE, context, 0)


def test_music_is_not_penalised_and_noise_is_against_test_built_statistics(test_reference):
    penalty = FadPenalty(references={DSP_EMBEDDING: test_reference})
    music = _penalise(penalty, signals.tonal_piece("B minor", 105, seconds=12, seed=42))
    noise = _penalise(penalty, signals.white_noise(12))
    assert music.value == pytest.approx(1.0)
    assert noise.value < 0.6
    assert noise.details["fad"] > 3 * music.details["fad"]
    assert "FAD" in noise.reason and noise.details["embedding"] == DSP_EMBEDDING


def test_shipped_dsp_reference_is_real_music_and_penalises_noise():
    penalty = FadPenalty()
    assert "real" in REFERENCE_FILES[DSP_EMBEDDING]
    music = _penalise(penalty, signals.in_room(signals.tonal_piece("D major", 120, seconds=12)))
    noise = _penalise(penalty, signals.white_noise(12, seed=3))
    assert music.value == 1.0
    assert noise.value < 1.0  # steady noise is zeroed by the artifact penalty, not by FAD


def test_the_window_includes_the_miners_recent_frames(test_reference):
    penalty = FadPenalty(references={DSP_EMBEDDING: test_reference})
    history = InMemoryHistory()
    for seed in range(3):
        noise = Clip(signals.white_noise(8, seed=seed))
        history.add_embedding("miner", dsp_frame_embeddings(noise.y, noise.sr))
    history.add_embedding("miner", np.ones(512))  # another embedding kind: ignored
    music = signals.tonal_piece("B minor", 105, seconds=8, seed=42)
    alone = _penalise(penalty, music)
    after_noise = _penalise(penalty, music, history)
    assert after_noise.details["window_clips"] == 4
    assert after_noise.value < alone.value


def test_too_few_embeddings_give_no_penalty_with_a_reason(test_reference):
    penalty = FadPenalty(references={DSP_EMBEDDING: test_reference})
    short = _penalise(penalty, signals.white_noise(3))
    assert short.value == 1.0 and "too few embeddings" in short.reason


def test_mert_frames_use_the_mert_reference_when_dimensions_match():
    rng = np.random.default_rng(0)
    ref = ReferenceStats(MERT_EMBEDDING, np.zeros(8), np.eye(8), 1000, "test")
    penalty = FadPenalty(references={MERT_EMBEDDING: ref})
    clip = Clip(signals.tonal_piece(seconds=2))
    clip.neural.mert_fad_frames = rng.standard_normal((40, 8)).astype(np.float32)
    context = RoundContext([clip], ["m"], [None], InMemoryHistory(), None)
    near = penalty.run(clip, CHALLENGE, context, 0)
    assert near.details["embedding"] == MERT_EMBEDDING and near.value == 1.0
    np.testing.assert_array_equal(clip.fad_frames_used, clip.neural.mert_fad_frames)
    far = Clip(signals.tonal_piece(seconds=2))
    far.neural.mert_fad_frames = (rng.standard_normal((40, 8)) * 30 + 50).astype(np.float32)
    context = RoundContext([far], ["m"], [None], InMemoryHistory(), None)
    assert penalty.run(far, CHALLENGE, context, 0).value == pytest.approx(
        CURVES[MERT_EMBEDDING].floor
    )


def test_cli_builds_a_reference_and_measures_distance(tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for seed in range(3):
        audio = signals.tonal_piece(seconds=5, seed=seed, sr=22050)
        (corpus / f"p{seed}.wav").write_bytes(encode_wav(audio))
    out = tmp_path / "ref.npz"
    runner = CliRunner()
    built = runner.invoke(
        fad_app, ["build-reference", str(corpus), "--embedding", "dsp", "--out", str(out)]
    )
    assert built.exit_code == 0, built.output
    stats = load_reference(out)
    assert stats.embedding == DSP_EMBEDDING and stats.num_frames == 3 * 10
    measured = runner.invoke(fad_app, ["distance", str(corpus), "--reference", str(out)])
    assert measured.exit_code == 0, measured.output
    assert measured.output.count('"fad"') == 3
    bad = runner.invoke(
        fad_app, ["build-reference", str(corpus), "--embedding", "x", "--out", str(out)]
    )
    assert bad.exit_code != 0
