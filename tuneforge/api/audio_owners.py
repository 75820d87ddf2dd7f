"""Who may reference which stored audio (D15).

The audio store is content-addressed, so a hash alone proves nothing: every upload is recorded
with its uploader and purpose, and a reference is honoured only when the referencing validator
uploaded those bytes itself for that purpose. A job's audio is bound to the first job that uses
it, so one customer's track can never be handed to another.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuneforge.api.db import changed
from tuneforge.api.models import AUDIO_FOR_JOB, AudioUpload, utcnow
from tuneforge.core.errors import TuneForgeError


class AudioNotYours(TuneForgeError):
    """The audio exists but this validator did not upload it for this use (HTTP 403 or 409)."""

    code = "audio_not_yours"

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def record_upload(session: Session, sha256: str, hotkey: str, purpose: str) -> None:
    """Remember that `hotkey` uploaded `sha256` for `purpose` (idempotent)."""
    exists = session.get(AudioUpload, (sha256, hotkey, purpose))
    if exists is not None:
        return
    try:
        with session.begin_nested():
            session.add(
                AudioUpload(
                    sha256=sha256, uploader_hotkey=hotkey, purpose=purpose, created_at=utcnow()
                )
            )
    except IntegrityError:
        pass  # a concurrent identical upload recorded it first


def uploaded_by(session: Session, sha256: str, hotkey: str, purpose: str) -> bool:
    return session.get(AudioUpload, (sha256, hotkey, purpose)) is not None


def is_job_audio(session: Session, sha256: str) -> bool:
    """True when any validator uploaded these bytes as a customer's job audio."""
    return (
        session.scalar(
            select(AudioUpload.sha256)
            .where(AudioUpload.sha256 == sha256, AudioUpload.purpose == AUDIO_FOR_JOB)
            .limit(1)
        )
        is not None
    )


def bind_job_audio(session: Session, sha256: str, hotkey: str, request_id: str) -> None:
    """Bind job audio uploaded by `hotkey` to `request_id`, or raise AudioNotYours."""
    row = session.get(AudioUpload, (sha256, hotkey, AUDIO_FOR_JOB), with_for_update=True)
    if row is None:
        raise AudioNotYours(403, f"audio {sha256} was not uploaded by you for a job")
    if row.bound_to == request_id:
        return
    bound = changed(
        session,
        update(AudioUpload)
        .where(
            AudioUpload.sha256 == sha256,
            AudioUpload.uploader_hotkey == hotkey,
            AudioUpload.purpose == AUDIO_FOR_JOB,
            AudioUpload.bound_to.is_(None),
        )
        .values(bound_to=request_id)
        .execution_options(synchronize_session=False),
    )
    if bound != 1:
        raise AudioNotYours(409, f"audio {sha256} was already delivered for another job")
