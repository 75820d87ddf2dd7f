"""The network-wide copy index: every published track's fingerprint, and
`POST /api/v1/fingerprints/match` (hotkey signature + validator permit).

Rows live in the database (`track_fingerprints`: the fingerprint and its window codes); each
API process keeps a `CopyIndex` over the codes in memory and catches up from the database
(rows with a larger pk) before answering, so several workers agree without talking to each
other. The earliest indexed track of some audio is the original: matches are listed oldest
first, and a later copy is never reported as the original of an earlier track.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import anyio
import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import DateTime, Integer, LargeBinary, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from tuneforge.api import deps
from tuneforge.api.db import Database
from tuneforge.api.models import Base, utcnow
from tuneforge.api.openapi import HOTKEY_SECURITY, errors
from tuneforge.api.stored import iso
from tuneforge.scoring import fingerprint as fp
from tuneforge.scoring.copy_index import CopyIndex, stored_codes

MAX_MATCH_BATCH = 256
MAX_MATCHES_PER_CLIP = 4
CLIP_ID_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
_CATCH_UP_ROWS = 20_000  # rows read per catch-up query


class TrackFingerprint(Base):
    """One published track's fingerprint (a challenge round track or a customer-job track)."""

    __tablename__ = "track_fingerprints"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    track_id: Mapped[str] = mapped_column(String(64), unique=True)
    miner_hotkey: Mapped[str] = mapped_column(String(64), index=True)
    validator_hotkey: Mapped[str] = mapped_column(String(64))
    audio_sha256: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))  # "round" | "job"
    matrix: Mapped[bytes] = mapped_column(LargeBinary)  # fp.BANDS x frames uint8
    codes: Mapped[bytes] = mapped_column(LargeBinary)  # uint64 window codes
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


def fingerprint_field(value: str | None) -> str | None:
    """Pydantic validator for a wire `fingerprint`: decodable, or a 400."""
    if value is not None:
        try:
            fp.decode(value)
        except fp.BadFingerprint as exc:
            raise ValueError(str(exc)) from None
    return value


class MatchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=CLIP_ID_PATTERN)
    fingerprint: str = Field(max_length=fp.encoded_limit())

    _valid = field_validator("fingerprint")(fingerprint_field)


class MatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fingerprints: list[MatchQuery] = Field(min_length=1, max_length=MAX_MATCH_BATCH)


class FingerprintService:
    """Stores fingerprints and searches them; thread-safe (one lock around the index)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._index = CopyIndex(self._load)
        self._last_pk = 0

    def _load(self, pk: int) -> np.ndarray | None:
        with self.db.read() as session:
            row = session.get(TrackFingerprint, pk)
        if row is None:
            return None
        return np.frombuffer(row.matrix, dtype=np.uint8).reshape(fp.BANDS, -1)

    def add(
        self,
        track_id: str,
        miner_hotkey: str,
        validator_hotkey: str,
        audio_sha256: str,
        kind: str,
        encoded: str,
    ) -> bool:
        """Index one track (False if its id is already indexed: publication retries)."""
        matrix = fp.decode(encoded)
        row = TrackFingerprint(
            track_id=track_id,
            miner_hotkey=miner_hotkey,
            validator_hotkey=validator_hotkey,
            audio_sha256=audio_sha256,
            kind=kind,
            matrix=matrix.tobytes(),
            codes=stored_codes(matrix).astype("<u8").tobytes(),
            created_at=utcnow(),
        )
        try:
            with self.db.write() as session:
                session.add(row)
        except IntegrityError:
            return False
        return True

    def catch_up(self) -> int:
        """Read rows other processes (or this one) added since the last call into the index."""
        with self._lock:
            added = 0
            while True:
                with self.db.read() as session:
                    rows = session.execute(
                        select(TrackFingerprint.pk, TrackFingerprint.codes)
                        .where(TrackFingerprint.pk > self._last_pk)
                        .order_by(TrackFingerprint.pk)
                        .limit(_CATCH_UP_ROWS)
                    ).all()
                for pk, codes in rows:
                    self._index.add_codes(pk, np.frombuffer(codes, dtype="<u8"))
                    self._last_pk = pk
                added += len(rows)
                if len(rows) < _CATCH_UP_ROWS:
                    return added

    def indexed(self) -> int:
        return len(self._index)

    def match(self, queries: list[MatchQuery]) -> list[dict[str, Any]]:
        """Per query: the indexed tracks it copies, oldest first (the first is the original)."""
        self.catch_up()
        answers = []
        for query in queries:
            with self._lock:
                found = self._index.search(fp.decode(query.fingerprint))
            answers.append({"id": query.id, "matches": self._describe(found)})
        return answers

    def _describe(self, found: list[Any]) -> list[dict[str, Any]]:
        if not found:
            return []
        by_pk = {f.key: f.match for f in found}
        with self.db.read() as session:
            rows = session.scalars(
                select(TrackFingerprint).where(TrackFingerprint.pk.in_(list(by_pk)))
            ).all()
        rows = sorted(rows, key=lambda r: r.pk)[:MAX_MATCHES_PER_CLIP]
        return [
            {
                "track_id": r.track_id,
                "miner_hotkey": r.miner_hotkey,
                "validator_hotkey": r.validator_hotkey,
                "kind": r.kind,
                "created_at": iso(r.created_at),
                "similarity": by_pk[r.pk].similarity,
                "covered_seconds": by_pk[r.pk].covered_s,
                "offset_seconds": round(by_pk[r.pk].offset_s, 3),
                "semitones": by_pk[r.pk].semitones,
                "tempo": by_pk[r.pk].tempo,
            }
            for r in rows
        ]

    def index_tracks(self, validator_hotkey: str, kind: str, tracks: list[dict[str, Any]]) -> int:
        """Index the tracks of a publication that carry a fingerprint; returns how many."""
        added = 0
        for track in tracks:
            encoded = track.get("fingerprint")
            if not encoded:
                continue
            try:
                added += self.add(
                    track["track_id"],
                    track["miner_hotkey"],
                    validator_hotkey,
                    track["audio_sha256"],
                    kind,
                    encoded,
                )
            except fp.BadFingerprint as exc:  # validated at the edge already; belt and braces
                logger.warning("fingerprint of {} not indexed: {}", track.get("track_id"), exc)
        return added


router = APIRouter(prefix="/api/v1", tags=["validator"])


@router.post(
    "/fingerprints/match",
    responses=errors(401, 403),
    openapi_extra={"security": HOTKEY_SECURITY},
)
async def match(
    body: MatchRequest, request: Request, _hotkey: str = Depends(deps.validator)
) -> dict[str, Any]:
    """Batch of fingerprints -> the published tracks each one copies (oldest = original)."""
    service: FingerprintService = deps.context(request).fingerprints
    try:
        results = await anyio.to_thread.run_sync(service.match, body.fingerprints)
    except fp.BadFingerprint as exc:
        raise HTTPException(400, str(exc)) from None
    return {"results": results, "indexed_tracks": service.indexed()}
