"""The validator's SQLite state: one transaction per round, bounded history, outbox."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tuneforge.validator.state import (
    EMBEDDINGS_PER_MINER,
    MinerRoundResult,
    StateError,
    ValidatorState,
)


def _result(uid: int, hotkey: str, score: float) -> MinerRoundResult:
    return MinerRoundResult(uid, hotkey, score, {"final_score": score, "score_breakdown": {}})


def test_a_round_commits_emas_results_history_and_outbox_together(tmp_path: Path) -> None:
    state = ValidatorState(tmp_path / "state.db")
    history = state.history()
    history.add_embedding("hk1", np.ones(4, dtype=np.float32))
    history.add_fingerprint("hk1", np.arange(8, dtype=np.uint32))
    # Pending additions are visible to the round that made them...
    assert len(history.recent_embeddings("hk1", 5)) == 1
    state.commit_round(
        1,
        {"prompt": "x"},
        block=10,
        started_at=0.0,
        results=[_result(0, "hk1", 0.5)],
        emas={(0, "hk1"): 0.1},
        outbox=[("round_result", {"round_id": "r1"}, None), ("track_audio", {"t": 1}, b"RIFF")],
    )
    state.close()
    # ...and durable after the commit, read by a fresh connection.
    reopened = ValidatorState(tmp_path / "state.db")
    assert reopened.rounds_completed() == 1
    assert reopened.emas() == {(0, "hk1"): pytest.approx(0.1)}
    [miner] = reopened.miners()
    assert miner.last_result == {"final_score": 0.5, "score_breakdown": {}}
    assert miner.rounds_queried == 1 and miner.last_queried_round == 1
    assert np.array_equal(reopened.history().recent_embeddings("hk1", 5)[0], np.ones(4))
    [(hotkey, fingerprint)] = reopened.history().fingerprints(10)
    assert hotkey == "hk1" and fingerprint.dtype == np.uint32 and fingerprint[-1] == 7
    items = reopened.peek()
    assert [i.kind for i in items] == ["round_result", "track_audio"]
    assert items[1].blob == b"RIFF"


def test_a_failed_commit_leaves_nothing_behind(tmp_path: Path) -> None:
    state = ValidatorState(tmp_path / "state.db")
    state.history().add_embedding("hk1", np.ones(4))
    with pytest.raises(StateError):
        # Round 2 cannot follow 0 completed rounds: the whole transaction rolls back.
        state.commit_round(2, {}, 1, 0.0, [_result(0, "hk1", 0.5)], {(0, "hk1"): 0.1})
    assert state.rounds_completed() == 0
    assert state.emas() == {}
    state.discard_pending_history()
    assert state.history().recent_embeddings("hk1", 5) == []


def test_a_new_hotkey_on_a_uid_starts_fresh_and_departed_history_is_dropped(
    tmp_path: Path,
) -> None:
    state = ValidatorState(tmp_path / "state.db")
    state.history().add_embedding("old", np.ones(2))
    state.commit_round(
        1, {}, 1, 0.0, [_result(0, "old", 0.9), _result(1, "stay", 0.4)], {(0, "old"): 0.9}
    )
    dropped = state.sync_registrations({(0, "new"), (1, "stay")})
    assert dropped == [(0, "old")]
    assert set(state.emas()) == {(1, "stay")}
    assert state.history().recent_embeddings("old", 5) == []


def test_embedding_history_is_bounded_per_miner(tmp_path: Path) -> None:
    state = ValidatorState(tmp_path / "state.db")
    history = state.history()
    for round_number in range(1, 4):
        for i in range(EMBEDDINGS_PER_MINER):
            history.add_embedding("hk", np.full(2, round_number * 1000 + i, dtype=np.float32))
        state.commit_round(round_number, {}, round_number, 0.0, [], {})
    stored = history.recent_embeddings("hk", 10_000)
    assert len(stored) == EMBEDDINGS_PER_MINER
    assert stored[0][0] == 3000 + EMBEDDINGS_PER_MINER - 1  # newest first


def test_outbox_peek_ack_and_retry_later(tmp_path: Path) -> None:
    state = ValidatorState(tmp_path / "state.db")
    first = state.enqueue("round_result", {"n": 1})
    second = state.enqueue("round_result", {"n": 2})
    state.retry_later(first, delay_s=3600)
    [due] = state.peek()
    assert due.id == second and due.payload == {"n": 2}
    state.ack(second)
    assert state.peek() == []
    assert state.outbox_size() == 1
    [later] = state.peek(now=9e12)
    assert later.id == first and later.attempts == 1


def test_round_attempts_are_counted_per_round(tmp_path: Path) -> None:
    state = ValidatorState(tmp_path / "state.db")
    assert [state.begin_attempt(1), state.begin_attempt(1), state.begin_attempt(2)] == [0, 1, 0]
    secret = state.secret()
    assert len(secret) == 32 and ValidatorState(tmp_path / "state.db").secret() == secret


def test_state_uses_wal_and_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    ValidatorState(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (json.dumps(99),))
    db.commit()
    db.close()
    with pytest.raises(StateError, match="schema 99"):
        ValidatorState(path)
