"""LocalChain: a file-backed TEST DOUBLE of one Bittensor subnet (DESIGN.md §2).

Not a blockchain. It keeps just what TuneForge's roles read and write — neurons (hotkey, stake,
permit, axon), weights, the weights and serving rate limits, the `weights_version`
hyperparameter and (when enabled) commit-reveal — in one SQLite file that several processes
(miners, validator, API) share. Blocks advance with wall time from a genesis timestamp, so every
process agrees on the block number without a block producer. Every write is one
`BEGIN IMMEDIATE` transaction: read-check-write sequences (the rate limit, uid assignment) are
atomic across processes.
"""

from __future__ import annotations

import json
import sqlite3

from loguru import logger

from tuneforge.chain.base import (
    ChainError,
    ChainErrorCode,
    Metagraph,
    Neuron,
    SetWeightsResult,
)
from tuneforge.chain.local_file import (
    DEFAULT_REVEAL_PERIOD_BLOCKS,
    REGISTER_HINT,
    LocalChainFile,
    store_weights,
)
from tuneforge.chain.rules import format_axon, normalize_weights


class LocalChain(LocalChainFile):
    """ChainView over a LocalChain file (a test double); writes act as `hotkey`."""

    def _acting_uid(self, conn: sqlite3.Connection, action: str) -> int:
        if not self.hotkey:
            raise ChainError(
                ChainErrorCode.INVALID,
                f"cannot {action}: this LocalChain view has no hotkey (opened read-only)",
                "open it with a wallet (open_chain(..., wallet=...))",
            )
        row = conn.execute("SELECT uid FROM neurons WHERE hotkey = ?", (self.hotkey,)).fetchone()
        if row is None:
            raise ChainError(
                ChainErrorCode.NOT_REGISTERED,
                f"hotkey {self.hotkey} is not registered on LocalChain netuid {self.netuid}",
                REGISTER_HINT,
            )
        return int(row[0])

    # ---- ChainView ------------------------------------------------------------------------

    @property
    def block(self) -> int:
        with self._lock:
            return self._block_at(self._conn)

    @property
    def weights_rate_limit(self) -> int:
        return self._weights_rate_limit

    @property
    def weights_version(self) -> int:
        # Read fresh: the subnet owner may raise it while neurons run (set_weights_version).
        return int(self._meta().get("weights_version", "0"))

    def metagraph(self) -> Metagraph:
        with self._lock:
            # One read transaction: the block and the neurons come from the same snapshot.
            self._conn.execute("BEGIN")
            try:
                block = self._block_at(self._conn)
                rows = self._conn.execute(
                    "SELECT uid, hotkey, coldkey, stake, validator_permit, axon, last_update "
                    "FROM neurons ORDER BY uid"
                ).fetchall()
            finally:
                self._conn.execute("COMMIT")
        neurons = tuple(
            Neuron(
                uid=int(uid),
                hotkey=hotkey,
                coldkey=coldkey,
                stake=float(stake),
                validator_permit=bool(permit),
                axon=axon,
                last_update=int(last_update),
            )
            for uid, hotkey, coldkey, stake, permit, axon, last_update in rows
        )
        return Metagraph(netuid=self.netuid, block=block, neurons=neurons)

    def uid_of(self, hotkey: str) -> int | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT uid FROM neurons WHERE hotkey = ?", (hotkey,)
            ).fetchone()
        return None if row is None else int(row[0])

    def blocks_since_last_update(self, uid: int) -> int:
        with self._lock:
            block = self._block_at(self._conn)
            row = self._conn.execute(
                "SELECT last_update FROM neurons WHERE uid = ?", (uid,)
            ).fetchone()
        if row is None:
            raise ChainError(ChainErrorCode.NOT_REGISTERED, f"uid {uid} is not registered")
        return block - int(row[0])

    def set_weights(self, weights: dict[int, float], version_key: int) -> SetWeightsResult:
        """Replace this hotkey's weight vector (normalised to sum 1), subject to the rate limit.

        Like the real chain, the first weights of a uid are not rate-limited (last_update 0),
        setting weights needs a validator permit, and a `version_key` below the subnet's
        `weights_version` is refused. With commit-reveal on, the vector is committed and the
        chain reveals it by itself `reveal_period_blocks` later (as drand does on Bittensor).
        """
        normalized = normalize_weights(weights)
        with self._write() as conn:
            self._reveal_due(conn)
            uid = self._acting_uid(conn, "set weights")
            block = self._block_at(conn)
            self._check_weights_allowed(conn, uid, block, int(version_key), normalized)
            reveal_block: int | None = None
            # Read in this transaction: the owner may switch commit-reveal while neurons run.
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("commit_reveal") == "1":
                period = int(meta.get("reveal_period_blocks", DEFAULT_REVEAL_PERIOD_BLOCKS))
                reveal_block = block + period
                # One pending commit per validator, as on chain: a newer one replaces it.
                conn.execute(
                    "INSERT OR REPLACE INTO commits (validator_uid, commit_block, reveal_block, "
                    "weights) VALUES (?, ?, ?, ?)",
                    (uid, block, reveal_block, json.dumps(normalized)),
                )
            else:
                store_weights(conn, uid, normalized)
            conn.execute(
                "UPDATE neurons SET last_update = ?, weight_set_count = weight_set_count + 1, "
                "version_key = ? WHERE uid = ?",
                (block, int(version_key), uid),
            )
        logger.info(
            "LocalChain (test double): uid {} {} weights on {} uids at block {}",
            uid,
            "committed" if reveal_block is not None else "set",
            len(normalized),
            block,
        )
        return SetWeightsResult(
            block=block,
            uids=tuple(normalized),
            weights=tuple(normalized.values()),
            committed=reveal_block is not None,
            reveal_round=reveal_block,
        )

    def _check_weights_allowed(
        self,
        conn: sqlite3.Connection,
        uid: int,
        block: int,
        version_key: int,
        normalized: dict[int, float],
    ) -> None:
        """The real chain's refusals, in its order: an old version_key, no validator permit,
        the weights rate limit, unregistered uids (each a ChainError)."""
        required = int(
            dict(conn.execute("SELECT key, value FROM meta").fetchall()).get("weights_version", "0")
        )
        if int(version_key) < required:
            raise ChainError(
                ChainErrorCode.INVALID,
                f"IncorrectWeightVersionKey: version_key {version_key} is below the "
                f"subnet's weights_version {required}",
                "upgrade the validator",
            )
        permit, last_update, count = conn.execute(
            "SELECT validator_permit, last_update, weight_set_count FROM neurons WHERE uid = ?",
            (uid,),
        ).fetchone()
        if not permit:
            raise ChainError(
                ChainErrorCode.NO_PERMIT,
                f"uid {uid} has no validator permit",
                "give it one with LocalChain.set_validator_permit / "
                "`tuneforge chain register --validator-permit`",
            )
        waited = block - int(last_update)
        if count > 0 and waited < self._weights_rate_limit:
            remaining = self._weights_rate_limit - waited
            raise ChainError(
                ChainErrorCode.RATE_LIMITED,
                f"uid {uid} set weights {waited} blocks ago; the limit is "
                f"{self._weights_rate_limit} blocks",
                f"wait {remaining} blocks (~{remaining * self.block_time_s:.1f}s)",
            )
        known = {int(r[0]) for r in conn.execute("SELECT uid FROM neurons")}
        unknown = sorted(set(normalized) - known)
        if unknown:
            raise ChainError(ChainErrorCode.INVALID, f"weights name unregistered uids {unknown}")

    def pending_commits(self) -> dict[int, int]:
        """validator uid -> reveal block of its commit not yet revealed."""
        with self._write() as conn:
            self._reveal_due(conn)
            rows = conn.execute("SELECT validator_uid, reveal_block FROM commits").fetchall()
        return {int(uid): int(reveal) for uid, reveal in rows}

    def serve(self, ip: str, port: int) -> None:
        """Publish the axon; like the chain's ServingRateLimit, a second call within
        `serving_rate_limit` blocks is refused (RATE_LIMITED), even with the same address."""
        axon = format_axon(ip, port)
        with self._write() as conn:
            uid = self._acting_uid(conn, "serve an axon")
            block = self._block_at(conn)
            row = conn.execute("SELECT last_block FROM serving WHERE uid = ?", (uid,)).fetchone()
            if row is not None and block - int(row[0]) < self.serving_rate_limit:
                remaining = self.serving_rate_limit - (block - int(row[0]))
                raise ChainError(
                    ChainErrorCode.RATE_LIMITED,
                    f"ServingRateLimitExceeded: uid {uid} served {block - int(row[0])} blocks "
                    f"ago; the limit is {self.serving_rate_limit} blocks",
                    f"wait {remaining} blocks (~{remaining * self.block_time_s:.1f}s)",
                )
            conn.execute("UPDATE neurons SET axon = ? WHERE uid = ?", (axon, uid))
            conn.execute(
                "INSERT OR REPLACE INTO serving (uid, last_block) VALUES (?, ?)", (uid, block)
            )
        logger.info("LocalChain (test double): uid {} serves {}", uid, axon)

    def weights(self) -> dict[int, dict[int, float]]:
        """validator uid -> {uid: weight} as last set (or revealed)."""
        with self._write() as conn:
            self._reveal_due(conn)
            rows = conn.execute(
                "SELECT validator_uid, uid, weight FROM weights ORDER BY validator_uid, uid"
            ).fetchall()
        result: dict[int, dict[int, float]] = {}
        for validator_uid, uid, weight in rows:
            result.setdefault(int(validator_uid), {})[int(uid)] = float(weight)
        return result

    def weight_set_count(self, validator_uid: int) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT weight_set_count FROM neurons WHERE uid = ?", (validator_uid,)
            ).fetchone()
        return 0 if row is None else int(row[0])
