"""Preference training on validators: votes become pairs in a stable order, the head trains to
the same bytes from the same input, float noise barely moves its accuracy, and too few pairs
leave the scorer inactive with the count it has and needs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tuneforge.scoring import preference_model as pm
from tuneforge.scoring.weights import preference_weight
from tuneforge.validator.preference_training import (
    Pair,
    TrackRef,
    oriented,
    pairs_from_feed,
    train_from_pairs,
)

DIM = 16


def _ref(n: int) -> TrackRef:
    sha = hashlib.sha256(f"track {n}".encode()).hexdigest()
    return TrackRef(f"trk_{n}", f"/api/v1/music/audio/trk_{n}.wav", sha)


def _world(pairs: int, seed: int = 3) -> tuple[list[Pair], dict[str, np.ndarray]]:
    """Tracks with random embeddings; voters prefer the higher hidden utility 85% of the time."""
    rng = np.random.default_rng(seed)
    tracks = [_ref(n) for n in range(2 * pairs)]
    embeddings = {t.audio_sha256: rng.normal(size=DIM).astype(np.float32) for t in tracks}
    direction = rng.normal(size=DIM)
    result = []
    for i in range(pairs):
        a, b = tracks[2 * i], tracks[2 * i + 1]
        better = embeddings[a.audio_sha256] @ direction > embeddings[b.audio_sha256] @ direction
        if rng.random() > 0.85:
            better = not better
        winner, loser = (a, b) if better else (b, a)
        result.append(Pair((i + 1, i + 1), winner, loser))
    return result, embeddings


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_the_same_pairs_train_the_same_checkpoint_bytes(tmp_path: Path) -> None:
    pairs, embeddings = _world(200)
    first = train_from_pairs(pairs, embeddings, tmp_path / "one" / "preference")
    second = train_from_pairs(pairs, embeddings, tmp_path / "two" / "preference")
    assert first.active and first.pairs_used == 200
    assert _files(tmp_path / "one" / "preference") == _files(tmp_path / "two" / "preference")
    assert first.heldout_accuracy == second.heldout_accuracy
    assert first.heldout_accuracy is not None and first.heldout_accuracy > 0.7
    assert first.weight == preference_weight(first.heldout_accuracy) > 0
    loaded = pm.PreferenceModel.from_pretrained(tmp_path / "one" / "preference")
    assert loaded.heldout_accuracy == first.heldout_accuracy


def test_float_noise_moves_the_heldout_accuracy_by_less_than_one_point(tmp_path: Path) -> None:
    pairs, embeddings = _world(200)
    rng = np.random.default_rng(11)
    # Another machine's embeddings of the same audio: equal up to float32 rounding noise.
    noisy = {
        k: (v * (1 + 1e-6 * rng.standard_normal(v.shape))).astype(np.float32)
        for k, v in embeddings.items()
    }
    exact = train_from_pairs(pairs, embeddings, tmp_path / "exact")
    other = train_from_pairs(pairs, noisy, tmp_path / "noisy")
    assert exact.heldout_accuracy is not None and other.heldout_accuracy is not None
    assert abs(exact.heldout_accuracy - other.heldout_accuracy) < 0.01


def test_only_whole_blocks_of_pairs_are_used_so_late_readers_agree(tmp_path: Path) -> None:
    pairs, embeddings = _world(60)
    early = train_from_pairs(pairs[:57], embeddings, tmp_path / "early")
    late = train_from_pairs(pairs, embeddings, tmp_path / "late")
    assert early.pairs_used == late.pairs_used == 50
    assert _files(tmp_path / "early") == _files(tmp_path / "late")


def test_too_few_pairs_leave_the_scorer_inactive_and_say_how_many(tmp_path: Path) -> None:
    pairs, embeddings = _world(pm.MIN_PAIRS - 1)
    report = train_from_pairs(pairs, embeddings, tmp_path / "preference")
    assert not report.active and not (tmp_path / "preference").exists()
    assert report.describe() == (
        f"preference scorer inactive: {pm.MIN_PAIRS - 1} usable pairs, needs {pm.MIN_PAIRS}"
    )


def _item(n: int, kind: str, **fields: Any) -> dict[str, Any]:
    def ref(t: int) -> dict[str, Any]:
        r = _ref(t)
        return {"track_id": r.track_id, "audio_url": r.audio_url, "audio_sha256": r.audio_sha256}

    body: dict[str, Any] = {"vote_id": f"vote_{n}", "kind": kind, "voter": "voter_x"}
    body["request_id"] = fields.get("request", "req_1")
    if kind == "compare":
        body.update(winner=ref(fields["winner"]), loser=ref(fields["loser"]))
    else:
        body["track"] = ref(fields["track"])
    return body


def test_votes_become_pairs_that_only_append_as_the_feed_grows() -> None:
    feed = [
        _item(1, "up", track=1),
        _item(2, "compare", winner=3, loser=4, request="req_2"),
        _item(3, "down", track=2),
        _item(4, "down", track=9, request="req_other"),  # no up vote on that request
        {"vote_id": "vote_5", "kind": "compare", "winner": {"track_id": "x"}},  # malformed
    ]
    pairs = pairs_from_feed(feed)
    assert [(p.winner.track_id, p.loser.track_id) for p in pairs] == [
        ("trk_3", "trk_4"),
        ("trk_1", "trk_2"),
    ]
    grown = pairs_from_feed([*feed, _item(6, "compare", winner=7, loser=8, request="req_3")])
    assert grown[: len(pairs)] == pairs
    a, b, won = oriented(grown)
    for left, right, a_won, pair in zip(a, b, won, grown, strict=True):
        assert (left, right) == ((pair.winner, pair.loser) if a_won else (pair.loser, pair.winner))


def test_a_validator_trains_on_the_api_feed_with_its_own_embeddings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Votes through the real API -> the feed -> audio fetched and hash-checked -> embedded by
    the validator's own (tiny) CLAP -> the same checkpoint bytes when embedded and trained twice."""
    import asyncio

    import httpx

    from tests.helpers.api_server import (
        bearer,
        make_chain,
        make_settings,
        new_customer,
        running_api,
    )
    from tests.helpers.customer_jobs import complete
    from tests.helpers.tiny_models import tiny_model_dirs
    from tuneforge.scoring.neural import NeuralModels
    from tuneforge.validator.api_client import ApiClient
    from tuneforge.validator.preference_training import train_preference

    # The recipe's thresholds scaled down (embedding is the slow part): 10 pairs in blocks of 5.
    monkeypatch.setattr(pm, "MIN_PAIRS", 10)
    monkeypatch.setattr(pm, "PAIR_STEP", 5)
    chain_path, neurons = make_chain(tmp_path)
    # One validator plays every job here: lift its per-hotkey limit (the downloads wait it out).
    settings = make_settings(
        tmp_path, chain_path, votes_per_minute=1000, hotkey_rate_limit_per_minute=5000
    )
    models = NeuralModels.load(clap=str(tiny_model_dirs().clap), mert=None, whisper=None, mos=None)
    with running_api(settings) as server, httpx.Client(base_url=server.url, timeout=20) as client:
        _, key = new_customer(settings, credits=500)
        for i in range(pm.MIN_PAIRS + 1):
            request_id = client.post(
                "/api/v1/music/generate",
                json={"prompt": f"piece {i}", "duration_seconds": 1, "variants": 2},
                headers=bearer(key),
            ).json()["request_id"]
            dull, bright = complete(
                client, neurons.validator, request_id, [0.5, 0.5], 1.0, [200 + 7 * i, 2500 + 9 * i]
            )
            vote = client.post(
                "/api/v1/music/compare", json={"winner": bright, "loser": dull}, headers=bearer(key)
            )
            assert vote.status_code == 201

        async def run(out: Path) -> Any:
            api = ApiClient(server.url, neurons.validator)
            try:
                return await train_preference(api, models, out, tmp_path / "cache")
            finally:
                await api.aclose()

        first = asyncio.run(run(tmp_path / "a"))
        second = asyncio.run(run(tmp_path / "b"))
    assert first.pairs_available == pm.MIN_PAIRS + 1 and first.pairs_used == pm.MIN_PAIRS
    assert first.active and first.heldout_accuracy == second.heldout_accuracy
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert len(list((tmp_path / "cache").glob("*.wav"))) == 2 * (pm.MIN_PAIRS + 1)


def test_a_dsp_embedding_head_trains_and_scores_without_any_neural_model(tmp_path: Path) -> None:
    """Where no CLAP is loaded (localnet), the head reads the model-free DSP embedding: voters
    who prefer brighter tracks give a head that ranks a bright clip above a dull one."""
    from tuneforge.core.audio import Audio
    from tuneforge.core.protocol import MusicGenerationSynapse
    from tuneforge.scoring.base import RoundContext
    from tuneforge.scoring.clip import Clip
    from tuneforge.scoring.features import dsp_embedding
    from tuneforge.scoring.history import InMemoryHistory
    from tuneforge.scoring.neural import NeuralModels
    from tuneforge.scoring.scorers.preference import PreferenceScorer

    def clip(freq: float) -> Clip:
        t = np.arange(22050) / 22050
        tone = 0.3 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(2 * np.pi * 2 * freq * t)
        return Clip(Audio(tone.astype(np.float32), 22050))

    pairs, embeddings = [], {}
    for i in range(60):
        dull, bright = _ref(2 * i), _ref(2 * i + 1)
        embeddings[dull.audio_sha256] = dsp_embedding(clip(150 + 5 * i))
        embeddings[bright.audio_sha256] = dsp_embedding(clip(1500 + 40 * i))
        pairs.append(Pair((i + 1, i + 1), bright, dull))
    report = train_from_pairs(pairs, embeddings, tmp_path / "pref", name="dsp_embedding")
    assert report.active and report.heldout_accuracy is not None
    assert report.heldout_accuracy >= 0.8
    models = NeuralModels("cpu")
    models.preference = pm.PreferenceModel.from_pretrained(tmp_path / "pref")
    scorer = PreferenceScorer(models)
    challenge = MusicGenerationSynapse(prompt="anything", duration_seconds=1)
    clips = [clip(200.0), clip(2000.0)]
    context = RoundContext(clips, ["a", "b"], [None, None], InMemoryHistory(), models)
    dull_score = scorer.run(clips[0], challenge, context, 0).value
    bright_score = scorer.run(clips[1], challenge, context, 1).value
    assert dull_score is not None and bright_score is not None and bright_score > dull_score


def test_the_periodic_trainer_says_how_many_pairs_it_has_and_needs(tmp_path: Path) -> None:
    import asyncio

    from tests.helpers.api_server import make_chain, make_settings, running_api
    from tuneforge.validator.api_client import ApiClient
    from tuneforge.validator.preference_training import DSP_EMBEDDING, PreferenceTrainer

    chain_path, neurons = make_chain(tmp_path)
    settings = make_settings(tmp_path, chain_path)

    async def run(url: str) -> PreferenceTrainer:
        api = ApiClient(url, neurons.validator)
        trainer = PreferenceTrainer(api, None, tmp_path / "pref", tmp_path / "audio", 3600.0)
        stop = asyncio.Event()
        task = asyncio.ensure_future(trainer.run(stop))
        while trainer.last is None:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 5)  # the period's wait ends with the stop
        await api.aclose()
        return trainer

    with running_api(settings) as server:
        trainer = asyncio.run(run(server.url))
    assert trainer.embedding == DSP_EMBEDDING  # no CLAP loaded: the model-free embedding
    assert trainer.last is not None and not trainer.last.active
    assert trainer.last.describe() == (
        f"preference scorer inactive: 0 usable pairs, needs {pm.MIN_PAIRS}"
    )
