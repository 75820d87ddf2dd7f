"""A customer job as its owner sees it: the status body (also the webhook body), its tracks,
and the reads behind the customer routes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from tuneforge.api import stored
from tuneforge.api.db import Database
from tuneforge.api.jobs.errors import JobNotFound
from tuneforge.api.models import JOB_QUEUED, GenerationRequest, Track
from tuneforge.api.stored import iso


def job_status(db: Database, account_id: str, request_id: str) -> dict[str, Any]:
    """The job as its owner sees it; JobNotFound for unknown ids and other accounts' jobs."""
    with db.read() as session:
        job = session.get(GenerationRequest, request_id)
        if job is None or job.account_id != account_id:
            raise JobNotFound(request_id)
        tracks = session.scalars(
            select(Track).where(Track.request_id == request_id).order_by(Track.created_at)
        ).all()
    return status_view(job, tracks)


def queue_depth(db: Database) -> int:
    with db.read() as session:
        return int(
            session.scalar(select(func.count()).where(GenerationRequest.status == JOB_QUEUED)) or 0
        )


def owned_track_audio(db: Database, account_id: str, track_id: str) -> str | None:
    """The audio hash of a customer track owned by `account_id`, else None."""
    with db.read() as session:
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
