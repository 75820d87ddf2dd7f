"""The preference row's consensus rule (D42): a head trained by the network recipe activates the
scorer on an activated network (localnet) with the rule's weight and a composite renormalised
over it; the same head on `test`/`finney` leaves the row inactive, with the reason."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from tuneforge.core.audio import Audio
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring import preference_model as pm
from tuneforge.scoring.base import Submission
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.engine import ScoringEngine
from tuneforge.scoring.features import dsp_embedding
from tuneforge.scoring.history import InMemoryHistory
from tuneforge.scoring.neural import NeuralModels
from tuneforge.scoring.registry import load_scorer_set
from tuneforge.scoring.weights import (
    PREFERENCE,
    PREFERENCE_GATED,
    PREFERENCE_NETWORKS,
    preference_inactive_reason,
    preference_weight,
)
from tuneforge.validator.preference_training import Pair, TrackRef, train_from_pairs

RATE = 22050


def _tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(4 * np.pi * freq * t)).astype(
        np.float32
    )


def _ref(n: int) -> TrackRef:
    sha = hashlib.sha256(f"track {n}".encode()).hexdigest()
    return TrackRef(f"trk_{n}", f"/api/v1/music/audio/trk_{n}.wav", sha)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> NeuralModels:
    """A DSP-embedding head fitted by the recipe on 60 votes (50 used): voters like bright."""
    pairs, embeddings = [], {}
    for i in range(60):
        dull, bright = _ref(2 * i), _ref(2 * i + 1)
        embeddings[dull.audio_sha256] = dsp_embedding(Clip(Audio(_tone(150 + 5 * i), RATE)))
        embeddings[bright.audio_sha256] = dsp_embedding(Clip(Audio(_tone(1500 + 40 * i), RATE)))
        pairs.append(Pair((i + 1, i + 1), bright, dull))
    out = tmp_path_factory.mktemp("pref") / "head"
    report = train_from_pairs(pairs, embeddings, out, name="dsp_embedding")
    assert report.heldout_accuracy is not None and report.heldout_accuracy >= 0.55
    loaded = NeuralModels("cpu")
    loaded.preference = pm.PreferenceModel.from_pretrained(out)
    return loaded


def _score(engine: ScoringEngine) -> list:
    challenge = MusicGenerationSynapse(prompt="a bright tune", duration_seconds=2)
    submissions = [
        Submission(f"miner{i}", Audio(_tone(f, 2.0), RATE), generation_ms=500.0)
        for i, f in enumerate((220.0, 1800.0))
    ]
    return engine.score_round(challenge, submissions)


def test_a_recipe_head_on_localnet_makes_preference_active_with_the_rules_weight(
    models: NeuralModels,
) -> None:
    assert "localnet" in PREFERENCE_NETWORKS
    engine = ScoringEngine.create(InMemoryHistory(), models, network="localnet")
    entry = engine.scorer_set.scorers[PREFERENCE]
    assert entry.instance is not None and not entry.inactive
    assert PREFERENCE not in engine.scorer_set.inactive
    accuracy = models.preference_heldout_accuracy
    expected = preference_weight(accuracy)
    assert expected > 0 and engine.weight_of(PREFERENCE) == pytest.approx(expected)
    for score in _score(engine):
        assert score.score_breakdown[PREFERENCE] is not None
        ran = {n: v for n, v in score.score_breakdown.items() if v is not None}
        weights = {n: engine.weight_of(n) for n in ran}
        total = sum(weights.values())
        # The composite is renormalised over every scorer that ran, preference included.
        assert score.effective_weights[PREFERENCE] == pytest.approx(expected / total, abs=1e-6)
        assert sum(score.effective_weights.values()) == pytest.approx(1.0, abs=1e-5)
        composite = sum(weights[n] * ran[n] for n in ran) / total
        assert score.composite == pytest.approx(composite, abs=1e-5)


@pytest.mark.parametrize("network", ["test", "finney"])
def test_the_same_head_on_a_real_network_leaves_preference_inactive_with_the_reason(
    models: NeuralModels, network: str
) -> None:
    engine = ScoringEngine.create(InMemoryHistory(), models, network=network)
    entry = engine.scorer_set.scorers[PREFERENCE]
    assert entry.instance is None and entry.inactive
    assert engine.scorer_set.inactive[PREFERENCE] == PREFERENCE_GATED
    assert not engine.degraded or PREFERENCE not in engine.scorer_set.excluded
    for score in _score(engine):
        assert score.score_breakdown[PREFERENCE] is None
        assert score.effective_weights[PREFERENCE] == 0.0
        assert "no release has activated" in score.reasons[PREFERENCE]


def test_localnet_without_a_head_says_so_and_is_not_degraded_by_it() -> None:
    loaded = load_scorer_set(None, "localnet")
    assert "no preference head" in loaded.inactive[PREFERENCE]
    assert PREFERENCE not in loaded.excluded


@pytest.mark.parametrize(
    ("embedding", "accuracy", "train", "heldout", "why"),
    [
        ("dsp_embedding", 0.54, 40, 10, "below 0.55"),
        ("dsp_embedding", 0.9, 32, 8, "whole blocks"),  # 40 pairs: under the minimum
        ("dsp_embedding", 0.9, 48, 12, "whole blocks"),  # 60: not a whole block of 25
        ("dsp_embedding", 0.9, 45, 5, "held-out split"),
        ("mert_embedding", 0.9, 40, 10, "recipe does not"),
        ("dsp_embedding", None, 40, 10, "no held-out accuracy"),
    ],
)
def test_a_head_off_the_recipe_stays_inactive_on_localnet(
    embedding: str, accuracy: float | None, train: int, heldout: int, why: str
) -> None:
    reason = preference_inactive_reason("localnet", embedding, accuracy, train, heldout)
    assert why in reason
    assert preference_inactive_reason("localnet", embedding, 0.9, 40, 10) == "" or (
        embedding == "mert_embedding"
    )


def test_the_head_directory_alone_decides_nothing_on_a_network_that_is_not_activated(
    tmp_path: Path,
) -> None:
    assert preference_inactive_reason("finney", "clap_embedding", 0.9, 40, 10) == PREFERENCE_GATED
    assert preference_inactive_reason("", "clap_embedding", 0.9, 40, 10) == PREFERENCE_GATED
