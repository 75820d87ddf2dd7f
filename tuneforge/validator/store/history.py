"""The scoring history in the validator state: embeddings and fingerprints per miner, written
with the round that produced them and bounded in rows and bytes, per miner and in total.

It is also the `HistoryView` the scoring engine reads (from a worker thread, under the lock).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import numpy as np

from tuneforge.scoring.memory import RoundMemory
from tuneforge.validator.store.database import DIVERSITY, FAD, Database

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
_TABLES = ("embeddings", "fingerprints")


def _encode_array(array: np.ndarray) -> tuple[str, str, bytes]:
    array = np.ascontiguousarray(array)
    return array.dtype.str, json.dumps(list(array.shape)), array.tobytes()


def _decode_array(dtype: str, shape: str, data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(json.loads(shape)).copy()


class HistoryRepository:
    def __init__(
        self,
        db: Database,
        bytes_per_miner: int = HISTORY_BYTES_PER_MINER,
        bytes_total: int = HISTORY_BYTES_TOTAL,
    ) -> None:
        self._db = db
        self.bytes_per_miner = bytes_per_miner
        self.bytes_total = bytes_total

    # -- reads (the scoring engine's HistoryView) -------------------------------------------

    def recent_embeddings(self, miner_hotkey: str, limit: int) -> list[np.ndarray]:
        with self._db.read() as db:
            rows = db.execute(
                "SELECT dtype, shape, data FROM embeddings WHERE hotkey = ? ORDER BY id DESC "
                "LIMIT ?",
                (miner_hotkey, max(0, limit)),
            ).fetchall()
        return [_decode_array(*row) for row in rows]

    def fingerprints(self, limit: int) -> list[tuple[str, np.ndarray]]:
        with self._db.read() as db:
            rows = db.execute(
                "SELECT hotkey, dtype, shape, data FROM fingerprints ORDER BY id DESC LIMIT ?",
                (max(0, limit),),
            ).fetchall()
        return [(str(r[0]), _decode_array(r[1], r[2], r[3])) for r in rows]

    def stored_bytes(self) -> dict[str, int]:
        """Bytes of stored history rows: {"embeddings": …, "fingerprints": …}."""
        with self._db.read() as db:
            return dict(zip(_TABLES, _table_bytes(db), strict=True))

    # -- writes ------------------------------------------------------------------------------

    def store(self, memory: RoundMemory) -> None:
        """Add a round's memory, then prune each of its miners and the total to the budgets."""
        with self._db.transaction() as db:
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

    def forget(self, hotkeys: set[str]) -> None:
        """Delete every history row of these miners."""
        with self._db.transaction() as db:
            for table in _TABLES:
                db.executemany(f"DELETE FROM {table} WHERE hotkey = ?", [(h,) for h in hotkeys])

    def _prune_miner(self, db: sqlite3.Connection, hotkey: str) -> None:
        """Row caps per channel, then the miner's byte budget: oldest FAD frames go first (the
        largest rows), then the oldest embeddings, then the oldest fingerprints."""
        for kind, keep in ((DIVERSITY, DIVERSITY_PER_MINER), (FAD, FAD_PER_MINER)):
            _keep_newest(db, "embeddings", "hotkey = ? AND kind = ?", (hotkey, kind), keep)
        _keep_newest(db, "fingerprints", "hotkey = ?", (hotkey,), FINGERPRINTS_PER_MINER)
        rows = db.execute(
            "SELECT 'embeddings', id, kind, LENGTH(data) FROM embeddings WHERE hotkey = ? "
            "UNION ALL SELECT 'fingerprints', id, 'fingerprint', LENGTH(data) FROM fingerprints "
            "WHERE hotkey = ?",
            (hotkey, hotkey),
        ).fetchall()
        _drop_until(db, rows, self.bytes_per_miner)

    def _prune_total(self, db: sqlite3.Connection) -> None:
        """The network-wide caps: fingerprints beyond what the copy index reads, then the total
        byte budget (oldest rows of any miner, FAD frames first)."""
        db.execute(
            "DELETE FROM fingerprints WHERE id NOT IN "
            "(SELECT id FROM fingerprints ORDER BY id DESC LIMIT ?)",
            (FINGERPRINTS_KEPT,),
        )
        if sum(_table_bytes(db)) <= self.bytes_total:
            return
        rows = db.execute(
            "SELECT 'embeddings', id, kind, LENGTH(data) FROM embeddings "
            "UNION ALL SELECT 'fingerprints', id, 'fingerprint', LENGTH(data) FROM fingerprints"
        ).fetchall()
        _drop_until(db, rows, self.bytes_total)


def _table_bytes(db: sqlite3.Connection) -> tuple[int, ...]:
    return tuple(
        int(db.execute(f"SELECT COALESCE(SUM(LENGTH(data)), 0) FROM {t}").fetchone()[0])
        for t in _TABLES
    )


def _keep_newest(db: sqlite3.Connection, table: str, where: str, params: tuple, keep: int) -> None:
    db.execute(
        f"DELETE FROM {table} WHERE {where} AND id NOT IN "
        f"(SELECT id FROM {table} WHERE {where} ORDER BY id DESC LIMIT ?)",
        (*params, *params, keep),
    )


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
