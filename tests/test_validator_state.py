"""The validator's SQLite state: one transaction per round, bounded history, outbox."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.state_tools import enqueue, fetch_one, peek
from tuneforge.scoring.memory import ClipMemory, RoundMemory, clip_memory
from tuneforge.validator.state import MinerRoundResult, StateError, ValidatorState
from tuneforge.validator.store.history import DIVERSITY_PER_MINER, FAD_PER_MINER


def _result(uid: int, hotkey: str, score: float) -> MinerRoundResult:
    return MinerRoundResult(uid, hotkey, score, {"final_score": score, "score_breakdown": {}})


def _memory(hotkey: str, value: float = 1.0, frames: np.ndarray | None = None) -> RoundMemory:
    clip = ClipMemory(
        hotkey, np.full(4, value, dtype=np.float32), frames, np.arange(8, dtype=np.uint32)
    )
    return RoundMemory([clip])


def test_a_round_commits_emas_results_history_and_outbox_together(tmp_path: Path) -> None:
    state = ValidatorState(tmp_path / "state.db")
    state.commit_round(
        1,
        {"prompt": "x"},
        block=10,
        started_at=0.0,
        results=[_result(0, "hk1", 0.5)],
        emas={(0, "hk1"): 0.1},
        outbox=[("round_result", {"round_id": "r1"}, None), ("track_audio", {"t": 1}, b"RIFF")],
        memory=_memory("hk1"),
    )
    state.close()
    # Durable after the commit, read by a fresh connection.
    reopened = ValidatorState(tmp_path / "state.db")
    assert reopened.rounds.completed() == 1
    assert reopened.miners.emas() == {(0, "hk1"): pytest.approx(0.1)}
    [miner] = reopened.miners.all()
    assert miner.last_result == {"final_score": 0.5, "score_breakdown": {}}
    assert miner.rounds_queried == 1 and miner.last_queried_round == 1
    assert np.array_equal(reopened.history.recent_embeddings("hk1", 5)[0], np.ones(4))
    [(hotkey, fingerprint)] = reopened.history.fingerprints(10)
    assert hotkey == "hk1" and fingerprint.dtype == np.uint32 and fingerprint[-1] == 7
    items = peek(reopened)
    assert [i.kind for i in items] == ["round_result", "track_audio"]
    assert items[1].blob == b"RIFF"


def test_a_failed_commit_leaves_nothing_behind(tmp_path: Path) -> None:
    state = ValidatorState(tmp_path / "state.db")
    with pytest.raises(StateError):
        # Round 2 cannot follow 0 completed rounds: the whole transaction rolls back.
        state.commit_round(
            2, {}, 1, 0.0, [_result(0, "hk1", 0.5)], {(0, "hk1"): 0.1}, memory=_memory("hk1")
        )
    assert state.rounds.completed() == 0
    assert state.miners.emas() == {}
    assert state.history.recent_embeddings("hk1", 5) == []
    assert state.history.fingerprints(5) == []


def test_a_new_hotkey_on_a_uid_starts_fresh_and_departed_history_is_dropped(
    tmp_path: Path,
) -> None:
    state = ValidatorState(tmp_path / "state.db")
    state.commit_round(
        1,
        {},
        1,
        0.0,
        [_result(0, "old", 0.9), _result(1, "stay", 0.4)],
        {(0, "old"): 0.9},
        memory=_memory("old"),
    )
    dropped = state.sync_registrations({(0, "new"), (1, "stay")})
    assert dropped == [(0, "old")]
    assert set(state.miners.emas()) == {(1, "stay")}
    assert state.history.recent_embeddings("old", 5) == []


def test_history_keeps_per_miner_only_the_rows_the_checks_read(tmp_path: Path) -> None:
    state = ValidatorState(tmp_path / "state.db")
    for round_number in range(1, 41):
        frames = np.full((3, 2), round_number, dtype=np.float16)
        state.commit_round(
            round_number, {}, round_number, 0.0, [], {}, memory=_memory("hk", round_number, frames)
        )
    stored = state.history.recent_embeddings("hk", 10_000)
    vectors = [e for e in stored if e.ndim == 1]
    windows = [e for e in stored if e.ndim == 2]
    assert len(vectors) == DIVERSITY_PER_MINER and len(windows) == FAD_PER_MINER
    assert vectors[0][0] == 40 and windows[0][0, 0] == 40  # newest first
    assert windows[0].dtype == np.float16  # stored at the precision of its channel


@pytest.mark.parametrize("total", [1_000_000, 100_000_000])
def test_history_bytes_stay_within_the_per_miner_and_total_budgets(
    tmp_path: Path, total: int
) -> None:
    rng = np.random.default_rng(0)
    per_miner = 400_000
    state = ValidatorState(tmp_path / "state.db", per_miner, total)
    for round_number in range(1, 11):
        memory = RoundMemory(
            [
                # MERT-sized FAD frames: 256 x 768 thinned to 128 in float16 = 196,608 bytes
                clip_memory(
                    f"hk{m}",
                    rng.standard_normal(512),
                    rng.standard_normal((256, 768)),
                    rng.integers(0, 64, (48, 160)).astype(np.uint8),
                )
                for m in range(4)
            ]
        )
        assert memory.clips[0].fad_frames is not None
        assert memory.clips[0].fad_frames.shape == (128, 768)
        state.commit_round(round_number, {}, round_number, 0.0, [], {}, memory=memory)
        used = state.history.stored_bytes()
        assert sum(used.values()) <= total
    for m in range(4):
        stored = state.history.recent_embeddings(f"hk{m}", 100)
        prints = [f for h, f in state.history.fingerprints(1000) if h == f"hk{m}"]
        size = sum(e.nbytes for e in stored) + sum(f.nbytes for f in prints)
        assert size <= per_miner
        if total > 4 * per_miner:
            # older FAD frames go first: the embeddings stay, and the newest window too
            assert sum(e.ndim == 1 for e in stored) == 10  # one per round
            assert stored[0].ndim == 2 and stored[1].ndim == 1  # the newest clip: frames, vector


def test_a_state_file_from_before_memory_channels_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    ValidatorState(path).close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE embeddings DROP COLUMN kind")
    db.execute(
        "INSERT INTO embeddings (hotkey, dtype, shape, data) VALUES ('hk', '<f4', '[2, 2]', ?)",
        (np.ones((2, 2), dtype=np.float32).tobytes(),),
    )
    db.commit()
    db.close()
    state = ValidatorState(path)
    [kind] = fetch_one(state, "SELECT kind FROM embeddings")
    assert kind == "fad"


def test_outbox_peek_ack_and_retry_later(tmp_path: Path) -> None:
    state = ValidatorState(tmp_path / "state.db")
    first = enqueue(state, "round_result", {"n": 1})
    second = enqueue(state, "round_result", {"n": 2})
    state.outbox.retry_later(first, delay_s=3600)
    [due] = peek(state)
    assert due.id == second and due.payload == {"n": 2}
    state.outbox.ack(second)
    assert peek(state) == []
    assert state.outbox.size() == 1
    [later] = peek(state, now=9e12)
    assert later.id == first and later.attempts == 1


def test_round_attempts_are_counted_per_round(tmp_path: Path) -> None:
    state = ValidatorState(tmp_path / "state.db")
    assert [
        state.rounds.begin_attempt(1),
        state.rounds.begin_attempt(1),
        state.rounds.begin_attempt(2),
    ] == [0, 1, 0]
    secret = state.meta.secret()
    assert len(secret) == 32 and ValidatorState(tmp_path / "state.db").meta.secret() == secret


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


def test_processes_opening_an_older_state_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    ValidatorState(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP INDEX outbox_grp")
    db.execute("ALTER TABLE outbox DROP COLUMN grp")
    db.commit()
    db.close()
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_state() -> None:
        start.wait()
        try:
            ValidatorState(path).close()
        except BaseException as exc:  # collected: the assertion below names them
            errors.append(exc)

    threads = [threading.Thread(target=open_state) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []  # e.g. not "duplicate column name: grp" from two concurrent migrations
    [[count]] = (
        sqlite3.connect(path)
        .execute("SELECT COUNT(*) FROM pragma_table_info('outbox') WHERE name = 'grp'")
        .fetchall()
    )
    assert count == 1
