"""Weight setting as the validator state remembers it: the last outcome, the weights last
actually set on chain, the commit awaiting its reveal, and the rule's parameters."""

from __future__ import annotations

from typing import Any

from tuneforge.validator.store.database import Database
from tuneforge.validator.store.meta import MetaRepository

LAST_OUTCOME_KEY, LAST_SET_KEY = "last_weights", "last_set_weights"
PENDING_KEY, RULE_KEY = "pending_commit", "weight_rule"


class WeightsRepository:
    def __init__(self, db: Database, meta: MetaRepository) -> None:
        self._db = db
        self._meta = meta

    def record_outcome(
        self, outcome: dict[str, Any], pending: dict[str, Any] | None = None
    ) -> None:
        """Record a weight-setting outcome in one transaction. A successful one is also the new
        "last set" (a later failure does not undo what the chain holds); `pending` is the
        commit-reveal record of a commit, written with it so a crash leaves both or neither."""
        with self._db.transaction():
            self._meta.put_json(LAST_OUTCOME_KEY, outcome)
            if outcome.get("ok"):
                self._meta.put_json(LAST_SET_KEY, outcome)
            if pending is not None:
                self._meta.put_json(PENDING_KEY, pending)

    def last_outcome(self) -> dict[str, Any] | None:
        """The last attempt, successful or not."""
        value: dict[str, Any] | None = self._meta.get_json(LAST_OUTCOME_KEY)
        return value

    def last_set(self) -> dict[str, Any] | None:
        """The last successful outcome: the weights this validator last set (or committed)."""
        value: dict[str, Any] | None = self._meta.get_json(LAST_SET_KEY)
        if value is None:
            # A state written before LAST_SET_KEY existed: its last outcome, when it succeeded.
            last = self.last_outcome()
            value = last if last and last.get("ok") else None
        return value

    def pending_commit(self) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self._meta.get_json(PENDING_KEY)
        return value

    def clear_pending_commit(self) -> None:
        self._meta.delete(PENDING_KEY)

    def set_rule(self, exponent: float, top_k: int) -> None:
        """Remember the rule's parameters (shown by `validator status`)."""
        self._meta.put_json(RULE_KEY, {"exponent": exponent, "top_k": top_k})

    def rule(self) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self._meta.get_json(RULE_KEY)
        return value
