"""Customer jobs: accept with an atomic credit charge, lease to validators, finish, expire.

Credits leave the account in the same transaction that creates the job, through one conditional
UPDATE (`credits = credits - c WHERE credits >= c`): the database, not the application, decides
who wins under concurrency, on SQLite (writers serialised by BEGIN IMMEDIATE) and PostgreSQL (row
lock, predicate re-checked after the wait) alike. A refund is guarded by a `refunded` flag flipped
by its own conditional UPDATE, so it happens at most once whatever races it.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from loguru import logger
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuneforge.api import stored
from tuneforge.api.accounts import KeyIdentity, new_id
from tuneforge.api.audio_owners import bind_job_audio, record_upload
from tuneforge.api.db import Database, changed
from tuneforge.api.models import (
    AUDIO_FOR_JOB,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_PROCESSING,
    JOB_QUEUED,
    Account,
    GenerationRequest,
    IdempotencyKey,
    Track,
    utcnow,
)
from tuneforge.api.schemas import GenerateRequest, JobResult
from tuneforge.api.storage import AudioStore, StagedUpload
from tuneforge.errors import TuneForgeError
from tuneforge.protocol import SEED_LIMIT, MusicGenerationSynapse
from tuneforge.publication import content_of

EXPIRED_ERROR = "Job expired before a validator delivered it; credits refunded."


class InsufficientCredits(TuneForgeError):
    status = 402
    code = "insufficient_credits"

    def __init__(self, needed: int, available: int) -> None:
        self.needed = needed
        self.available = available
        super().__init__(
            f"Insufficient credits. You need {needed} credits but have {available} remaining."
        )


class JobNotFound(TuneForgeError):
    status = 404
    code = "job_not_found"
    public_detail = "Request not found"  # never echo an id the caller may not own


class JobConflict(TuneForgeError):
    status = 409
    code = "job_conflict"


class MissingAudio(TuneForgeError):
    status = 400
    code = "missing_audio"


def credits_for(duration_seconds: float) -> int:
    """ceil(duration / 3) credits per track (API.md "Credits"); 15 s -> 5."""
    return max(1, math.ceil(duration_seconds / 3 - 1e-9))


class IdempotencyConflict(TuneForgeError):
    status = 409
    code = "idempotency_conflict"


# How long an Idempotency-Key is remembered (the contract's 24 h).
IDEMPOTENCY_TTL = timedelta(hours=24)


def body_fingerprint(body: GenerateRequest) -> str:
    """SHA-256 of the request as parsed (key order and whitespace do not matter)."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Accepted:
    request_id: str
    credits_charged: int
    credits_remaining: int
    status: str = JOB_QUEUED
    replayed: bool = False


@dataclass(frozen=True)
class SweepReport:
    expired: int
    requeued: int


FinishHook = Callable[[Session, str, str, datetime], None]


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"


class JobService:
    def __init__(
        self,
        db: Database,
        store: AudioStore,
        lease_s: float,
        deadline_s: float,
        on_finished: FinishHook | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.lease_s = lease_s
        self.deadline_s = deadline_s
        # Called inside the transaction that ends a job (queues its webhook, atomically).
        self.on_finished: FinishHook = on_finished or (lambda _s, _id, _status, _now: None)

    def accept(
        self,
        identity: KeyIdentity,
        body: GenerateRequest,
        idempotency_key: str | None = None,
        now: datetime | None = None,
    ) -> Accepted:
        """Charge credits and queue the job in one transaction, or raise InsufficientCredits.

        With an `idempotency_key`, a second call with the same key and body within
        IDEMPOTENCY_TTL returns the first job (`replayed`) and charges nothing; a different body
        raises IdempotencyConflict. The key row is inserted in the charging transaction under a
        primary key, so of concurrent first calls exactly one commits and charges: the others
        roll back (their charge with them) and replay it.
        """
        now = now or utcnow()
        fingerprint = body_fingerprint(body)
        for _ in range(3):
            try:
                return self._accept_once(identity, body, idempotency_key, fingerprint, now)
            except IntegrityError:
                if idempotency_key is None:
                    raise
                # Lost the race for the key: the winner has committed; replay it.
                continue
            except InsufficientCredits:
                # A concurrent first call may have spent the credits on this very key.
                if idempotency_key is not None:
                    with self.db.write() as session:
                        replay = self._replay(
                            session, identity.account_id, idempotency_key, fingerprint, now
                        )
                    if replay is not None:
                        return replay
                raise
        raise IdempotencyConflict("the Idempotency-Key is being used by a concurrent request")

    def _accept_once(
        self,
        identity: KeyIdentity,
        body: GenerateRequest,
        idempotency_key: str | None,
        fingerprint: str,
        now: datetime,
    ) -> Accepted:
        challenge = MusicGenerationSynapse(
            **content_of(body.model_dump()),
            seed=secrets.randbelow(SEED_LIMIT),  # a placeholder: miners get their own (D50)
        )
        cost = credits_for(body.duration_seconds) * body.variants
        with self.db.write() as session:
            if idempotency_key is not None:
                replay = self._replay(
                    session, identity.account_id, idempotency_key, fingerprint, now
                )
                if replay is not None:
                    return replay
            remaining = session.execute(
                update(Account)
                .where(Account.id == identity.account_id, Account.credits >= cost)
                .values(credits=Account.credits - cost)
                .returning(Account.credits)
            ).scalar_one_or_none()
            if remaining is None:
                available = session.scalar(
                    select(Account.credits).where(Account.id == identity.account_id)
                )
                raise InsufficientCredits(cost, int(available or 0))
            request_id = new_id("req")
            session.add(
                GenerationRequest(
                    id=request_id,
                    account_id=identity.account_id,
                    api_key_id=identity.key_id,
                    status=JOB_QUEUED,
                    challenge=challenge.model_dump(mode="json"),
                    duration_seconds=body.duration_seconds,
                    credits_charged=cost,
                    refunded=False,
                    created_at=now,
                    updated_at=now,
                    deadline_at=now + timedelta(seconds=self.deadline_s),
                    attempts=0,
                    variants=body.variants,
                    credits_refunded=0,
                    callback_url=body.callback_url,
                )
            )
            if idempotency_key is not None:
                session.flush()  # the job row first: the key row refers to it
                session.add(
                    IdempotencyKey(
                        account_id=identity.account_id,
                        key=idempotency_key,
                        body_sha256=fingerprint,
                        request_id=request_id,
                        created_at=now,
                    )
                )
        logger.info("job {} accepted for {} ({} credits)", request_id, identity.account_id, cost)
        return Accepted(request_id, cost, int(remaining))

    def _replay(
        self, session: Session, account_id: str, key: str, fingerprint: str, now: datetime
    ) -> Accepted | None:
        """The job an unexpired key already made (None if none), or IdempotencyConflict."""
        row = session.get(IdempotencyKey, (account_id, key))
        if row is None:
            return None
        if row.created_at <= now - IDEMPOTENCY_TTL:
            session.delete(row)  # expired: the key may be used afresh
            session.flush()
            return None
        if row.body_sha256 != fingerprint:
            raise IdempotencyConflict(
                "This Idempotency-Key was used with a different request body."
            )
        job = session.get(GenerationRequest, row.request_id)
        credits = session.scalar(select(Account.credits).where(Account.id == account_id))
        assert job is not None  # written in the same transaction as the key
        return Accepted(
            job.id, job.credits_charged, int(credits or 0), status=job.status, replayed=True
        )

    def status(self, account_id: str, request_id: str) -> dict[str, Any]:
        """The job as its owner sees it; JobNotFound for unknown ids and other accounts' jobs."""
        with self.db.read() as session:
            job = session.get(GenerationRequest, request_id)
            if job is None or job.account_id != account_id:
                raise JobNotFound(request_id)
            tracks = session.scalars(
                select(Track).where(Track.request_id == request_id).order_by(Track.created_at)
            ).all()
        return status_view(job, tracks)

    def _refund_and_fail(self, session: Session, job_id: str, error: str, now: datetime) -> bool:
        if not self._fail_and_refund(session, job_id, error, now):
            return False
        self.on_finished(session, job_id, JOB_FAILED, now)
        return True

    def _fail_and_refund(self, session: Session, job_id: str, error: str, now: datetime) -> bool:
        failed = changed(
            session,
            update(GenerationRequest)
            .where(
                GenerationRequest.id == job_id,
                GenerationRequest.status.in_([JOB_QUEUED, JOB_PROCESSING]),
            )
            .values(status=JOB_FAILED, error=error, completed_at=now, updated_at=now),
        )
        if failed != 1:
            return False
        refund = session.execute(
            update(GenerationRequest)
            .where(GenerationRequest.id == job_id, GenerationRequest.refunded.is_(False))
            .values(refunded=True)
            .returning(GenerationRequest.account_id, GenerationRequest.credits_charged)
        ).first()
        if refund is None:
            return False
        session.execute(
            update(Account)
            .where(Account.id == refund[0])
            .values(credits=Account.credits + refund[1])
        )
        logger.info("job {} failed ({}); refunded {} credits", job_id, error, refund[1])
        return True

    def sweep(self, now: datetime | None = None) -> SweepReport:
        """Fail+refund jobs past their deadline; return jobs with lapsed leases to the queue."""
        now = now or utcnow()
        with self.db.write() as session:
            overdue = session.scalars(
                select(GenerationRequest.id).where(
                    GenerationRequest.status.in_([JOB_QUEUED, JOB_PROCESSING]),
                    GenerationRequest.deadline_at <= now,
                )
            ).all()
            expired = sum(
                self._refund_and_fail(session, job_id, EXPIRED_ERROR, now) for job_id in overdue
            )
            requeued = changed(
                session,
                update(GenerationRequest)
                .where(
                    GenerationRequest.status == JOB_PROCESSING,
                    GenerationRequest.lease_expires_at <= now,
                )
                .values(
                    status=JOB_QUEUED, lease_holder=None, lease_expires_at=None, updated_at=now
                ),
            )
        if expired or requeued:
            logger.info(
                "sweep: {} jobs expired and refunded, {} returned to the queue", expired, requeued
            )
        return SweepReport(expired=expired, requeued=requeued)

    def claim(
        self, validator_hotkey: str, max_jobs: int, now: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Lease up to `max_jobs` queued jobs, oldest first, to one validator."""
        now = now or utcnow()
        self.sweep(now)
        claimed: list[dict[str, Any]] = []
        with self.db.write() as session:
            candidates = session.scalars(
                select(GenerationRequest)
                .where(GenerationRequest.status == JOB_QUEUED, GenerationRequest.deadline_at > now)
                .order_by(GenerationRequest.created_at)
                .limit(max_jobs)
                .with_for_update(skip_locked=True)
            ).all()
            for job in candidates:
                lease_until = min(now + timedelta(seconds=self.lease_s), job.deadline_at)
                took = changed(
                    session,
                    update(GenerationRequest)
                    .where(GenerationRequest.id == job.id, GenerationRequest.status == JOB_QUEUED)
                    .values(
                        status=JOB_PROCESSING,
                        lease_holder=validator_hotkey,
                        lease_expires_at=lease_until,
                        attempts=GenerationRequest.attempts + 1,
                        updated_at=now,
                    ),
                )
                if took == 1:
                    claimed.append(
                        {
                            "request_id": job.id,
                            "challenge": job.challenge,
                            "variants": job.variants,
                            "lease_expires_at": iso(lease_until),
                            "deadline_at": iso(job.deadline_at),
                        }
                    )
        if claimed:
            logger.info("{} jobs leased to {}", len(claimed), validator_hotkey)
        return claimed

    def submit_result(
        self, validator_hotkey: str, request_id: str, result: JobResult, now: datetime | None = None
    ) -> dict[str, Any]:
        """Complete (or fail and refund) a job leased to this validator.

        The job row is locked (FOR UPDATE; SQLite writers are serialised by BEGIN IMMEDIATE) and
        the final status is set by a conditional UPDATE on `status = processing`, so a deadline
        sweep and a result arriving together end either completed or failed+refunded, never both.
        """
        now = now or utcnow()
        with self.db.write() as session:
            job = session.scalar(
                select(GenerationRequest)
                .where(GenerationRequest.id == request_id)
                .with_for_update()
            )
            if job is None:
                raise JobNotFound(request_id)
            if job.lease_holder != validator_hotkey:
                raise JobConflict("this job is not leased to you")
            if job.status == JOB_COMPLETED:
                # A retry of a delivered result: answer as the first time.
                ids = session.scalars(select(Track.id).where(Track.request_id == request_id)).all()
                return {"request_id": request_id, "status": job.status, "track_ids": list(ids)}
            if job.status != JOB_PROCESSING:
                raise JobConflict(f"the job is {job.status}")
            if result.error is not None or not result.tracks:
                self._refund_and_fail(
                    session, request_id, result.error or "no tracks delivered", now
                )
                return {"request_id": request_id, "status": JOB_FAILED, "track_ids": []}
            for item in result.tracks:
                if not self.store.has(item.audio_sha256):
                    raise MissingAudio(
                        f"audio {item.audio_sha256} has not been uploaded: "
                        f"PUT /api/v1/validator/audio/{item.audio_sha256} first"
                    )
                bind_job_audio(session, item.audio_sha256, validator_hotkey, request_id)
            track_ids = []
            for item in result.tracks:
                track = Track(
                    id=new_id("trk"),
                    request_id=request_id,
                    validator_hotkey=validator_hotkey,
                    created_at=now,
                    **item.model_dump(exclude={"fingerprint"}),
                )
                session.add(track)
                track_ids.append(track.id)
            completed = changed(
                session,
                update(GenerationRequest)
                .where(
                    GenerationRequest.id == request_id,
                    GenerationRequest.status == JOB_PROCESSING,
                    GenerationRequest.lease_holder == validator_hotkey,
                )
                .values(status=JOB_COMPLETED, completed_at=now, updated_at=now, error=None)
                .execution_options(synchronize_session=False),
            )
            if completed != 1:
                # Lost to the deadline sweep: the exception rolls the tracks back.
                raise JobConflict("the job expired before the result arrived")
            self._refund_missing_variants(session, job, len(track_ids))
            self.on_finished(session, request_id, JOB_COMPLETED, now)
        logger.info(
            "job {} completed by {} with {} tracks", request_id, validator_hotkey, len(track_ids)
        )
        return {"request_id": request_id, "status": JOB_COMPLETED, "track_ids": track_ids}

    def _refund_missing_variants(
        self, session: Session, job: GenerationRequest, delivered: int
    ) -> None:
        """Give back the credits of variants no miner delivered (each costs 1/variants)."""
        missing = job.variants - delivered
        if missing <= 0:
            return
        amount = job.credits_charged // job.variants * missing
        session.execute(
            update(GenerationRequest)
            .where(GenerationRequest.id == job.id)
            .values(credits_refunded=amount)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Account)
            .where(Account.id == job.account_id)
            .values(credits=Account.credits + amount)
        )
        logger.info(
            "job {}: {} of {} variants missing; refunded {} credits",
            job.id,
            missing,
            job.variants,
            amount,
        )

    def store_audio(self, validator_hotkey: str, upload: StagedUpload) -> bool:
        """Adopt a job's streamed WAV and record who uploaded it; True if it was stored."""
        existed = self.store.has(upload.sha256)
        with self.db.write() as session:
            upload.commit()
            record_upload(session, upload.sha256, validator_hotkey, AUDIO_FOR_JOB)
        return existed

    def queue_depth(self) -> int:
        with self.db.read() as session:
            return int(
                session.scalar(select(func.count()).where(GenerationRequest.status == JOB_QUEUED))
                or 0
            )

    def owned_track_audio(self, account_id: str, track_id: str) -> str | None:
        """The audio hash of a customer track owned by `account_id`, else None."""
        with self.db.read() as session:
            row = session.execute(
                select(Track.audio_sha256)
                .join(GenerationRequest, GenerationRequest.id == Track.request_id)
                .where(Track.id == track_id, GenerationRequest.account_id == account_id)
            ).first()
        return None if row is None else row[0]


def status_view(job: GenerationRequest, tracks: Sequence[Track]) -> dict[str, Any]:
    """The status body (API.md), tracks ranked best first; also the webhook body."""
    ranked = sorted(
        tracks,
        key=lambda t: (t.final_score if t.final_score is not None else -1.0, t.id),
        reverse=True,
    )
    return {
        "request_id": job.id,
        "status": job.status,
        "created_at": iso(job.created_at),
        "completed_at": iso(job.completed_at),
        "error": job.error,
        "credits_charged": job.credits_charged,
        "refunded": job.refunded,
        "variants": job.variants,
        "credits_refunded": job.credits_charged if job.refunded else job.credits_refunded,
        "tracks": [track_view(t) for t in ranked],
    }


def track_view(track: Track) -> dict[str, Any]:
    return {
        "track_id": track.id,
        "audio_url": f"/api/v1/music/audio/{track.id}.wav",
        "duration_seconds": track.duration_seconds,
        "sample_rate": track.sample_rate,
        "miner_hotkey": track.miner_hotkey,
        "score": stored.number(track.final_score),
        "composite": stored.number(track.composite),
        "score_breakdown": stored.scores(track.score_breakdown),
        "penalties": stored.scores(track.penalties),
        "generation_ms": track.generation_ms,
        "excluded": stored.reasons(track.excluded),
        "degraded": bool(track.degraded),
    }
