"""Consensus constants and pure scoring arithmetic."""

from __future__ import annotations

import pytest

from tuneforge.scoring.base import Penalty, Scorer
from tuneforge.scoring.engine import composite_score
from tuneforge.scoring.registry import load_scorer_set
from tuneforge.scoring.weights import (
    ACTIVE_SCORERS,
    PENALTIES,
    PENALTY_NAMES,
    REQUIRED_MODELS,
    SCORER_NAMES,
    SCORER_WEIGHTS,
    SCORERS,
    duration_multiplier,
    preference_share,
    preference_weight,
    speed_multiplier,
)


def test_weight_table_matches_design_categories() -> None:
    w = SCORER_WEIGHTS
    assert w["clap"] + w["attribute"] == 30
    assert w["musicality"] + w["melody"] + w["structural"] == 21
    assert w["production"] + w["neural_quality"] + w["vocal"] + w["quality"] == 16
    assert w["vocal_lyrics"] + w["mix_separation"] + w["timbral"] + w["learned_mos"] == 18
    assert w["diversity"] + w["speed"] == 8
    assert len(SCORER_NAMES) == 16 and SCORER_NAMES[-1] == "preference"
    assert PENALTY_NAMES == (
        "duration_penalty",
        "artifact_penalty",
        "fad_penalty",
        "fingerprint_penalty",
        "catalogue_penalty",
    )


def test_one_table_names_every_scorer_with_its_module_and_class() -> None:
    assert tuple(s.name for s in SCORERS) == SCORER_NAMES
    assert tuple(s.name for s in PENALTIES) == PENALTY_NAMES
    for spec in SCORERS:
        assert spec.implementation.startswith(f"tuneforge.scoring.scorers.{spec.name}:")


def test_active_set_is_a_constant_with_untrained_heads_inactive_everywhere() -> None:
    assert "learned_mos" not in ACTIVE_SCORERS and "preference" not in ACTIVE_SCORERS
    assert len(ACTIVE_SCORERS) == 14
    assert REQUIRED_MODELS == ("clap", "mert", "whisper")
    inactive = {s.name: s.inactive for s in SCORERS if not s.active}
    assert all("checkpoint" in why for why in inactive.values())


def test_every_row_loads_a_typed_scorer_or_penalty() -> None:
    loaded = load_scorer_set(models=None)
    for name, entry in loaded.scorers.items():
        if entry.instance is not None:
            assert isinstance(entry.instance, Scorer) and not isinstance(entry.instance, Penalty)
            assert entry.instance.name == name
    for name, entry in loaded.penalties.items():
        if name == "catalogue_penalty":  # inactive network-wide until a network turns it on
            assert entry.instance is None and entry.inactive
            continue
        assert isinstance(entry.instance, Penalty) and entry.instance.name == name
    # Without neural models the set is incomplete, and says exactly what is missing.
    assert loaded.degraded
    assert set(loaded.missing_models) == {"clap", "mert", "whisper"}
    assert {"clap", "neural_quality", "vocal_lyrics"} <= set(loaded.excluded)
    assert set(loaded.inactive) == {"learned_mos", "preference", "catalogue_penalty"}


@pytest.mark.parametrize(
    ("accuracy", "share"),
    [
        (None, 0.0),
        (0.5, 0.0),
        (0.5499, 0.0),
        (0.55, 0.02),
        (0.675, 0.11),
        (0.80, 0.20),
        (0.95, 0.20),
    ],
)
def test_preference_share_rises_linearly_from_2_to_20_percent(
    accuracy: float | None, share: float
) -> None:
    assert preference_share(accuracy) == pytest.approx(share)


def test_preference_weight_is_that_share_of_the_new_total() -> None:
    weight = preference_weight(0.80)
    assert weight / (sum(SCORER_WEIGHTS.values()) + weight) == pytest.approx(0.20)
    assert preference_weight(0.3) == 0.0


@pytest.mark.parametrize(
    ("actual", "expected"),
    [(10.0, 1.0), (10.5, 1.0), (9.5, 1.0), (12.75, 0.5), (7.25, 0.5), (15.0, 0.0), (4.0, 0.0)],
)
def test_duration_curve_forgives_5_percent_and_zeroes_at_50(actual: float, expected: float) -> None:
    assert duration_multiplier(actual, 10.0) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("factor", "expected"),
    [(0.2, 1.0), (1.0, 1.0), (2.0, 0.65), (3.0, 0.3), (4.5, 0.15), (6.0, 0.0), (60.0, 0.0)],
)
def test_speed_curve_is_piecewise_linear(factor: float, expected: float) -> None:
    assert speed_multiplier(factor) == pytest.approx(expected)


def test_composite_is_the_weighted_mean_over_available_scorers() -> None:
    values = {"a": 1.0, "b": 0.5, "c": 0.9}
    composite, shares = composite_score(values, {"a": 3.0, "b": 1.0, "c": 0.0})
    assert composite == pytest.approx((3 * 1.0 + 1 * 0.5) / 4)
    assert shares == {"a": 0.75, "b": 0.25, "c": 0.0}


def test_composite_without_any_weight_is_zero() -> None:
    assert composite_score({"a": 1.0}, {"a": 0.0}) == (0.0, {"a": 0.0})
