"""Miners in the validator state: per-(uid, hotkey) EMA, query counters and last result."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tuneforge.validator.store.database import Database, json_default


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


class MinersRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> list[MinerRecord]:
        with self._db.read() as db:
            rows = db.execute(
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
        with self._db.read() as db:
            rows = db.execute("SELECT uid, hotkey, ema FROM miners").fetchall()
        return {(int(uid), str(hotkey)): float(ema) for uid, hotkey, ema in rows}

    def last_queried(self) -> dict[tuple[int, str], int]:
        with self._db.read() as db:
            rows = db.execute("SELECT uid, hotkey, last_queried_round FROM miners").fetchall()
        return {(int(uid), str(hotkey)): int(last) for uid, hotkey, last in rows}

    def record_round(
        self,
        round_number: int,
        results: Iterable[MinerRoundResult],
        emas: Mapping[tuple[int, str], float],
        queried_at: float,
    ) -> None:
        """Each queried miner's new EMA, one more round queried, and its last result."""
        with self._db.transaction() as db:
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
                        queried_at,
                        json.dumps(item.result, default=json_default),
                    ),
                )

    def forget_unregistered(self, registered: set[tuple[int, str]]) -> list[tuple[int, str]]:
        """Delete miners whose (uid, hotkey) is no longer registered and return them."""
        with self._db.transaction() as db:
            rows = db.execute("SELECT uid, hotkey FROM miners").fetchall()
            gone = [(int(u), str(h)) for u, h in rows if (int(u), str(h)) not in registered]
            db.executemany("DELETE FROM miners WHERE uid = ? AND hotkey = ?", gone)
        return gone
