"""Customer votes on their own tracks, and the feed validators train the preference head on.

A vote is `up`/`down` on one track, or `compare` (winner over loser) on two tracks of one
request. One vote per pair per account, held by a unique constraint: repeating the same vote is
answered with the first one (idempotent), a different vote on the same pair is a conflict.
Validators read every vote in insertion order with a cursor; a voted track's audio becomes
downloadable by signed neurons (docs/api.md says so to customers), nothing else of the account.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from tuneforge.api.db import Database
from tuneforge.api.models import (
    VOTE_COMPARE,
    GenerationRequest,
    Track,
    Vote,
    utcnow,
)
from tuneforge.api.stored import iso
from tuneforge.core.errors import TuneForgeError

MAX_FEED_PAGE = 1000


class VoteNotFound(TuneForgeError):
    """The track is unknown or belongs to another account (404, like every foreign resource)."""

    status = 404
    code = "track_not_found"
    public_detail = "Track not found"


class VoteConflict(TuneForgeError):
    """The account already voted differently on this pair (409)."""

    status = 409
    code = "vote_conflict"


class VoteInvalid(TuneForgeError):
    """The two tracks of a comparison are not of the same request (400)."""

    status = 400
    code = "vote_invalid"


@dataclass(frozen=True)
class VoteOutcome:
    body: dict[str, Any]
    created: bool


def _pseudonym(account_id: str) -> str:
    # Validators may weigh voters (one account, many votes) without learning who they are.
    return "voter_" + hashlib.sha256(account_id.encode()).hexdigest()[:16]


def vote_view(vote: Vote) -> dict[str, Any]:
    body: dict[str, Any] = {
        "vote_id": f"vote_{vote.pk}",
        "kind": vote.kind,
        "request_id": vote.request_id,
        "created_at": iso(vote.created_at),
    }
    if vote.kind == VOTE_COMPARE:
        body.update(winner=vote.winner_track_id, loser=vote.loser_track_id)
    else:
        body.update(track_id=vote.track_id, vote=vote.kind)
    return body


def _track_ref(track: Track) -> dict[str, Any]:
    return {
        "track_id": track.id,
        "audio_url": f"/api/v1/music/audio/{track.id}.wav",
        "miner_hotkey": track.miner_hotkey,
        "duration_seconds": track.duration_seconds,
        "sample_rate": track.sample_rate,
        "audio_sha256": track.audio_sha256,
    }


class VoteService:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _owned(self, account_id: str, track_ids: list[str]) -> dict[str, str]:
        """{track_id: request_id} of those tracks the account owns."""
        with self.db.read() as session:
            rows = session.execute(
                select(Track.id, Track.request_id)
                .join(GenerationRequest, GenerationRequest.id == Track.request_id)
                .where(Track.id.in_(track_ids), GenerationRequest.account_id == account_id)
            ).all()
        return {row[0]: row[1] for row in rows}

    def _record(self, candidate: Vote, same: Any) -> VoteOutcome:
        """Insert, or answer with the existing vote on the pair (same -> idempotent)."""
        for _ in range(2):
            with self.db.read() as session:
                existing = session.scalar(
                    select(Vote).where(
                        Vote.account_id == candidate.account_id,
                        Vote.pair_key == candidate.pair_key,
                    )
                )
            if existing is not None:
                if not same(existing):
                    raise VoteConflict("You already voted differently on this track or pair.")
                return VoteOutcome(vote_view(existing), created=False)
            try:
                with self.db.write() as session:
                    session.add(candidate)
                    session.flush()
                    return VoteOutcome(vote_view(candidate), created=True)
            except IntegrityError:
                # A concurrent identical request won the unique constraint: read it back.
                candidate = Vote(**{k: getattr(candidate, k) for k in _FIELDS})
        raise VoteConflict("concurrent votes on the same pair")

    def vote(self, account_id: str, track_id: str, kind: str) -> VoteOutcome:
        owned = self._owned(account_id, [track_id])
        if track_id not in owned:
            raise VoteNotFound(track_id)
        candidate = Vote(
            account_id=account_id,
            request_id=owned[track_id],
            pair_key=track_id,
            kind=kind,
            track_id=track_id,
            created_at=utcnow(),
        )
        return self._record(candidate, lambda v: v.kind == kind)

    def compare(self, account_id: str, winner: str, loser: str) -> VoteOutcome:
        owned = self._owned(account_id, [winner, loser])
        if winner not in owned or loser not in owned:
            raise VoteNotFound(winner if winner not in owned else loser)
        if owned[winner] != owned[loser]:
            raise VoteInvalid("winner and loser must be tracks of the same request")
        candidate = Vote(
            account_id=account_id,
            request_id=owned[winner],
            pair_key="|".join(sorted((winner, loser))),
            kind=VOTE_COMPARE,
            winner_track_id=winner,
            loser_track_id=loser,
            created_at=utcnow(),
        )
        return self._record(candidate, lambda v: v.winner_track_id == winner)

    def feed(self, after: int, limit: int) -> dict[str, Any]:
        """Votes with pk > `after`, oldest first, each with its tracks' audio URLs."""
        limit = max(1, min(limit, MAX_FEED_PAGE))
        with self.db.read() as session:
            votes = session.scalars(
                select(Vote).where(Vote.pk > after).order_by(Vote.pk).limit(limit)
            ).all()
            ids = {
                t
                for v in votes
                for t in (v.track_id, v.winner_track_id, v.loser_track_id)
                if t is not None
            }
            tracks = {t.id: t for t in session.scalars(select(Track).where(Track.id.in_(ids)))}
        items = []
        for vote in votes:
            item = vote_view(vote)
            item["voter"] = _pseudonym(vote.account_id)
            for field in ("track_id", "winner", "loser"):
                track_id = item.get(field)
                if track_id in tracks:
                    item[field if field != "track_id" else "track"] = _track_ref(tracks[track_id])
            item.pop("track_id", None)
            items.append(item)
        next_cursor = str(votes[-1].pk) if len(votes) == limit else None
        return {"preferences": items, "next_cursor": next_cursor}

    def voted_track_audio(self, track_id: str) -> str | None:
        """The audio hash of a customer track someone voted on (validators may fetch it)."""
        with self.db.read() as session:
            row = session.execute(
                select(Track.audio_sha256)
                .join(
                    Vote,
                    or_(
                        Vote.track_id == Track.id,
                        Vote.winner_track_id == Track.id,
                        Vote.loser_track_id == Track.id,
                    ),
                )
                .where(Track.id == track_id)
                .limit(1)
            ).first()
        return None if row is None else row[0]


_FIELDS = (
    "account_id",
    "request_id",
    "pair_key",
    "kind",
    "track_id",
    "winner_track_id",
    "loser_track_id",
    "created_at",
)
