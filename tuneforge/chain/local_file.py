"""The file under LocalChain (the test double of chain/local.py): its schema, opening and
initialising it, the transaction every write takes, the chain's own auto-reveal, and the subnet
owner's controls that tests and `tuneforge chain ...` use (register, stake, permit, advance
blocks, switch commit-reveal). Nothing here is part of ChainView."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from loguru import logger

from tuneforge.chain.base import ChainError, ChainErrorCode
from tuneforge.chain.rules import format_axon
from tuneforge.core.config import DEFAULT_NETUID

SCHEMA_VERSION = 1
MAX_UIDS = 256  # a real subnet's default max_allowed_uids
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS neurons (
    uid INTEGER PRIMARY KEY,
    hotkey TEXT NOT NULL UNIQUE,
    coldkey TEXT NOT NULL DEFAULT '',
    stake REAL NOT NULL DEFAULT 0,
    validator_permit INTEGER NOT NULL DEFAULT 0,
    axon TEXT,
    last_update INTEGER NOT NULL DEFAULT 0,
    weight_set_count INTEGER NOT NULL DEFAULT 0,
    version_key INTEGER NOT NULL DEFAULT 0,
    registered_block INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS weights (
    validator_uid INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    weight REAL NOT NULL,
    PRIMARY KEY (validator_uid, uid)
);
"""
# Tables added after schema 1: also created on open, so an older LocalChain file keeps working.
_LATER_SCHEMA = """
CREATE TABLE IF NOT EXISTS serving (
    uid INTEGER PRIMARY KEY,
    last_block INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS commits (
    validator_uid INTEGER PRIMARY KEY,
    commit_block INTEGER NOT NULL,
    reveal_block INTEGER NOT NULL,
    weights TEXT NOT NULL
);
"""

# The real chain's default ServingRateLimit is 50 blocks; commit-reveal reveals a commit after
# `reveal_period_blocks` (the real chain: RevealPeriodEpochs × tempo, auto-revealed by drand).
DEFAULT_SERVING_RATE_LIMIT = 50
DEFAULT_REVEAL_PERIOD_BLOCKS = 10

REGISTER_HINT = "register it first (`tuneforge chain register --localnet.path FILE --hotkey SS58`)"


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode: transactions are opened explicitly, so reads never hold a write lock.
    # One connection serves every thread of the process (e.g. asyncio.to_thread); the
    # instance lock serialises its use.
    conn = sqlite3.connect(
        str(path),
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class LocalChainFile:
    """An open LocalChain file; writes act as `hotkey` (None: read-only view)."""

    def __init__(self, path: str | Path, netuid: int = DEFAULT_NETUID, hotkey: str | None = None):
        self.path = Path(path)
        self.netuid = netuid
        self.hotkey = hotkey
        if not self.path.is_file():
            raise ChainError(
                ChainErrorCode.UNAVAILABLE,
                f"LocalChain file {self.path} does not exist",
                f"create it with `tuneforge chain init --localnet.path {self.path}`",
            )
        self._lock = threading.Lock()
        try:
            self._conn = _connect(self.path)
        except sqlite3.DatabaseError as exc:
            raise ChainError(
                ChainErrorCode.UNAVAILABLE, f"{self.path} is not a LocalChain file: {exc}"
            ) from exc
        meta = self._meta()
        if "genesis_time" not in meta:
            self._conn.close()
            raise ChainError(
                ChainErrorCode.UNAVAILABLE,
                f"{self.path} is not an initialised LocalChain file",
                f"run `tuneforge chain init --localnet.path {self.path}`",
            )
        if int(meta["netuid"]) != netuid:
            self._conn.close()
            raise ChainError(
                ChainErrorCode.INVALID,
                f"LocalChain file {self.path} holds netuid {meta['netuid']}, not {netuid}",
                f"pass --netuid {meta['netuid']} or use another file",
            )
        self.block_time_s = float(meta["block_time_s"])
        self._weights_rate_limit = int(meta["weights_rate_limit"])
        # Files made before these settings existed get the real chain's defaults.
        self.serving_rate_limit = int(meta.get("serving_rate_limit", DEFAULT_SERVING_RATE_LIMIT))
        self.commit_reveal = meta.get("commit_reveal", "0") == "1"
        self.reveal_period_blocks = int(
            meta.get("reveal_period_blocks", DEFAULT_REVEAL_PERIOD_BLOCKS)
        )
        with self._lock:
            self._conn.executescript(_LATER_SCHEMA)
        logger.debug("opened LocalChain (test double) {} as {}", self.path, hotkey or "reader")

    @classmethod
    def create(
        cls,
        path: str | Path,
        netuid: int = DEFAULT_NETUID,
        block_time_s: float = 12.0,
        weights_rate_limit: int = 100,
        serving_rate_limit: int = DEFAULT_SERVING_RATE_LIMIT,
        commit_reveal: bool = False,
        reveal_period_blocks: int = DEFAULT_REVEAL_PERIOD_BLOCKS,
        weights_version: int = 0,
    ) -> Self:
        """Initialise the file if new (an existing chain is kept as is) and open it read-only."""
        if block_time_s <= 0:
            raise ChainError(ChainErrorCode.INVALID, "block_time_s must be > 0")
        if min(weights_rate_limit, serving_rate_limit, weights_version) < 0:
            raise ChainError(ChainErrorCode.INVALID, "rate limits and versions must be >= 0")
        if reveal_period_blocks < 1:
            raise ChainError(ChainErrorCode.INVALID, "reveal_period_blocks must be >= 1")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in (_SCHEMA + _LATER_SCHEMA).split(";"):
                if statement.strip():
                    conn.execute(statement)
            defaults = {
                "schema_version": str(SCHEMA_VERSION),
                "netuid": str(netuid),
                "genesis_time": repr(time.time()),
                "block_time_s": repr(float(block_time_s)),
                "weights_rate_limit": str(int(weights_rate_limit)),
                "serving_rate_limit": str(int(serving_rate_limit)),
                "commit_reveal": "1" if commit_reveal else "0",
                "reveal_period_blocks": str(int(reveal_period_blocks)),
                "weights_version": str(int(weights_version)),
            }
            existing = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            conn.executemany(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", defaults.items()
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()
        if existing:
            logger.info("LocalChain (test double) {} already initialised; kept as is", path)
        else:
            logger.info(
                "LocalChain (test double) initialised at {}: netuid {}, {}s blocks, "
                "weights rate limit {} blocks, commit-reveal {}",
                path,
                netuid,
                block_time_s,
                weights_rate_limit,
                "on" if commit_reveal else "off",
            )
        return cls(path, netuid=netuid)

    # ---- plumbing -------------------------------------------------------------------------

    def _meta(self) -> dict[str, str]:
        with self._lock:
            try:
                return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
            except sqlite3.DatabaseError:
                return {}  # no meta table: not a LocalChain file

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken before reading so checks and writes are atomic."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _block_at(self, conn: sqlite3.Connection) -> int:
        (genesis,) = conn.execute("SELECT value FROM meta WHERE key = 'genesis_time'").fetchone()
        return max(0, math.floor((time.time() - float(genesis)) / self.block_time_s))

    def _reveal_due(self, conn: sqlite3.Connection) -> None:
        """Reveal every commit whose reveal block has come (the chain's own auto-reveal)."""
        block = self._block_at(conn)
        due = conn.execute(
            "SELECT validator_uid, weights FROM commits WHERE reveal_block <= ?", (block,)
        ).fetchall()
        for validator_uid, stored in due:
            revealed = {int(uid): float(w) for uid, w in json.loads(stored).items()}
            store_weights(conn, int(validator_uid), revealed)
            conn.execute("DELETE FROM commits WHERE validator_uid = ?", (validator_uid,))
            logger.info(
                "LocalChain (test double): revealed uid {}'s committed weights at block {}",
                validator_uid,
                block,
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ---- admin (the test double's stand-in for registration, staking and governance) --------

    def register(
        self,
        hotkey: str,
        coldkey: str = "",
        stake: float = 0.0,
        validator_permit: bool = False,
        axon: str | None = None,
    ) -> int:
        """Register `hotkey` on the lowest free uid and return it.

        Idempotent: an already registered hotkey keeps its uid and gets the given coldkey
        (when non-empty), stake, permit and axon.
        """
        if not hotkey or len(hotkey) > 64:
            raise ChainError(ChainErrorCode.INVALID, f"invalid hotkey {hotkey!r}")
        if not math.isfinite(stake) or stake < 0:
            raise ChainError(ChainErrorCode.INVALID, f"stake must be finite and >= 0: {stake}")
        if axon is not None:
            host, sep, port = axon.rpartition(":")
            if not sep or not port.isdigit():
                raise ChainError(ChainErrorCode.INVALID, f"axon {axon!r} is not ip:port")
            axon = format_axon(host.strip("[]"), int(port))
        with self._write() as conn:
            block = self._block_at(conn)
            row = conn.execute("SELECT uid FROM neurons WHERE hotkey = ?", (hotkey,)).fetchone()
            if row is not None:
                uid = int(row[0])
                conn.execute(
                    "UPDATE neurons SET coldkey = CASE WHEN ? = '' THEN coldkey ELSE ? END, "
                    "stake = ?, validator_permit = ?, axon = ? WHERE uid = ?",
                    (coldkey, coldkey, float(stake), int(validator_permit), axon, uid),
                )
                return uid
            used = {int(r[0]) for r in conn.execute("SELECT uid FROM neurons")}
            uid = next((u for u in range(MAX_UIDS) if u not in used), -1)
            if uid < 0:
                raise ChainError(
                    ChainErrorCode.UNAVAILABLE,
                    f"all {MAX_UIDS} uids are taken",
                    "free one with replace_hotkey()",
                )
            conn.execute(
                "INSERT INTO neurons (uid, hotkey, coldkey, stake, validator_permit, axon, "
                "registered_block) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (uid, hotkey, coldkey, float(stake), int(validator_permit), axon, block),
            )
        logger.info("LocalChain (test double): registered {} as uid {}", hotkey, uid)
        return uid

    def replace_hotkey(self, uid: int, hotkey: str, coldkey: str = "") -> None:
        """A new hotkey takes over `uid` (as when a real registration prunes a neuron).

        The uid's stake, permit, axon and weights are reset, as on chain.
        """
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM neurons WHERE hotkey = ?", (hotkey,)).fetchone():
                raise ChainError(ChainErrorCode.INVALID, f"hotkey {hotkey} is already registered")
            updated = conn.execute(
                "UPDATE neurons SET hotkey = ?, coldkey = ?, stake = 0, validator_permit = 0, "
                "axon = NULL, last_update = 0, weight_set_count = 0, registered_block = ? "
                "WHERE uid = ?",
                (hotkey, coldkey, self._block_at(conn), uid),
            ).rowcount
            if not updated:
                raise ChainError(ChainErrorCode.NOT_REGISTERED, f"uid {uid} is not registered")
            conn.execute("DELETE FROM weights WHERE validator_uid = ?", (uid,))
            conn.execute("DELETE FROM commits WHERE validator_uid = ?", (uid,))
            conn.execute("DELETE FROM serving WHERE uid = ?", (uid,))
        logger.info("LocalChain (test double): uid {} now belongs to {}", uid, hotkey)

    def _update_neuron(self, hotkey: str, column: str, value: object) -> None:
        with self._write() as conn:
            updated = conn.execute(
                f"UPDATE neurons SET {column} = ? WHERE hotkey = ?", (value, hotkey)
            ).rowcount
            if not updated:
                raise ChainError(
                    ChainErrorCode.NOT_REGISTERED, f"hotkey {hotkey} is not registered"
                )

    def set_stake(self, hotkey: str, stake: float) -> None:
        if not math.isfinite(stake) or stake < 0:
            raise ChainError(ChainErrorCode.INVALID, f"stake must be finite and >= 0: {stake}")
        self._update_neuron(hotkey, "stake", float(stake))

    def set_validator_permit(self, hotkey: str, permit: bool) -> None:
        self._update_neuron(hotkey, "validator_permit", int(permit))

    def serve_hotkey(self, hotkey: str, ip: str, port: int) -> None:
        self._update_neuron(hotkey, "axon", format_axon(ip, port))

    def advance_blocks(self, blocks: int) -> None:
        """Move every process's clock `blocks` ahead by shifting genesis back (tests, demos)."""
        if blocks < 0:
            raise ChainError(ChainErrorCode.INVALID, "blocks cannot go backwards")
        with self._write() as conn:
            (genesis,) = conn.execute(
                "SELECT value FROM meta WHERE key = 'genesis_time'"
            ).fetchone()
            shifted = float(genesis) - blocks * self.block_time_s
            conn.execute("UPDATE meta SET value = ? WHERE key = 'genesis_time'", (repr(shifted),))

    def set_commit_reveal(self, enabled: bool, reveal_period_blocks: int | None = None) -> None:
        """The subnet owner's commit-reveal switch and reveal period (admin)."""
        if reveal_period_blocks is not None and reveal_period_blocks < 1:
            raise ChainError(ChainErrorCode.INVALID, "reveal_period_blocks must be >= 1")
        values = {"commit_reveal": "1" if enabled else "0"}
        if reveal_period_blocks is not None:
            values["reveal_period_blocks"] = str(int(reveal_period_blocks))
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items()
            )
        self.commit_reveal = enabled
        if reveal_period_blocks is not None:
            self.reveal_period_blocks = int(reveal_period_blocks)

    def set_weights_version(self, version: int) -> None:
        """The subnet owner's `weights_version` hyperparameter (admin)."""
        if version < 0:
            raise ChainError(ChainErrorCode.INVALID, "weights_version must be >= 0")
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('weights_version', ?)",
                (str(int(version)),),
            )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def store_weights(conn: sqlite3.Connection, validator_uid: int, weights: dict[int, float]) -> None:
    conn.execute("DELETE FROM weights WHERE validator_uid = ?", (validator_uid,))
    conn.executemany(
        "INSERT INTO weights (validator_uid, uid, weight) VALUES (?, ?, ?)",
        [(validator_uid, target, w) for target, w in weights.items()],
    )
