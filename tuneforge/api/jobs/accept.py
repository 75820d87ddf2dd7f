"""Accepting a customer job: the credit charge and the Idempotency-Key, in one transaction.

Credits leave the account in the same transaction that creates the job, through one conditional
UPDATE (`credits = credits - c WHERE credits >= c`): the database, not the application, decides
who wins under concurrency, on SQLite (writers serialised by BEGIN IMMEDIATE) and PostgreSQL (row
lock, predicate re-checked after the wait) alike.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from loguru import logger
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuneforge.api.accounts import KeyIdentity, new_id
from tuneforge.api.db import Database
from tuneforge.api.jobs.errors import IdempotencyConflict, InsufficientCredits
from tuneforge.api.models import JOB_QUEUED, Account, GenerationRequest, IdempotencyKey
from tuneforge.api.schemas import GenerateRequest
from tuneforge.core.protocol import SEED_LIMIT, MusicGenerationSynapse
from tuneforge.core.publication import content_of

# How long an Idempotency-Key is remembered (the contract's 24 h).
IDEMPOTENCY_TTL = timedelta(hours=24)


def credits_for(duration_seconds: float) -> int:
    """ceil(duration / 3) credits per track (API.md "Credits"); 15 s -> 5."""
    return max(1, math.ceil(duration_seconds / 3 - 1e-9))


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
class _Request:
    """One accept call: who asks, for what, under which key, due when."""

    identity: KeyIdentity
    body: GenerateRequest
    idempotency_key: str | None
    fingerprint: str
    now: datetime
    deadline_s: float


def accept(
    db: Database,
    identity: KeyIdentity,
    body: GenerateRequest,
    *,
    deadline_s: float,
    idempotency_key: str | None,
    now: datetime,
) -> Accepted:
    """Charge credits and queue the job in one transaction, or raise InsufficientCredits.

    With an `idempotency_key`, a second call with the same key and body within IDEMPOTENCY_TTL
    returns the first job (`replayed`) and charges nothing; a different body raises
    IdempotencyConflict. The key row is inserted in the charging transaction under a primary
    key, so of concurrent first calls exactly one commits and charges: the others roll back
    (their charge with them) and replay it.
    """
    request = _Request(identity, body, idempotency_key, body_fingerprint(body), now, deadline_s)
    for _ in range(3):
        try:
            return _accept_once(db, request)
        except IntegrityError:
            if idempotency_key is None:
                raise
            # Lost the race for the key: the winner has committed; replay it.
            continue
        except InsufficientCredits:
            # A concurrent first call may have spent the credits on this very key.
            if idempotency_key is not None:
                with db.write() as session:
                    replay = _replay(session, request)
                if replay is not None:
                    return replay
            raise
    raise IdempotencyConflict("the Idempotency-Key is being used by a concurrent request")


def _accept_once(db: Database, request: _Request) -> Accepted:
    body, identity, now = request.body, request.identity, request.now
    challenge = MusicGenerationSynapse(
        **content_of(body.model_dump()),
        seed=secrets.randbelow(SEED_LIMIT),  # a placeholder: miners get their own (D50)
    )
    cost = credits_for(body.duration_seconds) * body.variants
    with db.write() as session:
        if request.idempotency_key is not None:
            replay = _replay(session, request)
            if replay is not None:
                return replay
        remaining = _charge(session, identity.account_id, cost)
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
                deadline_at=now + timedelta(seconds=request.deadline_s),
                attempts=0,
                variants=body.variants,
                credits_refunded=0,
                callback_url=body.callback_url,
            )
        )
        if request.idempotency_key is not None:
            session.flush()  # the job row first: the key row refers to it
            session.add(
                IdempotencyKey(
                    account_id=identity.account_id,
                    key=request.idempotency_key,
                    body_sha256=request.fingerprint,
                    request_id=request_id,
                    created_at=now,
                )
            )
    logger.info("job {} accepted for {} ({} credits)", request_id, identity.account_id, cost)
    return Accepted(request_id, cost, remaining)


def _charge(session: Session, account_id: str, cost: int) -> int:
    """Take `cost` credits if the account has them (one conditional UPDATE); the balance left."""
    remaining = session.execute(
        update(Account)
        .where(Account.id == account_id, Account.credits >= cost)
        .values(credits=Account.credits - cost)
        .returning(Account.credits)
    ).scalar_one_or_none()
    if remaining is None:
        available = session.scalar(select(Account.credits).where(Account.id == account_id))
        raise InsufficientCredits(cost, int(available or 0))
    return int(remaining)


def _replay(session: Session, request: _Request) -> Accepted | None:
    """The job an unexpired key already made (None if none), or IdempotencyConflict."""
    account_id = request.identity.account_id
    assert request.idempotency_key is not None
    row = session.get(IdempotencyKey, (account_id, request.idempotency_key))
    if row is None:
        return None
    if row.created_at <= request.now - IDEMPOTENCY_TTL:
        session.delete(row)  # expired: the key may be used afresh
        session.flush()
        return None
    if row.body_sha256 != request.fingerprint:
        raise IdempotencyConflict("This Idempotency-Key was used with a different request body.")
    job = session.get(GenerationRequest, row.request_id)
    credits = session.scalar(select(Account.credits).where(Account.id == account_id))
    assert job is not None  # written in the same transaction as the key
    return Accepted(
        job.id, job.credits_charged, int(credits or 0), status=job.status, replayed=True
    )
