"""Leasing customer jobs to validators: claims, oldest first, and the deadline sweep that
fails+refunds overdue jobs and returns lapsed leases to the queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from loguru import logger
from sqlalchemy import select, update

from tuneforge.api.db import Database, changed
from tuneforge.api.jobs.finish import FinishHook, refund_and_fail
from tuneforge.api.models import JOB_PROCESSING, JOB_QUEUED, GenerationRequest
from tuneforge.api.stored import iso

EXPIRED_ERROR = "Job expired before a validator delivered it; credits refunded."


@dataclass(frozen=True)
class SweepReport:
    expired: int
    requeued: int


def sweep(db: Database, on_finished: FinishHook, now: datetime) -> SweepReport:
    """Fail+refund jobs past their deadline; return jobs with lapsed leases to the queue."""
    with db.write() as session:
        overdue = session.scalars(
            select(GenerationRequest.id).where(
                GenerationRequest.status.in_([JOB_QUEUED, JOB_PROCESSING]),
                GenerationRequest.deadline_at <= now,
            )
        ).all()
        expired = sum(
            refund_and_fail(session, job_id, EXPIRED_ERROR, now, on_finished) for job_id in overdue
        )
        requeued = changed(
            session,
            update(GenerationRequest)
            .where(
                GenerationRequest.status == JOB_PROCESSING,
                GenerationRequest.lease_expires_at <= now,
            )
            .values(status=JOB_QUEUED, lease_holder=None, lease_expires_at=None, updated_at=now),
        )
    if expired or requeued:
        logger.info(
            "sweep: {} jobs expired and refunded, {} returned to the queue", expired, requeued
        )
    return SweepReport(expired=expired, requeued=requeued)


def claim(
    db: Database, validator_hotkey: str, max_jobs: int, lease_s: float, now: datetime
) -> list[dict[str, Any]]:
    """Lease up to `max_jobs` queued jobs, oldest first, to one validator."""
    claimed: list[dict[str, Any]] = []
    with db.write() as session:
        candidates = session.scalars(
            select(GenerationRequest)
            .where(GenerationRequest.status == JOB_QUEUED, GenerationRequest.deadline_at > now)
            .order_by(GenerationRequest.created_at)
            .limit(max_jobs)
            .with_for_update(skip_locked=True)
        ).all()
        for job in candidates:
            lease_until = min(now + timedelta(seconds=lease_s), job.deadline_at)
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
