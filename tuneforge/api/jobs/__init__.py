"""Customer jobs: accept with an atomic credit charge, lease to validators, finish, expire.

One module per step: `accept` (the credit charge and the Idempotency-Key), `lease` (claims and
the deadline sweep), `finish` (a validator's result, failure and refunds), `views` (the job as
its owner sees it), `errors`; `service.JobService` is the one object the routes hold.
"""

from tuneforge.api.jobs.errors import (
    IdempotencyConflict,
    InsufficientCredits,
    JobConflict,
    JobNotFound,
    MissingAudio,
)
from tuneforge.api.jobs.service import JobService

__all__ = [
    "IdempotencyConflict",
    "InsufficientCredits",
    "JobConflict",
    "JobNotFound",
    "JobService",
    "MissingAudio",
]
