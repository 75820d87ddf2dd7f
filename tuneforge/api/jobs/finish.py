"""Ending a customer job: a validator's result completes it, a failure fails it and refunds.

The job row is locked (FOR UPDATE; SQLite writers are serialised by BEGIN IMMEDIATE) and the
final status is set by a conditional UPDATE on `status = processing`, so a deadline sweep and a
result arriving together end either completed or failed+refunded, never both. A refund is
guarded by a `refunded` flag flipped by its own conditional UPDATE, so it happens at most once
whatever races it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tuneforge.api.accounts import new_id
from tuneforge.api.audio_owners import bind_job_audio, record_upload
from tuneforge.api.db import Database, changed
from tuneforge.api.jobs.errors import JobConflict, JobNotFound, MissingAudio
from tuneforge.api.models import (
    AUDIO_FOR_JOB,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_PROCESSING,
    JOB_QUEUED,
    Account,
    GenerationRequest,
    Track,
)
from tuneforge.api.schemas import JobResult
from tuneforge.api.storage import AudioStore, StagedUpload

# Called inside the transaction that ends a job (queues its webhook, atomically).
FinishHook = Callable[[Session, str, str, datetime], None]


def refund_and_fail(
    session: Session, job_id: str, error: str, now: datetime, on_finished: FinishHook
) -> bool:
    """Fail an unfinished job and refund it once; True if this call did it."""
    if not _fail_and_refund(session, job_id, error, now):
        return False
    on_finished(session, job_id, JOB_FAILED, now)
    return True


def _fail_and_refund(session: Session, job_id: str, error: str, now: datetime) -> bool:
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
        update(Account).where(Account.id == refund[0]).values(credits=Account.credits + refund[1])
    )
    logger.info("job {} failed ({}); refunded {} credits", job_id, error, refund[1])
    return True


def submit_result(
    db: Database,
    store: AudioStore,
    on_finished: FinishHook,
    validator_hotkey: str,
    request_id: str,
    result: JobResult,
    now: datetime,
) -> dict[str, Any]:
    """Complete (or fail and refund) a job leased to this validator."""
    with db.write() as session:
        job = session.scalar(
            select(GenerationRequest).where(GenerationRequest.id == request_id).with_for_update()
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
            error = result.error or "no tracks delivered"
            refund_and_fail(session, request_id, error, now, on_finished)
            return {"request_id": request_id, "status": JOB_FAILED, "track_ids": []}
        track_ids = _add_tracks(session, store, validator_hotkey, request_id, result, now)
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
        _refund_missing_variants(session, job, len(track_ids))
        on_finished(session, request_id, JOB_COMPLETED, now)
    logger.info(
        "job {} completed by {} with {} tracks", request_id, validator_hotkey, len(track_ids)
    )
    return {"request_id": request_id, "status": JOB_COMPLETED, "track_ids": track_ids}


def _add_tracks(
    session: Session,
    store: AudioStore,
    validator_hotkey: str,
    request_id: str,
    result: JobResult,
    now: datetime,
) -> list[str]:
    """The result's tracks as rows, each bound to its uploaded audio; their new ids."""
    for item in result.tracks:
        if not store.has(item.audio_sha256):
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
    return track_ids


def _refund_missing_variants(session: Session, job: GenerationRequest, delivered: int) -> None:
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
        update(Account).where(Account.id == job.account_id).values(credits=Account.credits + amount)
    )
    logger.info(
        "job {}: {} of {} variants missing; refunded {} credits",
        job.id,
        missing,
        job.variants,
        amount,
    )


def store_audio(db: Database, validator_hotkey: str, upload: StagedUpload) -> None:
    """Adopt a job's streamed WAV and record who uploaded it, in one transaction."""
    with db.write() as session:
        upload.commit()
        record_upload(session, upload.sha256, validator_hotkey, AUDIO_FOR_JOB)
