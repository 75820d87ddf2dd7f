"""Test-only access to a ValidatorState: what production code never needs (a fixed secret,
single enqueues, peeking the raw outbox, ad-hoc SQL)."""

from __future__ import annotations

import json
import time
from typing import Any

from tuneforge.validator.state import OutboxItem, ValidatorState
from tuneforge.validator.store.meta import SECRET_KEY


def set_secret(state: ValidatorState, secret: bytes) -> None:
    """A fixed challenge secret, for reproducible rounds."""
    assert len(secret) >= 16, "the challenge secret needs at least 128 bits"
    state.meta.put(SECRET_KEY, secret.hex())


def enqueue(
    state: ValidatorState,
    kind: str,
    payload: dict[str, Any],
    blob: bytes | None = None,
    group: str | None = None,
) -> int:
    [item_id] = state.outbox.enqueue_many([(kind, payload, blob, group)])
    return item_id


def peek(state: ValidatorState, limit: int = 10, now: float | None = None) -> list[OutboxItem]:
    """The oldest due items in id order, groups ignored (what is queued, not what is sendable)."""
    due = time.time() if now is None else now
    with state.db.read() as db:
        rows = db.execute(
            "SELECT id, kind, payload, blob, created_at, attempts, next_attempt_at, grp "
            "FROM outbox WHERE next_attempt_at <= ? ORDER BY id LIMIT ?",
            (due, limit),
        ).fetchall()
    return [OutboxItem(r[0], r[1], json.loads(r[2]), *r[3:]) for r in rows]


def fetch_one(state: ValidatorState, sql: str) -> tuple[Any, ...]:
    with state.db.read() as db:
        row: tuple[Any, ...] = db.execute(sql).fetchone()
    return row
