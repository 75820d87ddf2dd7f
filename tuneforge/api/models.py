"""The API's tables (SQLAlchemy 2 typed ORM). Schema changes go through `migrations/`.

Times are naive UTC datetimes: SQLite stores no zone, so one convention for both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JOB_QUEUED = "queued"
JOB_PROCESSING = "processing"
JOB_COMPLETED = "completed"
JOB_FAILED = "failed"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    plan: Mapped[str] = mapped_column(String(16))
    credits: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Signs webhook bodies (HMAC-SHA256). Kept in clear because HMAC needs it; shown to the
    # customer once, when created or rotated.
    webhook_secret: Mapped[str | None] = mapped_column(String(80), nullable=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex, never the key
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, for display only
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class GenerationRequest(Base):
    """One customer job: queued -> processing (leased by a validator) -> completed | failed."""

    __tablename__ = "generation_requests"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    api_key_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), index=True)
    challenge: Mapped[dict[str, Any]] = mapped_column(JSON)  # a MusicGenerationSynapse
    duration_seconds: Mapped[float] = mapped_column(Float)
    credits_charged: Mapped[int] = mapped_column(Integer)
    refunded: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    deadline_at: Mapped[datetime] = mapped_column(DateTime)
    lease_holder: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    variants: Mapped[int] = mapped_column(Integer, default=1)
    # Credits given back for variants that were not delivered (a full refund sets `refunded`).
    credits_refunded: Mapped[int] = mapped_column(Integer, default=0)
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)


class Track(Base):
    """A customer track delivered by a validator for one job."""

    __tablename__ = "tracks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("generation_requests.id"), index=True)
    audio_sha256: Mapped[str] = mapped_column(String(64))
    duration_seconds: Mapped[float] = mapped_column(Float)
    sample_rate: Mapped[int] = mapped_column(Integer)
    miner_hotkey: Mapped[str] = mapped_column(String(64))
    miner_uid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    validator_hotkey: Mapped[str] = mapped_column(String(64))
    final_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    composite: Mapped[float | None] = mapped_column(Float, nullable=True)
    score_breakdown: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    penalties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    generation_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    excluded: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    degraded: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Round(Base):
    """One validator round as published; (validator, round_id) is the idempotency key."""

    __tablename__ = "rounds"
    __table_args__ = (UniqueConstraint("validator_hotkey", "round_id", name="uq_rounds_validator"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    validator_hotkey: Mapped[str] = mapped_column(String(64))
    round_id: Mapped[str] = mapped_column(String(64))
    # BIGINT on PostgreSQL (int4 overflowed at 2^31); SQLite's INTEGER is already 64-bit.
    block: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    challenge: Mapped[dict[str, Any]] = mapped_column(JSON)
    content_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ScoreResult(Base):
    """One scored challenge track of a published round."""

    __tablename__ = "score_results"
    __table_args__ = (Index("ix_score_results_created_pk", "created_at", "pk"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    track_id: Mapped[str] = mapped_column(String(64), unique=True)
    round_pk: Mapped[int] = mapped_column(ForeignKey("rounds.pk"), index=True)
    validator_hotkey: Mapped[str] = mapped_column(String(64))
    miner_uid: Mapped[int] = mapped_column(Integer)
    miner_hotkey: Mapped[str] = mapped_column(String(64), index=True)
    final_score: Mapped[float] = mapped_column(Float, index=True)
    composite: Mapped[float] = mapped_column(Float)
    score_breakdown: Mapped[dict[str, Any]] = mapped_column(JSON)
    penalties: Mapped[dict[str, Any]] = mapped_column(JSON)
    generation_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    audio_sha256: Mapped[str] = mapped_column(String(64))
    audio_present: Mapped[bool] = mapped_column(Boolean, default=False)
    duration_seconds: Mapped[float] = mapped_column(Float)
    sample_rate: Mapped[int] = mapped_column(Integer)
    genre: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    excluded: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    degraded: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


AUDIO_FOR_JOB = "job"
AUDIO_FOR_ROUND = "round"


class AudioUpload(Base):
    """Who uploaded which audio, and for what: a validator may only reference audio it uploaded
    itself for that purpose (a job's audio, bound to the first job that uses it; a round's audio,
    bound to its track). The store is content-addressed, so the bytes alone prove nothing."""

    __tablename__ = "audio_uploads"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    uploader_hotkey: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(8), primary_key=True)
    # For job audio, the job (request id) it was delivered for; None until then. Round audio is
    # never bound: a validator may publish the same clip for several of its own tracks.
    bound_to: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class IdempotencyKey(Base):
    """`Idempotency-Key` of a generate call: the same key and body replay the same job."""

    __tablename__ = "idempotency_keys"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    body_sha256: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


VOTE_COMPARE = "compare"


class Vote(Base):
    """A customer's judgement of its own tracks: up/down on one track, or winner over loser.

    `pair_key` names what was judged ("trk_a" or "trk_a|trk_b", ids sorted): one vote per pair
    per account, enforced by the database."""

    __tablename__ = "votes"
    __table_args__ = (UniqueConstraint("account_id", "pair_key", name="uq_votes_account_pair"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    request_id: Mapped[str] = mapped_column(String(40))
    pair_key: Mapped[str] = mapped_column(String(140))
    kind: Mapped[str] = mapped_column(String(8))
    track_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    winner_track_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    loser_track_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


DELIVERY_PENDING = "pending"
DELIVERY_DELIVERED = "delivered"
DELIVERY_FAILED = "failed"


class WebhookDelivery(Base):
    """One callback to send: the durable queue and the delivery log are the same rows."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    request_id: Mapped[str] = mapped_column(String(40))
    event: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
