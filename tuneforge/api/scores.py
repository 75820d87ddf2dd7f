"""Published validator rounds: idempotent publication, audio upload, leaderboards and export."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tuneforge.api import stored
from tuneforge.api.accounts import new_id
from tuneforge.api.audio_owners import AudioNotYours, is_job_audio, record_upload, uploaded_by
from tuneforge.api.db import Database
from tuneforge.api.models import AUDIO_FOR_ROUND, Round, ScoreResult, utcnow
from tuneforge.api.schemas import PublishRound
from tuneforge.api.storage import AudioStore, StagedUpload
from tuneforge.api.stored import iso
from tuneforge.core.errors import TuneForgeError

EMA_ALPHA = 0.1  # leaderboard EMA of final scores, newest weighted by 10%
MAX_EXPORT_LIMIT = 500
MAX_BEST_LIMIT = 100
# Row ids are signed 64-bit on PostgreSQL; a cursor never holds more (a bigger one 500'd there).
MAX_CURSOR_PK = 2**63 - 1
_CURSOR_PK = re.compile(r"^[0-9]{1,19}$")


class _TrackTaken(Exception):
    """A track id of the round is already stored (by this round's twin, or by another round)."""

    def __init__(self, track_id: str) -> None:
        super().__init__(track_id)
        self.track_id = track_id


class ScoresNotFound(TuneForgeError):
    status = 404
    code = "not_found"


class ScoresConflict(TuneForgeError):
    status = 409
    code = "scores_conflict"


class BadAudio(TuneForgeError):
    status = 400
    code = "bad_audio"


class BadCursor(TuneForgeError):
    status = 400
    code = "bad_cursor"
    public_detail = "Invalid cursor"


def content_hash(body: PublishRound) -> str:
    payload = body.model_dump(mode="json")
    for result in payload["results"]:
        # Fields added after 0001 hash only when set, so a retry of a round published before
        # they existed still matches its first publication.
        for name, default in (("excluded", {}), ("degraded", False)):
            if result.get(name) == default:
                del result[name]
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def encode_cursor(pk: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{pk}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The row id inside a cursor; BadCursor unless it is `v1:<0..MAX_CURSOR_PK>`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, pk = raw.split(":", 1)
        if version != "v1" or not _CURSOR_PK.match(pk):
            raise ValueError(version)
        value = int(pk)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise BadCursor("invalid cursor") from exc
    if value > MAX_CURSOR_PK:
        raise BadCursor("invalid cursor")
    return value


def result_view(result: ScoreResult, round_: Round) -> dict[str, Any]:
    return {
        "track_id": result.track_id,
        "final_score": stored.number(result.final_score),
        "composite": stored.number(result.composite),
        "score_breakdown": stored.scores(result.score_breakdown),
        "penalties": stored.scores(result.penalties),
        "excluded": stored.reasons(result.excluded),
        "degraded": bool(result.degraded),
        "miner_uid": result.miner_uid,
        "miner_hotkey": result.miner_hotkey,
        "validator_hotkey": result.validator_hotkey,
        "round_id": round_.round_id,
        "block": round_.block,
        "challenge": stored.json_value(round_.challenge),
        "genre": result.genre,
        "generation_ms": result.generation_ms,
        "duration_seconds": result.duration_seconds,
        "sample_rate": result.sample_rate,
        "audio_sha256": result.audio_sha256,
        "audio_available": result.audio_present,
        "audio_url": f"/api/v1/music/audio/{result.track_id}.wav",
        "created_at": iso(result.created_at),
    }


class ScoreService:
    def __init__(self, db: Database, store: AudioStore) -> None:
        self.db = db
        self.store = store

    def _existing(
        self, validator_hotkey: str, body: PublishRound, digest: str
    ) -> dict[str, Any] | None:
        with self.db.read() as session:
            round_ = session.scalar(
                select(Round).where(
                    Round.validator_hotkey == validator_hotkey, Round.round_id == body.round_id
                )
            )
            if round_ is None:
                return None
            if round_.content_sha256 != digest:
                raise ScoresConflict(
                    f"round {body.round_id} was already published with different content"
                )
            ids = session.scalars(
                select(ScoreResult.track_id)
                .where(ScoreResult.round_pk == round_.pk)
                .order_by(ScoreResult.pk)
            ).all()
        return {"id": round_.public_id, "round_id": round_.round_id, "track_ids": list(ids)}

    def publish(self, validator_hotkey: str, body: PublishRound) -> tuple[bool, dict[str, Any]]:
        """Store a round once; (created, ids). Same content again -> (False, same ids)."""
        digest = content_hash(body)
        existing = self._existing(validator_hotkey, body, digest)
        if existing is not None:
            return False, existing
        genre = body.challenge.get("genre")
        genre = genre[:64] if isinstance(genre, str) else None
        now = utcnow()
        try:
            with self.db.write() as session:
                taken = session.scalars(
                    select(ScoreResult.track_id).where(
                        ScoreResult.track_id.in_([r.track_id for r in body.results])
                    )
                ).first()
                if taken is not None:
                    raise _TrackTaken(taken)
                present: dict[str, bool] = {}
                for sha256 in {r.audio_sha256 for r in body.results}:
                    if is_job_audio(session, sha256):
                        raise AudioNotYours(
                            409, f"audio_sha256 {sha256} is a customer's audio, not a round's"
                        )
                    # Attached now only if this validator already uploaded these bytes for a
                    # round; otherwise when it PUTs them for this track.
                    present[sha256] = uploaded_by(
                        session, sha256, validator_hotkey, AUDIO_FOR_ROUND
                    ) and self.store.has(sha256)
                round_ = Round(
                    public_id=new_id("rnd"),
                    validator_hotkey=validator_hotkey,
                    round_id=body.round_id,
                    block=body.block,
                    challenge=body.challenge,
                    content_sha256=digest,
                    created_at=now,
                )
                session.add(round_)
                session.flush()
                for item in body.results:
                    session.add(
                        ScoreResult(
                            round_pk=round_.pk,
                            validator_hotkey=validator_hotkey,
                            genre=genre,
                            audio_present=present[item.audio_sha256],
                            created_at=now,
                            **item.model_dump(exclude={"fingerprint"}),
                        )
                    )
                public_id = round_.public_id
        except (IntegrityError, _TrackTaken) as exc:
            # A concurrent identical publication won the race (its rows are what we collided
            # with): answer as a retry. Anything else really is a conflict.
            existing = self._existing(validator_hotkey, body, digest)
            if existing is not None:
                return False, existing
            if isinstance(exc, _TrackTaken):
                raise ScoresConflict(f"track_id {exc.track_id} was already published") from None
            raise
        logger.info(
            "round {} of {} published with {} results",
            body.round_id,
            validator_hotkey,
            len(body.results),
        )
        track_ids = [r.track_id for r in body.results]
        return True, {"id": public_id, "round_id": body.round_id, "track_ids": track_ids}

    def expected_audio(self, validator_hotkey: str, track_id: str) -> str:
        """The audio_sha256 this validator published for `track_id` (ScoresNotFound if none):
        what a PUT of its audio must hash to, known before the body is read."""
        with self.db.read() as session:
            digest = session.scalar(
                select(ScoreResult.audio_sha256).where(
                    ScoreResult.track_id == track_id,
                    ScoreResult.validator_hotkey == validator_hotkey,
                )
            )
        if digest is None:
            raise ScoresNotFound("Track not found")
        return digest

    def attach_published_audio(
        self, validator_hotkey: str, track_id: str, upload: StagedUpload
    ) -> bool:
        """Store a published track's streamed WAV; True when newly attached. ScoresConflict
        when it hashes differently or is a customer's audio; BadAudio when not a WAV."""
        expected = self.expected_audio(validator_hotkey, track_id)
        if upload.sha256 != expected:
            raise ScoresConflict(
                f"body SHA-256 {upload.sha256} does not match the published audio_sha256 {expected}"
            )
        if not upload.is_wav:
            raise BadAudio("body is not a RIFF/WAVE file")
        with self.db.write() as session:
            if is_job_audio(session, expected):
                raise ScoresConflict("this audio is a customer's audio and cannot be published")
            upload.commit()
            record_upload(session, expected, validator_hotkey, AUDIO_FOR_ROUND)
            row = session.scalar(
                select(ScoreResult)
                .where(
                    ScoreResult.track_id == track_id,
                    ScoreResult.validator_hotkey == validator_hotkey,
                )
                .with_for_update()
            )
            if row is None or row.audio_present:
                return False
            row.audio_present = True
        return True

    def challenge_audio(self, track_id: str) -> str | None:
        with self.db.read() as session:
            row = session.execute(
                select(ScoreResult.audio_sha256, ScoreResult.audio_present).where(
                    ScoreResult.track_id == track_id
                )
            ).first()
        if row is None or not row[1]:
            return None
        return row[0]

    def best(self, limit: int, genre: str | None) -> list[dict[str, Any]]:
        query = (
            select(ScoreResult, Round)
            .join(Round, Round.pk == ScoreResult.round_pk)
            .order_by(ScoreResult.final_score.desc(), ScoreResult.pk.desc())
            .limit(min(limit, MAX_BEST_LIMIT))
        )
        if genre:
            query = query.where(ScoreResult.genre == genre)
        with self.db.read() as session:
            return [result_view(r, rd) for r, rd in session.execute(query).all()]

    def miners(self) -> list[dict[str, Any]]:
        """Leaderboard over all published results, best EMA first."""
        with self.db.read() as session:
            rows = session.execute(
                select(
                    ScoreResult.miner_hotkey,
                    ScoreResult.miner_uid,
                    ScoreResult.final_score,
                    ScoreResult.score_breakdown,
                    ScoreResult.created_at,
                ).order_by(ScoreResult.pk)
            ).all()
        board: dict[str, dict[str, Any]] = {}
        for hotkey, uid, stored_final, breakdown, created in rows:
            final = stored.number(stored_final)
            if final is None:
                continue  # a non-finite stored score (older versions accepted it) ranks nothing
            entry = board.setdefault(
                hotkey,
                {"count": 0, "sum": 0.0, "ema": None, "scorers": {}, "last": created, "uid": uid},
            )
            entry["count"] += 1
            entry["sum"] += final
            entry["ema"] = (
                final
                if entry["ema"] is None
                else (EMA_ALPHA * final + (1 - EMA_ALPHA) * entry["ema"])
            )
            entry["last"], entry["uid"] = created, uid
            for name, value in stored.scores(breakdown).items():
                # null (not measured) is skipped, never averaged in as zero; a scorer that was
                # never measured for this miner is served as null.
                total = entry["scorers"].setdefault(name, [0.0, 0])
                if value is not None:
                    total[0] += value
                    total[1] += 1
        leaderboard = [
            {
                "miner_hotkey": hotkey,
                "miner_uid": e["uid"],
                "tracks_scored": e["count"],
                "mean_final_score": e["sum"] / e["count"],
                "ema_final_score": e["ema"],
                "scorer_means": {
                    k: (v[0] / v[1] if v[1] else None) for k, v in sorted(e["scorers"].items())
                },
                "last_seen": iso(e["last"]),
            }
            for hotkey, e in board.items()
        ]
        leaderboard.sort(key=lambda item: item["ema_final_score"], reverse=True)
        return leaderboard

    def miner(self, hotkey: str, limit: int = 50) -> list[dict[str, Any]]:
        with self.db.read() as session:
            rows = session.execute(
                select(ScoreResult, Round)
                .join(Round, Round.pk == ScoreResult.round_pk)
                .where(ScoreResult.miner_hotkey == hotkey)
                .order_by(ScoreResult.pk.desc())
                .limit(limit)
            ).all()
        if not rows:
            raise ScoresNotFound("No results for this miner")
        return [result_view(r, rd) for r, rd in rows]

    def export(
        self, since: datetime | None, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        limit = max(1, min(limit, MAX_EXPORT_LIMIT))
        query = (
            select(ScoreResult, Round)
            .join(Round, Round.pk == ScoreResult.round_pk)
            .order_by(ScoreResult.pk)
            .limit(limit + 1)
        )
        if cursor:
            query = query.where(ScoreResult.pk > decode_cursor(cursor))
        if since is not None:
            query = query.where(ScoreResult.created_at >= since)
        with self.db.read() as session:
            rows = session.execute(query).all()
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1][0].pk) if len(rows) > limit else None
        return [result_view(r, rd) for r, rd in page], next_cursor
