"""The publication outbox in the validator state: items wait here until the API acknowledges
them; items of one group are sent strictly in id order."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tuneforge.validator.store.database import Database, json_default


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


class BlobSource(Protocol):
    """A blob read only as its row is written (a spooled answer): a round's outbox entries
    then hold no audio, and its answers pass through memory one at a time."""

    def read(self) -> bytes: ...


Blob = bytes | BlobSource | None
# (kind, payload, blob, group) as written to the outbox
OutboxEntry = tuple[str, dict[str, Any], Blob, str | None]
_ITEM_COLUMNS = "id, kind, payload, blob, created_at, attempts, next_attempt_at, grp"
_SIZE = "LENGTH(payload) + COALESCE(LENGTH(blob), 0)"


def _item(row: Sequence[Any]) -> OutboxItem:
    return OutboxItem(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5], row[6], row[7])


class OutboxRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def enqueue_many(
        self,
        items: Sequence[OutboxEntry | tuple[str, dict[str, Any], Blob]],
        now: float | None = None,
    ) -> list[int]:
        """Queue items in ONE transaction (a job's audio and its result: all or nothing);
        an entry without a group is sent in id order only. A `BlobSource` is read as its own
        row is written."""
        created = time.time() if now is None else now
        ids: list[int] = []
        with self._db.transaction() as db:
            for kind, payload, blob, *group in items:
                cursor = db.execute(
                    "INSERT INTO outbox (kind, payload, blob, created_at, attempts, "
                    "next_attempt_at, grp) VALUES (?, ?, ?, ?, 0, ?, ?)",
                    (
                        kind,
                        json.dumps(payload, default=json_default),
                        blob if blob is None or isinstance(blob, bytes) else blob.read(),
                        created,
                        created,
                        group[0] if group else None,
                    ),
                )
                ids.append(int(cursor.lastrowid or 0))
        return ids

    def peek_sendable(self, limit: int = 10, now: float | None = None) -> list[OutboxItem]:
        """Due items that head their group: a later item never overtakes an earlier one of the
        same group (a round's audio waits for the round itself to be acknowledged)."""
        due = time.time() if now is None else now
        with self._db.read() as db:
            rows = db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM outbox o WHERE next_attempt_at <= ? AND "
                "(grp IS NULL OR NOT EXISTS "
                "(SELECT 1 FROM outbox p WHERE p.grp = o.grp AND p.id < o.id)) "
                "ORDER BY id LIMIT ?",
                (due, limit),
            ).fetchall()
        return [_item(r) for r in rows]

    def next_due_at(self) -> float | None:
        """When the earliest queued item becomes due (None: the outbox is empty)."""
        with self._db.read() as db:
            row = db.execute("SELECT MIN(next_attempt_at) FROM outbox").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def ack(self, item_id: int) -> None:
        with self._db.transaction() as db:
            db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))

    def retry_later(self, item_id: int, delay_s: float) -> None:
        """Record a failed send: one more attempt, not due again before `delay_s`."""
        with self._db.transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ? WHERE id = ?",
                (time.time() + delay_s, item_id),
            )

    def drop_group(self, group: str) -> int:
        """Remove every queued item of a group (its head was refused for good)."""
        with self._db.transaction() as db:
            return int(db.execute("DELETE FROM outbox WHERE grp = ?", (group,)).rowcount)

    def trim(self, max_bytes: int, max_items: int, droppable_first: str) -> dict[str, int]:
        """Bound the outbox: drop the oldest `droppable_first` items (audio uploads) until it
        fits in `max_bytes` and `max_items`, then, only if still over, the oldest of any kind.

        Returns how many items of each kind were dropped. One transaction.
        """
        dropped: dict[str, int] = {}
        with self._db.transaction() as db:
            for only_kind in (droppable_first, None):
                count, size = db.execute(
                    f"SELECT COUNT(*), COALESCE(SUM({_SIZE}), 0) FROM outbox"
                ).fetchone()
                if count <= max_items and size <= max_bytes:
                    break
                where = "WHERE kind = ?" if only_kind else ""
                params: tuple[Any, ...] = (only_kind,) if only_kind else ()
                rows = db.execute(
                    f"SELECT id, kind, {_SIZE} FROM outbox {where} ORDER BY id", params
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

    def depth(self) -> dict[str, int]:
        """Queued items by kind."""
        with self._db.read() as db:
            rows = db.execute("SELECT kind, COUNT(*) FROM outbox GROUP BY kind").fetchall()
        return {str(kind): int(count) for kind, count in rows}

    def size(self) -> int:
        with self._db.read() as db:
            return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def stored_bytes(self) -> int:
        """Bytes of the queued payloads and blobs (what `trim` bounds)."""
        with self._db.read() as db:
            return int(db.execute(f"SELECT COALESCE(SUM({_SIZE}), 0) FROM outbox").fetchone()[0])
