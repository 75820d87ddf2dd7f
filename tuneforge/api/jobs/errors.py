"""The customer-job errors, each with the HTTP answer the API gives it."""

from __future__ import annotations

from tuneforge.core.errors import TuneForgeError


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


class IdempotencyConflict(TuneForgeError):
    status = 409
    code = "idempotency_conflict"
