"""The validator state's one SQLite connection, its lock and its transactions.

Every repository shares this object, so a unit of work that spans several of them (a round
writes miners, rounds, history and outbox) is ONE transaction: repository writes made inside
`transaction()` join it instead of committing on their own.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from tuneforge.core.errors import TuneForgeError

SCHEMA_VERSION = 1
# The memory channels of a history row (embeddings.kind).
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


class StateError(TuneForgeError, RuntimeError):
    """The state file is unusable (newer schema, corrupt, not a TuneForge validator state)."""

    code = "validator_state_unusable"


class Database:
    """One connection (WAL, `synchronous=FULL`) guarded by one re-entrant lock.

    Writable: creates and migrates the schema. Read-only (`read_only=True`): opens the file
    with SQLite's `mode=ro`, runs no DDL and no migration, and refuses transactions; a status
    view never writes the state it reports.
    """

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._lock = threading.RLock()
        self._depth = 0  # nesting of transaction(): only the outermost one commits
        try:
            if read_only:
                self._conn = sqlite3.connect(
                    f"{path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=30.0,
                )
            else:
                self._conn = self._open_writable(path)
            version = self.meta_value("schema_version")
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot open validator state {path}: {exc}") from exc
        if version is None:
            raise StateError(f"{path} is not a TuneForge validator state (no schema version)")
        if int(version) > SCHEMA_VERSION:
            raise StateError(
                f"{path} has schema {version}, this validator knows {SCHEMA_VERSION}: upgrade"
            )

    @staticmethod
    def _open_writable(path: Path) -> sqlite3.Connection:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed round survives power loss too, at a few ms per round.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        # Schema, migration and version in ONE write transaction: two processes opening a new or
        # older file at once (the validator and a tool) would otherwise both add the same column.
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            _migrate(conn)
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on any exception). A transaction opened while
        one is running on this thread joins it: the outermost one commits or rolls back all."""
        if self.read_only:
            raise StateError(f"{self.path} is open read-only")
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._depth = 0
                self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads, under the lock (scoring reads history from a worker)."""
        with self._lock:
            yield self._conn

    def meta_value(self, key: str) -> str | None:
        with self.read() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _migrate(conn: sqlite3.Connection) -> None:
    """Additive columns for state files written by an earlier validator (same schema 1)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(outbox)").fetchall()}
    if "grp" not in columns:
        # The publication group: items of one group are sent strictly in id order.
        conn.execute("ALTER TABLE outbox ADD COLUMN grp TEXT")
    conn.execute("CREATE INDEX IF NOT EXISTS outbox_grp ON outbox (grp, id)")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(embeddings)").fetchall()}
    if "kind" not in columns:
        # The memory channel a row came from; earlier rows are told apart by their shape.
        conn.execute("ALTER TABLE embeddings ADD COLUMN kind TEXT")
    conn.execute(
        "UPDATE embeddings SET kind = CASE WHEN shape LIKE '%,%' THEN ? ELSE ? END "
        "WHERE kind IS NULL",
        (FAD, DIVERSITY),
    )


def json_default(value: Any) -> Any:
    """JSON for numpy scalars/arrays that scorers may leave in `details`."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
