"""JobService: the one object the API's routes hold for customer jobs; each step lives in its
own module (accept, lease, finish, views) and this binds them to the database, the audio store,
the lease and deadline lengths and the finish hook."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tuneforge.api.accounts import KeyIdentity
from tuneforge.api.db import Database
from tuneforge.api.jobs import accept, finish, lease, views
from tuneforge.api.jobs.accept import Accepted
from tuneforge.api.jobs.finish import FinishHook
from tuneforge.api.jobs.lease import SweepReport
from tuneforge.api.models import utcnow
from tuneforge.api.schemas import GenerateRequest, JobResult
from tuneforge.api.storage import AudioStore, StagedUpload


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
        """Charge credits and queue the job (see `accept.accept`, Idempotency-Key included)."""
        return accept.accept(
            self.db,
            identity,
            body,
            deadline_s=self.deadline_s,
            idempotency_key=idempotency_key,
            now=now or utcnow(),
        )

    def status(self, account_id: str, request_id: str) -> dict[str, Any]:
        """The job as its owner sees it; JobNotFound for unknown ids and other accounts' jobs."""
        return views.job_status(self.db, account_id, request_id)

    def sweep(self, now: datetime | None = None) -> SweepReport:
        """Fail+refund jobs past their deadline; return jobs with lapsed leases to the queue."""
        return lease.sweep(self.db, self.on_finished, now or utcnow())

    def claim(
        self, validator_hotkey: str, max_jobs: int, now: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Sweep, then lease up to `max_jobs` queued jobs, oldest first, to one validator."""
        now = now or utcnow()
        self.sweep(now)
        return lease.claim(self.db, validator_hotkey, max_jobs, self.lease_s, now)

    def submit_result(
        self, validator_hotkey: str, request_id: str, result: JobResult, now: datetime | None = None
    ) -> dict[str, Any]:
        """Complete (or fail and refund) a job leased to this validator."""
        return finish.submit_result(
            self.db,
            self.store,
            self.on_finished,
            validator_hotkey,
            request_id,
            result,
            now or utcnow(),
        )

    def store_audio(self, validator_hotkey: str, upload: StagedUpload) -> bool:
        """Adopt a job's streamed WAV and record who uploaded it; True if it was stored."""
        existed = self.store.has(upload.sha256)
        finish.store_audio(self.db, validator_hotkey, upload)
        return existed

    def queue_depth(self) -> int:
        return views.queue_depth(self.db)

    def owned_track_audio(self, account_id: str, track_id: str) -> str | None:
        """The audio hash of a customer track owned by `account_id`, else None."""
        return views.owned_track_audio(self.db, account_id, track_id)
