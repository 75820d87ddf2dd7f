"""The validator's crash-safe state: ONE SQLite file (WAL), one transaction per round.

Holds per-miner EMAs keyed by (uid, hotkey), the round counter, each miner's last result, the
scoring history (embeddings + fingerprints, bounded in rows and bytes per miner and in total),
the last weight-setting outcome and the publication outbox. `kill -9` at any point leaves either
the whole round or none of it.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tuneforge.scoring.memory import RoundMemory

SCHEMA_VERSION = 1
# Rows per miner that a check ever reads (more would only cost bytes): the diversity scorer
# reads its 16 newest embeddings, the FAD window the 7 previous clips' frames. The copy index
# reads the 500 newest fingerprints of all miners (penalties.FINGERPRINT_HISTORY_LIMIT); twice
# that are kept so miners that leave (their rows go with them) do not shrink it.
DIVERSITY_PER_MINER = 16
FAD_PER_MINER = 8
FINGERPRINTS_PER_MINER = 16
FINGERPRINTS_KEPT = 1_000
# Byte budgets (history rows only). A miner's MERT window (8 x 128 frames x 768 x float16 =
# 1.5 MB) plus its embeddings and fingerprints fit in 1.75 MB; 256 miners in 448 MB.
HISTORY_BYTES_PER_MINER = 1_750_000
HISTORY_BYTES_TOTAL = 448_000_000
DIVERSITY, FAD = "diversity", "fad"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS miners (
    uid INTEGER NOT NULL,
    hotkey TEXT NOT NULL,
    ema REAL NOT NULL DEFAULT 0,
    rounds_queried INTEGER NOT NULL DEFAULT 0,
    last_queried_round INTEGER NOT NULL DEFAULT 0,
    last_queried_at REAL,
    last_result TEXT,
    PRIMARY KEY (uid, hotkey)
);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY,
    challenge TEXT NOT NULL,
    block INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    miners INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hotkey TEXT NOT NULL,
    kind TEXT,
    dtype TEXT NOT NULL,
    shape TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS embeddings_hotkey ON embeddings (hotkey, id);
CREATE TABLE IF NOT EXISTS fingerprints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hotkey TEXT NOT NULL,
    dtype TEXT NOT NULL,
    shape TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS fingerprints_hotkey ON fingerprints (hotkey, id);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    blob BLOB,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL
);
"""


class StateError(RuntimeError):
    """The state file is unusable (newer schema, corrupt, not a TuneForge validator state)."""


@dataclass(frozen=True)
class MinerRecord:
    uid: int
    hotkey: str
    ema: float
    rounds_queried: int
    last_queried_round: int
    last_queried_at: float | None
    last_result: dict[str, Any] | None


@dataclass(frozen=True)
class MinerRoundResult:
    """What a round stores for one queried miner."""

    uid: int
    hotkey: str
    final_score: float
    result: dict[str, Any]  # ClipScore.to_dict() plus query facts (error code, bytes, timing)


@dataclass(frozen=True)
class OutboxItem:
    id: int
    kind: str
    payload: dict[str, Any]
    blob: bytes | None
    created_at: float
    attempts: int
    next_attempt_at: float
    group: str | None = None


# (kind, payload, blob, group) as written to the outbox
OutboxEntry = tuple[str, dict[str, Any], bytes | None, str | None]


def _encode_array(array: np.ndarray) -> tuple[str, str, bytes]:
    array = np.ascontiguousarray(array)
    return array.dtype.str, json.dumps(list(array.shape)), array.tobytes()


def _decode_array(dtype: str, shape: str, data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(json.loads(shape)).copy()


class ValidatorState:
    """Thread-safe (one lock) access to the state file; scoring reads history from a worker."""

    def __init__(
        self,
        path: str | Path,
        history_bytes_per_miner: int = HISTORY_BYTES_PER_MINER,
        history_bytes_total: int = HISTORY_BYTES_TOTAL,
    ) -> None:
        self.path = Path(path)
        self.history_bytes_per_miner = history_bytes_per_miner
        self.history_bytes_total = history_bytes_total
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed round survives power loss too, at a few ms per round.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot open validator state {self.path}: {exc}") from exc
        version = self._meta("schema_version")
        if version is None:
            self._set_meta_now("schema_version", str(SCHEMA_VERSION))
        elif int(version) > SCHEMA_VERSION:
            raise StateError(
                f"{self.path} has schema {version}, this validator knows {SCHEMA_VERSION}: upgrade"
            )

    # -- plumbing ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        """Additive columns for state files written by an earlier validator (same schema 1)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)").fetchall()}
        if "grp" not in columns:
            # The publication group: items of one group are sent strictly in id order.
            self._db.execute("ALTER TABLE outbox ADD COLUMN grp TEXT")
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_grp ON outbox (grp, id)")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(embeddings)").fetchall()}
        if "kind" not in columns:
            # The memory channel a row came from; earlier rows are told apart by their shape.
            self._db.execute("ALTER TABLE embeddings ADD COLUMN kind TEXT")
        self._db.execute(
            "UPDATE embeddings SET kind = CASE WHEN shape LIKE '%,%' THEN ? ELSE ? END "
            "WHERE kind IS NULL",
            (FAD, DIVERSITY),
        )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _put_meta(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _set_meta_now(self, key: str, value: str) -> None:
        with self._transaction() as db:
            self._put_meta(db, key, value)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- identity and counters --------------------------------------------------------------

    def secret(self) -> bytes:
        """This validator's private challenge secret, created once and kept in the state."""
        with self._transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'challenge_secret'").fetchone()
            if row is not None:
                return bytes.fromhex(row[0])
            value = secrets.token_bytes(32)
            self._put_meta(db, "challenge_secret", value.hex())
            return value

    def set_secret(self, secret: bytes) -> None:
        """Replace the challenge secret (tests that need reproducible rounds; a validator that
        moves to a new state file and wants its challenges to stay unpredictable)."""
        if len(secret) < 16:
            raise ValueError("the challenge secret needs at least 128 bits")
        self._set_meta_now("challenge_secret", secret.hex())

    def rounds_completed(self) -> int:
        value = self._meta("rounds_completed")
        return int(value) if value is not None else 0

    def begin_attempt(self, round_number: int) -> int:
        """Count a start of `round_number` (its own transaction) and return the attempt number.

        A round interrupted by a crash is retried with a fresh challenge: miners who saw the
        first one cannot have prepared an answer for the second.
        """
        with self._transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'attempt'").fetchone()
            previous = json.loads(row[0]) if row else {"round": -1, "attempt": -1}
            attempt = previous["attempt"] + 1 if previous["round"] == round_number else 0
            self._put_meta(db, "attempt", json.dumps({"round": round_number, "attempt": attempt}))
        return attempt

    # -- miners -----------------------------------------------------------------------------

    def miners(self) -> list[MinerRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT uid, hotkey, ema, rounds_queried, last_queried_round, last_queried_at, "
                "last_result FROM miners ORDER BY uid"
            ).fetchall()
        return [
            MinerRecord(
                uid=int(r[0]),
                hotkey=str(r[1]),
                ema=float(r[2]),
                rounds_queried=int(r[3]),
                last_queried_round=int(r[4]),
                last_queried_at=r[5],
                last_result=json.loads(r[6]) if r[6] else None,
            )
            for r in rows
        ]

    def emas(self) -> dict[tuple[int, str], float]:
        with self._lock:
            rows = self._db.execute("SELECT uid, hotkey, ema FROM miners").fetchall()
        return {(int(uid), str(hotkey)): float(ema) for uid, hotkey, ema in rows}

    def last_queried(self) -> dict[tuple[int, str], int]:
        with self._lock:
            rows = self._db.execute("SELECT uid, hotkey, last_queried_round FROM miners").fetchall()
        return {(int(uid), str(hotkey)): int(last) for uid, hotkey, last in rows}

    def sync_registrations(self, registered: set[tuple[int, str]]) -> list[tuple[int, str]]:
        """Forget miners whose (uid, hotkey) is no longer registered, with their history.

        A hotkey that replaced another on a uid therefore starts from a fresh EMA.
        """
        with self._transaction() as db:
            rows = db.execute("SELECT uid, hotkey FROM miners").fetchall()
            gone = [(int(u), str(h)) for u, h in rows if (int(u), str(h)) not in registered]
            live_hotkeys = {hotkey for _, hotkey in registered}
            for uid, hotkey in gone:
                db.execute("DELETE FROM miners WHERE uid = ? AND hotkey = ?", (uid, hotkey))
                if hotkey not in live_hotkeys:
                    db.execute("DELETE FROM embeddings WHERE hotkey = ?", (hotkey,))
                    db.execute("DELETE FROM fingerprints WHERE hotkey = ?", (hotkey,))
        return gone

    # -- the round transaction --------------------------------------------------------------

    def commit_round(
        self,
        round_number: int,
        challenge: dict[str, Any],
        block: int,
        started_at: float,
        results: list[MinerRoundResult],
        emas: dict[tuple[int, str], float],
        outbox: Sequence[OutboxEntry | tuple[str, dict[str, Any], bytes | None]] = (),
        memory: RoundMemory | None = None,
    ) -> None:
        """Write everything a round produced in ONE transaction (its scoring memory included,
        and the history pruned to its budgets), then advance the counter."""
        now = time.time()
        with self._transaction() as db:
            completed = self._read_counter(db)
            if round_number != completed + 1:
                raise StateError(f"round {round_number} does not follow completed {completed}")
            for item in results:
                db.execute(
                    "INSERT INTO miners (uid, hotkey, ema, rounds_queried, last_queried_round, "
                    "last_queried_at, last_result) VALUES (?, ?, ?, 1, ?, ?, ?) "
                    "ON CONFLICT(uid, hotkey) DO UPDATE SET ema = excluded.ema, "
                    "rounds_queried = rounds_queried + 1, "
                    "last_queried_round = excluded.last_queried_round, "
                    "last_queried_at = excluded.last_queried_at, "
                    "last_result = excluded.last_result",
                    (
                        item.uid,
                        item.hotkey,
                        float(emas.get((item.uid, item.hotkey), 0.0)),
                        round_number,
                        now,
                        json.dumps(item.result, default=_json_default),
                    ),
                )
            db.execute(
                "INSERT OR REPLACE INTO rounds (round, challenge, block, started_at, finished_at, "
                "miners) VALUES (?, ?, ?, ?, ?, ?)",
                (round_number, json.dumps(challenge), block, started_at, now, len(results)),
            )
            if memory is not None:
                self._store_memory(db, memory)
            for kind, payload, blob, *group in outbox:
                self._enqueue(db, kind, payload, blob, now, group[0] if group else None)
            self._put_meta(db, "rounds_completed", str(round_number))

    @staticmethod
    def _read_counter(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM meta WHERE key = 'rounds_completed'").fetchone()
        return int(row[0]) if row else 0

    def last_round(self) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT round, challenge, block, started_at, finished_at, miners FROM rounds "
                "ORDER BY round DESC LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        return {
            "round": row[0],
            "challenge": json.loads(row[1]),
            "block": row[2],
            "started_at": row[3],
            "finished_at": row[4],
            "miners": row[5],
        }

    # -- weights ----------------------------------------------------------------------------

    def record_weights_outcome(self, outcome: dict[str, Any]) -> None:
        self._set_meta_now("last_weights", json.dumps(outcome, default=_json_default))

    def set_weight_rule(self, exponent: float, top_k: int) -> None:
        """Remember the rule's parameters so `validator status` shows the same weights."""
        self._set_meta_now("weight_rule", json.dumps({"exponent": exponent, "top_k": top_k}))

    def weight_rule(self) -> dict[str, Any] | None:
        value = self._meta("weight_rule")
        return json.loads(value) if value else None

    def last_weights_outcome(self) -> dict[str, Any] | None:
        value = self._meta("last_weights")
        return json.loads(value) if value else None

    # -- commit-reveal: the commit the chain has not revealed yet ---------------------------

    def record_commit(self, outcome: dict[str, Any], pending: dict[str, Any]) -> None:
        """A successful commit and its pending-reveal record, in one transaction: a crash
        leaves both or neither."""
        with self._transaction() as db:
            self._put_meta(db, "last_weights", json.dumps(outcome, default=_json_default))
            self._put_meta(db, "pending_commit", json.dumps(pending, default=_json_default))

    def pending_commit(self) -> dict[str, Any] | None:
        value = self._meta("pending_commit")
        return json.loads(value) if value else None

    def clear_pending_commit(self) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM meta WHERE key = 'pending_commit'")

    # -- scoring history (written with the round, read through StateHistory) ------------------

    def history(self) -> StateHistory:
        return StateHistory(self)

    def history_bytes(self) -> dict[str, int]:
        """Bytes of stored history rows: {"embeddings": …, "fingerprints": …}."""
        with self._lock:
            return {
                table: int(
                    self._db.execute(
                        f"SELECT COALESCE(SUM(LENGTH(data)), 0) FROM {table}"
                    ).fetchone()[0]
                )
                for table in ("embeddings", "fingerprints")
            }

    def _store_memory(self, db: sqlite3.Connection, memory: RoundMemory) -> None:
        hotkeys: list[str] = []
        for clip in memory.clips:
            rows = [(DIVERSITY, clip.diversity)]
            if clip.fad_frames is not None:
                rows.append((FAD, clip.fad_frames))
            for kind, array in rows:
                db.execute(
                    "INSERT INTO embeddings (hotkey, kind, dtype, shape, data) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (clip.hotkey, kind, *_encode_array(array)),
                )
            db.execute(
                "INSERT INTO fingerprints (hotkey, dtype, shape, data) VALUES (?, ?, ?, ?)",
                (clip.hotkey, *_encode_array(clip.fingerprint)),
            )
            hotkeys.append(clip.hotkey)
        for hotkey in dict.fromkeys(hotkeys):
            self._prune_miner(db, hotkey)
        self._prune_total(db)

    @staticmethod
    def _keep_newest(
        db: sqlite3.Connection, table: str, where: str, params: tuple, keep: int
    ) -> None:
        db.execute(
            f"DELETE FROM {table} WHERE {where} AND id NOT IN "
            f"(SELECT id FROM {table} WHERE {where} ORDER BY id DESC LIMIT ?)",
            (*params, *params, keep),
        )

    def _prune_miner(self, db: sqlite3.Connection, hotkey: str) -> None:
        """Row caps per channel, then the miner's byte budget: oldest FAD frames go first (the
        largest rows), then the oldest embeddings, then the oldest fingerprints."""
        for kind, keep in ((DIVERSITY, DIVERSITY_PER_MINER), (FAD, FAD_PER_MINER)):
            self._keep_newest(db, "embeddings", "hotkey = ? AND kind = ?", (hotkey, kind), keep)
        self._keep_newest(db, "fingerprints", "hotkey = ?", (hotkey,), FINGERPRINTS_PER_MINER)
        rows = db.execute(
            "SELECT 'embeddings', id, kind, LENGTH(data) FROM embeddings WHERE hotkey = ? "
            "UNION ALL SELECT 'fingerprints', id, 'fingerprint', LENGTH(data) FROM fingerprints "
            "WHERE hotkey = ?",
            (hotkey, hotkey),
        ).fetchall()
        self._drop_until(db, rows, self.history_bytes_per_miner)

    def _prune_total(self, db: sqlite3.Connection) -> None:
        """The network-wide caps: fingerprints beyond what the copy index reads, then the total
        byte budget (oldest rows of any miner, FAD frames first)."""
        db.execute(
            "DELETE FROM fingerprints WHERE id NOT IN "
            "(SELECT id FROM fingerprints ORDER BY id DESC LIMIT ?)",
            (FINGERPRINTS_KEPT,),
        )
        total = sum(self._history_bytes(db))
        if total <= self.history_bytes_total:
            return
        rows = db.execute(
            "SELECT 'embeddings', id, kind, LENGTH(data) FROM embeddings "
            "UNION ALL SELECT 'fingerprints', id, 'fingerprint', LENGTH(data) FROM fingerprints"
        ).fetchall()
        self._drop_until(db, rows, self.history_bytes_total)

    @staticmethod
    def _history_bytes(db: sqlite3.Connection) -> tuple[int, int]:
        return tuple(  # type: ignore[return-value]
            int(db.execute(f"SELECT COALESCE(SUM(LENGTH(data)), 0) FROM {t}").fetchone()[0])
            for t in ("embeddings", "fingerprints")
        )

    @staticmethod
    def _drop_until(db: sqlite3.Connection, rows: list[Any], budget: int) -> None:
        """Delete rows (table, id, kind, bytes) until their sum fits `budget`: FAD frames
        oldest first, then diversity embeddings, then fingerprints."""
        size = sum(int(r[3]) for r in rows)
        order = {FAD: 0, DIVERSITY: 1}
        for table, row_id, _, nbytes in sorted(rows, key=lambda r: (order.get(r[2], 2), r[1])):
            if size <= budget:
                return
            db.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,))
            size -= int(nbytes)

    # -- outbox -----------------------------------------------------------------------------

    @staticmethod
    def _enqueue(
        db: sqlite3.Connection,
        kind: str,
        payload: dict[str, Any],
        blob: bytes | None,
        now: float,
        group: str | None = None,
    ) -> int:
        cursor = db.execute(
            "INSERT INTO outbox (kind, payload, blob, created_at, attempts, next_attempt_at, grp) "
            "VALUES (?, ?, ?, ?, 0, ?, ?)",
            (kind, json.dumps(payload, default=_json_default), blob, now, now, group),
        )
        return int(cursor.lastrowid or 0)

    def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        blob: bytes | None = None,
        group: str | None = None,
    ) -> int:
        with self._transaction() as db:
            return self._enqueue(db, kind, payload, blob, time.time(), group)

    def enqueue_many(self, items: Sequence[OutboxEntry]) -> list[int]:
        """Several items in ONE transaction (a job's audio and its result: all or nothing)."""
        now = time.time()
        with self._transaction() as db:
            return [self._enqueue(db, k, p, b, now, g) for k, p, b, g in items]

    def peek_sendable(self, limit: int = 10, now: float | None = None) -> list[OutboxItem]:
        """Due items that head their group: a later item never overtakes an earlier one of the
        same group (a round's audio waits for the round itself to be acknowledged)."""
        due = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, payload, blob, created_at, attempts, next_attempt_at, grp "
                "FROM outbox o WHERE next_attempt_at <= ? AND (grp IS NULL OR NOT EXISTS "
                "(SELECT 1 FROM outbox p WHERE p.grp = o.grp AND p.id < o.id)) "
                "ORDER BY id LIMIT ?",
                (due, limit),
            ).fetchall()
        return [
            OutboxItem(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6], r[7]) for r in rows
        ]

    def next_due_at(self) -> float | None:
        """When the earliest queued item becomes due (None: the outbox is empty)."""
        with self._lock:
            row = self._db.execute("SELECT MIN(next_attempt_at) FROM outbox").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def drop_group(self, group: str) -> int:
        """Remove every queued item of a group (its head was refused for good)."""
        with self._transaction() as db:
            return int(db.execute("DELETE FROM outbox WHERE grp = ?", (group,)).rowcount)

    def outbox_depth(self) -> dict[str, int]:
        """Queued items by kind."""
        with self._lock:
            rows = self._db.execute("SELECT kind, COUNT(*) FROM outbox GROUP BY kind").fetchall()
        return {str(kind): int(count) for kind, count in rows}

    def outbox_bytes(self) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(LENGTH(payload) + COALESCE(LENGTH(blob), 0)), 0) FROM outbox"
            ).fetchone()
        return int(row[0])

    def trim_outbox(self, max_bytes: int, max_items: int, droppable_first: str) -> dict[str, int]:
        """Bound the outbox: drop the oldest `droppable_first` items (audio uploads) until it
        fits in `max_bytes` and `max_items`, then, only if still over, the oldest of any kind.

        Returns how many items of each kind were dropped. One transaction.
        """
        dropped: dict[str, int] = {}
        with self._transaction() as db:
            for only_kind in (droppable_first, None):
                count, size = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload) + COALESCE(LENGTH(blob), 0)), 0)"
                    " FROM outbox"
                ).fetchone()
                if count <= max_items and size <= max_bytes:
                    break
                where = "WHERE kind = ?" if only_kind else ""
                params: tuple[Any, ...] = (only_kind,) if only_kind else ()
                rows = db.execute(
                    "SELECT id, kind, LENGTH(payload) + COALESCE(LENGTH(blob), 0) FROM outbox "
                    f"{where} ORDER BY id",
                    params,
                ).fetchall()
                doomed = []
                for item_id, kind, item_size in rows:
                    if count <= max_items and size <= max_bytes:
                        break
                    doomed.append(item_id)
                    dropped[kind] = dropped.get(kind, 0) + 1
                    count -= 1
                    size -= item_size
                db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in doomed])
        return dropped

    def peek(self, limit: int = 10, now: float | None = None) -> list[OutboxItem]:
        """Oldest items due for (re)sending; they stay queued until acked."""
        due = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, payload, blob, created_at, attempts, next_attempt_at, grp "
                "FROM outbox WHERE next_attempt_at <= ? ORDER BY id LIMIT ?",
                (due, limit),
            ).fetchall()
        return [
            OutboxItem(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6], r[7]) for r in rows
        ]

    def ack(self, item_id: int) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))

    def retry_later(self, item_id: int, delay_s: float) -> None:
        """Record a failed send: one more attempt, not due again before `delay_s`."""
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ? WHERE id = ?",
                (time.time() + delay_s, item_id),
            )

    def outbox_size(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


class StateHistory:
    """The scoring history over the state DB, read-only: a round's additions arrive as its
    RoundMemory in `commit_round`."""

    def __init__(self, state: ValidatorState) -> None:
        self._state = state

    def recent_embeddings(self, miner_hotkey: str, limit: int) -> list[np.ndarray]:
        state = self._state
        with state._lock:
            rows = state._db.execute(
                "SELECT dtype, shape, data FROM embeddings WHERE hotkey = ? ORDER BY id DESC "
                "LIMIT ?",
                (miner_hotkey, max(0, limit)),
            ).fetchall()
        return [_decode_array(*row) for row in rows]

    def fingerprints(self, limit: int) -> list[tuple[str, np.ndarray]]:
        state = self._state
        with state._lock:
            rows = state._db.execute(
                "SELECT hotkey, dtype, shape, data FROM fingerprints ORDER BY id DESC LIMIT ?",
                (max(0, limit),),
            ).fetchall()
        return [(str(r[0]), _decode_array(r[1], r[2], r[3])) for r in rows]


def _json_default(value: Any) -> Any:
    """JSON for numpy scalars/arrays that scorers may leave in `details`."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
