"""Pure validator rules: the weight rule, the EMA and the challenge generator."""

from __future__ import annotations

import math

import pytest

from tuneforge.core.protocol import CHALLENGE_ID_PATTERN, MusicGenerationSynapse
from tuneforge.validator.challenges import GENRES, make_challenge, miner_seed, round_seed
from tuneforge.validator.ema import update_ema
from tuneforge.validator.weight_rule import compute_weights

# -- weights ------------------------------------------------------------------------------


def test_weights_sum_to_one_and_follow_the_power_law() -> None:
    weights = compute_weights({3: 0.5, 1: 0.25, 7: 0.0}, exponent=2.0)
    assert math.isclose(sum(weights.values()), 1.0)
    assert set(weights) == {1, 3}  # a zero EMA earns nothing
    assert math.isclose(weights[3] / weights[1], 4.0)  # (0.5 / 0.25) ** 2


def test_weights_are_deterministic_whatever_the_input_order() -> None:
    emas = {uid: (uid * 37 % 11) / 10 for uid in range(40)}
    reversed_emas = dict(reversed(list(emas.items())))
    assert compute_weights(emas, 1.5, 10) == compute_weights(reversed_emas, 1.5, 10)


def test_weights_are_monotone_in_ema() -> None:
    emas = {0: 0.9, 1: 0.7, 2: 0.7, 3: 0.3, 4: 0.05}
    weights = compute_weights(emas, exponent=3.0)
    for a in emas:
        for b in emas:
            if emas[a] > emas[b]:
                assert weights[a] > weights[b]
            if emas[a] == emas[b]:
                assert weights[a] == weights[b]


def test_top_k_keeps_the_best_and_breaks_ties_by_lower_uid() -> None:
    weights = compute_weights({5: 0.6, 2: 0.6, 9: 0.8, 1: 0.1}, exponent=1.0, top_k=2)
    assert set(weights) == {9, 2}
    assert math.isclose(sum(weights.values()), 1.0)


@pytest.mark.parametrize("emas", [{}, {1: 0.0, 2: 0.0}, {1: float("nan"), 2: -0.3}])
def test_nothing_earned_means_no_weights(emas: dict[int, float]) -> None:
    assert compute_weights(emas) == {}


# -- EMA ----------------------------------------------------------------------------------


def test_ema_moves_only_queried_miners() -> None:
    previous = {(1, "a"): 0.5, (2, "b"): 0.8}
    updated = update_ema(previous, {(1, "a"): 1.0, (3, "c"): 0.5}, alpha=0.2)
    assert math.isclose(updated[(1, "a")], 0.6)
    assert updated[(2, "b")] == 0.8  # not queried: untouched
    assert math.isclose(updated[(3, "c")], 0.1)  # a newcomer starts from 0


def test_ema_treats_non_finite_scores_as_zero_and_rejects_bad_alpha() -> None:
    assert update_ema({(1, "a"): 0.5}, {(1, "a"): float("nan")}, 0.5)[(1, "a")] == 0.25
    with pytest.raises(ValueError):
        update_ema({}, {}, alpha=0.0)


# -- challenges ---------------------------------------------------------------------------


def test_challenge_is_reproducible_from_its_seed() -> None:
    seed = round_seed("5Hotkey", 7, b"secret")
    assert make_challenge(seed) == make_challenge(seed)
    assert (
        make_challenge(seed).challenge_id
        != make_challenge(round_seed("5Hotkey", 8, b"secret")).challenge_id
    )


def test_round_seed_depends_on_hotkey_round_attempt_and_secret() -> None:
    base = round_seed("5A", 1, b"s")
    assert len({base, round_seed("5B", 1, b"s"), round_seed("5A", 2, b"s"),
                round_seed("5A", 1, b"t"), round_seed("5A", 1, b"s", attempt=1)}) == 5  # fmt: skip


def test_challenges_are_varied_valid_and_look_like_customer_jobs() -> None:
    challenges = [make_challenge(round_seed("5Hotkey", n, b"k"), 5, 30) for n in range(300)]
    assert len({c.genre for c in challenges}) >= len(GENRES) - 2
    assert len({c.key for c in challenges}) >= 20
    assert len({c.tempo_bpm for c in challenges}) >= 60
    assert len({c.prompt for c in challenges}) == 300
    vocal_share = sum(c.vocals for c in challenges) / len(challenges)
    assert 0.1 < vocal_share < 0.3
    genres = {g.name: g for g in GENRES}
    for c in challenges:
        # Same model, same id format, seed always present: indistinguishable from a job.
        assert CHALLENGE_ID_PATTERN.match(c.challenge_id)
        assert MusicGenerationSynapse.model_validate_json(c.model_dump_json()) == c
        genre = genres[c.genre]
        assert genre.tempo[0] <= c.tempo_bpm <= genre.tempo[1]
        assert 2 <= len(c.instruments) <= 4 and set(c.instruments) <= set(genre.instruments)
        assert 5 <= c.duration_seconds <= 30
        assert (c.lyrics is not None) == c.vocals
        assert c.genre in c.prompt.lower() and str(c.tempo_bpm) in c.prompt


def test_miner_seeds_are_reproducible_and_differ_between_miners() -> None:
    seed = round_seed("5Hotkey", 3, b"k")
    seeds = [miner_seed(seed, f"5Miner{i}") for i in range(50)]
    assert len(set(seeds)) == 50 and all(0 <= s < 2**31 for s in seeds)
    assert miner_seed(seed, "5Miner0") == seeds[0]
    assert miner_seed(round_seed("5Hotkey", 4, b"k"), "5Miner0") != seeds[0]
