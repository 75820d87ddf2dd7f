"""Rounds of the validator state: the completed-round counter, attempts, each round's record."""

from __future__ import annotations

import json
from typing import Any

from tuneforge.validator.store.database import Database, StateError
from tuneforge.validator.store.meta import MetaRepository

COMPLETED_KEY, ATTEMPT_KEY = "rounds_completed", "attempt"


class RoundsRepository:
    def __init__(self, db: Database, meta: MetaRepository) -> None:
        self._db = db
        self._meta = meta

    def completed(self) -> int:
        value = self._meta.get(COMPLETED_KEY)
        return int(value) if value is not None else 0

    def begin_attempt(self, round_number: int) -> int:
        """Count a start of `round_number` (its own transaction) and return the attempt number.

        A round interrupted by a crash is retried with a fresh challenge: miners who saw the
        first one cannot have prepared an answer for the second.
        """
        with self._db.transaction():
            previous = self._meta.get_json(ATTEMPT_KEY) or {"round": -1, "attempt": -1}
            attempt = previous["attempt"] + 1 if previous["round"] == round_number else 0
            self._meta.put_json(ATTEMPT_KEY, {"round": round_number, "attempt": attempt})
        return attempt

    def record(
        self,
        round_number: int,
        challenge: dict[str, Any],
        block: int,
        started_at: float,
        finished_at: float,
        miners: int,
    ) -> None:
        """Store the round and advance the counter to it; it must follow the last completed
        round (StateError otherwise, so the caller's transaction rolls back)."""
        with self._db.transaction() as db:
            completed = self.completed()
            if round_number != completed + 1:
                raise StateError(f"round {round_number} does not follow completed {completed}")
            db.execute(
                "INSERT OR REPLACE INTO rounds (round, challenge, block, started_at, finished_at, "
                "miners) VALUES (?, ?, ?, ?, ?, ?)",
                (round_number, json.dumps(challenge), block, started_at, finished_at, miners),
            )
            self._meta.put(COMPLETED_KEY, str(round_number))

    def last(self) -> dict[str, Any] | None:
        with self._db.read() as db:
            row = db.execute(
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
