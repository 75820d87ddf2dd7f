"""Initial schema: accounts, keys, jobs, tracks, rounds, score results.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("plan", sa.String(16), nullable=False),
        sa.Column("credits", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.CheckConstraint("credits >= 0", name="ck_accounts_credits_nonnegative"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("revoked_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_api_keys_account_id", "api_keys", ["account_id"])
    op.create_table(
        "generation_requests",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("api_key_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("challenge", sa.JSON, nullable=False),
        sa.Column("duration_seconds", sa.Float, nullable=False),
        sa.Column("credits_charged", sa.Integer, nullable=False),
        sa.Column("refunded", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("completed_at", sa.DateTime, nullable=True),
        sa.Column("deadline_at", sa.DateTime, nullable=False),
        sa.Column("lease_holder", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
    )
    op.create_index("ix_generation_requests_account_id", "generation_requests", ["account_id"])
    op.create_index("ix_generation_requests_status", "generation_requests", ["status"])
    op.create_index("ix_generation_requests_created_at", "generation_requests", ["created_at"])
    op.create_table(
        "tracks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "request_id", sa.String(40), sa.ForeignKey("generation_requests.id"), nullable=False
        ),
        sa.Column("audio_sha256", sa.String(64), nullable=False),
        sa.Column("duration_seconds", sa.Float, nullable=False),
        sa.Column("sample_rate", sa.Integer, nullable=False),
        sa.Column("miner_hotkey", sa.String(64), nullable=False),
        sa.Column("miner_uid", sa.Integer, nullable=True),
        sa.Column("validator_hotkey", sa.String(64), nullable=False),
        sa.Column("final_score", sa.Float, nullable=True),
        sa.Column("composite", sa.Float, nullable=True),
        sa.Column("score_breakdown", sa.JSON, nullable=False),
        sa.Column("penalties", sa.JSON, nullable=False),
        sa.Column("generation_ms", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_tracks_request_id", "tracks", ["request_id"])
    op.create_table(
        "rounds",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("public_id", sa.String(40), nullable=False, unique=True),
        sa.Column("validator_hotkey", sa.String(64), nullable=False),
        sa.Column("round_id", sa.String(64), nullable=False),
        sa.Column("block", sa.Integer, nullable=False),
        sa.Column("challenge", sa.JSON, nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("validator_hotkey", "round_id", name="uq_rounds_validator"),
    )
    op.create_table(
        "score_results",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("track_id", sa.String(64), nullable=False, unique=True),
        sa.Column("round_pk", sa.Integer, sa.ForeignKey("rounds.pk"), nullable=False),
        sa.Column("validator_hotkey", sa.String(64), nullable=False),
        sa.Column("miner_uid", sa.Integer, nullable=False),
        sa.Column("miner_hotkey", sa.String(64), nullable=False),
        sa.Column("final_score", sa.Float, nullable=False),
        sa.Column("composite", sa.Float, nullable=False),
        sa.Column("score_breakdown", sa.JSON, nullable=False),
        sa.Column("penalties", sa.JSON, nullable=False),
        sa.Column("generation_ms", sa.Integer, nullable=True),
        sa.Column("audio_sha256", sa.String(64), nullable=False),
        sa.Column("audio_present", sa.Boolean, nullable=False),
        sa.Column("duration_seconds", sa.Float, nullable=False),
        sa.Column("sample_rate", sa.Integer, nullable=False),
        sa.Column("genre", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_score_results_round_pk", "score_results", ["round_pk"])
    op.create_index("ix_score_results_miner_hotkey", "score_results", ["miner_hotkey"])
    op.create_index("ix_score_results_final_score", "score_results", ["final_score"])
    op.create_index("ix_score_results_genre", "score_results", ["genre"])
    op.create_index("ix_score_results_created_pk", "score_results", ["created_at", "pk"])


def downgrade() -> None:
    for table in (
        "score_results",
        "rounds",
        "tracks",
        "generation_requests",
        "api_keys",
        "accounts",
    ):
        op.drop_table(table)
