"""The learned heads: the MOS regression head and the Bradley-Terry preference head — training,
held-out measurement, save/load round trips, and their scorers through NeuralModels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import signals
from tests.helpers.tiny_models import synthetic_ratings, tiny_model_dirs
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring import mos_model, preference_model
from tuneforge.scoring.base import RoundContext, ScorerUnavailable
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.history import InMemoryHistory
from tuneforge.scoring.mos_model import MosHead, MosModelError
from tuneforge.scoring.neural import ModelLoadError, NeuralModels
from tuneforge.scoring.preference_model import PreferenceModel, PreferenceModelError
from tuneforge.scoring.scorers.learned_mos import LearnedMosScorer
from tuneforge.scoring.scorers.preference import PreferenceScorer
from tuneforge.scoring.weights import preference_weight

CHALLENGE = MusicGenerationSynapse(prompt="a song", seed=1)


def _embeddings(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_mos_head_learns_ratings_and_round_trips(tmp_path: Path):
    x = _embeddings(300, 16, 0)
    ratings, _ = synthetic_ratings(x)
    head = mos_model.train(x, ratings, tmp_path / "mos", embedding="clap_embedding", epochs=300)
    assert head.config.heldout_pearson > 0.8
    assert head.config.heldout_mae < 0.5
    loaded = MosHead.from_pretrained(tmp_path / "mos")
    assert json.loads((tmp_path / "mos" / "config.json").read_text())["embedding"] == (
        "clap_embedding"
    )
    fresh = _embeddings(20, 16, 1)
    np.testing.assert_allclose(loaded.predict(fresh), head.predict(fresh), rtol=1e-6)
    assert np.all((loaded.predict(fresh) >= 1.0) & (loaded.predict(fresh) <= 5.0))
    with pytest.raises(MosModelError):
        loaded.predict(_embeddings(3, 8, 2))


def test_mos_training_rejects_out_of_scale_ratings(tmp_path: Path):
    with pytest.raises(MosModelError, match="ratings"):
        mos_model.train(_embeddings(20, 4, 0), np.full(20, 7.0), tmp_path / "m")
    with pytest.raises(MosModelError, match="not a MOS checkpoint"):
        MosHead.from_pretrained(tmp_path)


def _pairs(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs judged by a hidden utility (a direction) with Bradley-Terry noise."""
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal(dim)
    a, b = _embeddings(n, dim, seed + 1), _embeddings(n, dim, seed + 2)
    margin = 12.0 * (a - b) @ direction / np.linalg.norm(direction)
    a_won = rng.random(n) < 1.0 / (1.0 + np.exp(-margin))
    return a, b, a_won, direction


def test_bradley_terry_head_learns_a_preference_and_reports_heldout_accuracy(tmp_path: Path):
    a, b, a_won, direction = _pairs(600, 16, 0)
    model = preference_model.train(a, b, a_won, tmp_path / "pref", embedding="clap_embedding")
    assert model.config.num_heldout_pairs == 120 and model.config.num_train_pairs == 480
    assert 0.78 < model.heldout_accuracy <= 1.0  # Bayes-optimal on this data: ~0.89
    loaded = PreferenceModel.from_pretrained(tmp_path / "pref")
    assert loaded.heldout_accuracy == model.heldout_accuracy
    good = (direction / np.linalg.norm(direction))[None, :].astype(np.float32)
    assert loaded.score(good)[0] > 0.5 > loaded.score(-good)[0]
    assert loaded.prob_preferred(good, -good)[0] > 0.9
    # Random labels: nothing to learn, and held-out accuracy says so.
    noise = preference_model.train(a, b, ~a_won ^ (np.arange(600) % 2 == 0), tmp_path / "noise")
    assert noise.heldout_accuracy < model.heldout_accuracy - 0.15


def test_preference_checkpoint_without_heldout_accuracy_is_refused(tmp_path: Path):
    a, b, a_won, _ = _pairs(50, 4, 3)
    preference_model.train(a, b, a_won, tmp_path / "p")
    config = json.loads((tmp_path / "p" / "config.json").read_text())
    config["heldout_accuracy"] = None
    (tmp_path / "p" / "config.json").write_text(json.dumps(config))
    with pytest.raises(PreferenceModelError, match="not trained"):
        PreferenceModel.from_pretrained(tmp_path / "p")


@pytest.fixture(scope="module")
def clap_dir() -> Path:
    return tiny_model_dirs().clap


def _round(models: NeuralModels) -> tuple[list[Clip], RoundContext]:
    clips = [Clip(signals.tonal_piece(seconds=3, seed=s)) for s in range(2)]
    clips.append(Clip(signals.white_noise(3)))
    context = RoundContext(clips, ["a", "b", "c"], [None] * 3, InMemoryHistory(), models)
    return clips, context


def test_learned_mos_scorer_loads_a_trained_head_by_directory(tmp_path: Path, clap_dir: Path):
    x = _embeddings(60, 16, 5)
    ratings, _ = synthetic_ratings(x, seed=5)
    mos_model.train(x, ratings, tmp_path / "mos", embedding="clap_embedding", epochs=50)
    models = NeuralModels.load(str(clap_dir), None, None, str(tmp_path / "mos"), "cpu")
    assert models.has("mos")
    clips, context = _round(models)
    models.prepare_round(clips)
    scorer = LearnedMosScorer(models=models)
    results = [scorer.run(c, CHALLENGE, context, i) for i, c in enumerate(clips)]
    for clip, result in zip(clips, results, strict=True):
        assert 1.0 <= clip.neural.mos <= 5.0
        assert result.value == pytest.approx((clip.neural.mos - 1.0) / 4.0)
    assert len({r.value for r in results}) == 3


def test_learned_mos_is_excluded_without_a_head_or_its_embedding(tmp_path: Path, clap_dir: Path):
    with pytest.raises(ScorerUnavailable):
        LearnedMosScorer(models=NeuralModels.load(str(clap_dir), None, None, None, "cpu"))
    x = _embeddings(30, 32, 0)
    mos_model.train(
        x, synthetic_ratings(x)[0], tmp_path / "m", embedding="mert_embedding", epochs=5
    )
    only_mos = NeuralModels.load(None, None, None, str(tmp_path / "m"), "cpu")
    with pytest.raises(ScorerUnavailable, match="mert"):
        LearnedMosScorer(models=only_mos)
    with pytest.raises(ModelLoadError, match="mos"):
        NeuralModels.load(None, None, None, str(tmp_path / "absent"), "cpu")


def test_preference_scorer_is_excluded_until_trained_then_scores(tmp_path: Path, clap_dir: Path):
    untrained = NeuralModels.load(str(clap_dir), None, None, None, "cpu")
    with pytest.raises(ScorerUnavailable, match="not trained"):
        PreferenceScorer(models=untrained)
    assert untrained.preference_heldout_accuracy is None
    assert preference_weight(untrained.preference_heldout_accuracy) == 0.0

    a, b, a_won, _ = _pairs(200, 16, 7)
    preference_model.train(a, b, a_won, tmp_path / "pref", embedding="clap_embedding")
    models = NeuralModels.load(
        str(clap_dir), None, None, None, "cpu", preference=str(tmp_path / "pref")
    )
    accuracy = models.preference_heldout_accuracy
    assert accuracy is not None and accuracy > 0.6
    assert models.describe()["preference"].startswith("loaded")
    clips, context = _round(models)
    scorer = PreferenceScorer(models=models)
    results = [scorer.run(c, CHALLENGE, context, i) for i, c in enumerate(clips)]
    assert all(0.0 <= r.value <= 1.0 for r in results)
    assert results[0].details["heldout_accuracy"] == accuracy
    assert [r.value for r in results] == [
        scorer.run(c, CHALLENGE, context, i).value for i, c in enumerate(clips)
    ]
