"""The validator's crash-safe state: ONE SQLite file (WAL), a unit of work over repositories.

The repositories (validator/store/) each keep one part of the state and share one connection
and one lock: `meta` (the challenge secret), `miners` (EMAs, last results), `rounds` (counter,
attempts, round records), `weights` (outcomes, pending commit), `history` (embeddings and
fingerprints the scorers read) and `outbox` (publications not yet acknowledged). Writes made
inside `with state.transaction():` form one transaction; `commit_round` is that unit of work
for a round, so `kill -9` at any point leaves either the whole round or none of it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tuneforge.scoring.memory import RoundMemory
from tuneforge.validator.store.database import Database, StateError
from tuneforge.validator.store.history import (
    HISTORY_BYTES_PER_MINER,
    HISTORY_BYTES_TOTAL,
    HistoryRepository,
)
from tuneforge.validator.store.meta import MetaRepository
from tuneforge.validator.store.miners import MinerRoundResult, MinersRepository
from tuneforge.validator.store.outbox import Blob, OutboxEntry, OutboxItem, OutboxRepository
from tuneforge.validator.store.rounds import RoundsRepository
from tuneforge.validator.store.weights import WeightsRepository

# The types a round hands to `commit_round` and the publisher reads back, importable from here.
__all__ = ["MinerRoundResult", "OutboxEntry", "OutboxItem", "StateError", "ValidatorState"]


class ValidatorState:
    """The state file's repositories and its transaction boundary (thread-safe, one lock)."""

    def __init__(
        self,
        path: str | Path,
        history_bytes_per_miner: int = HISTORY_BYTES_PER_MINER,
        history_bytes_total: int = HISTORY_BYTES_TOTAL,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self.db = Database(self.path, read_only=read_only)
        self.meta = MetaRepository(self.db)
        self.miners = MinersRepository(self.db)
        self.rounds = RoundsRepository(self.db, self.meta)
        self.weights = WeightsRepository(self.db, self.meta)
        self.history = HistoryRepository(self.db, history_bytes_per_miner, history_bytes_total)
        self.outbox = OutboxRepository(self.db)

    @classmethod
    def open_read_only(cls, path: str | Path) -> ValidatorState:
        """For views (status): SQLite `mode=ro`, no schema creation, no migration, no writes."""
        return cls(path, read_only=True)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything the repositories write inside is committed together or not at all."""
        with self.db.transaction():
            yield

    def close(self) -> None:
        self.db.close()

    # -- units of work spanning several repositories ------------------------------------------

    def commit_round(
        self,
        round_number: int,
        challenge: dict[str, Any],
        block: int,
        started_at: float,
        results: list[MinerRoundResult],
        emas: dict[tuple[int, str], float],
        outbox: Sequence[OutboxEntry | tuple[str, dict[str, Any], Blob]] = (),
        memory: RoundMemory | None = None,
    ) -> None:
        """Write everything a round produced in ONE transaction (its scoring memory included,
        and the history pruned to its budgets), then advance the counter."""
        now = time.time()
        with self.transaction():
            self.rounds.record(round_number, challenge, block, started_at, now, len(results))
            self.miners.record_round(round_number, results, emas, now)
            if memory is not None:
                self.history.store(memory)
            self.outbox.enqueue_many(outbox, now)

    def sync_registrations(self, registered: set[tuple[int, str]]) -> list[tuple[int, str]]:
        """Forget miners whose (uid, hotkey) is no longer registered, with their history.

        A hotkey that replaced another on a uid therefore starts from a fresh EMA; a hotkey
        still registered on another uid keeps its history.
        """
        with self.transaction():
            gone = self.miners.forget_unregistered(registered)
            live_hotkeys = {hotkey for _, hotkey in registered}
            self.history.forget({hotkey for _, hotkey in gone} - live_hotkeys)
        return gone
