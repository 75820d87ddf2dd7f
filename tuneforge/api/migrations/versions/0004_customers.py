"""Customers who come back: variants, callbacks, idempotency keys, votes, webhook deliveries.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("generation_requests") as batch:
        batch.add_column(sa.Column("variants", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(
            sa.Column("credits_refunded", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("callback_url", sa.Text, nullable=True))
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("webhook_secret", sa.String(80), nullable=True))
    op.create_table(
        "idempotency_keys",
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "votes",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("request_id", sa.String(40), nullable=False),
        sa.Column("pair_key", sa.String(140), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("track_id", sa.String(40), nullable=True),
        sa.Column("winner_track_id", sa.String(40), nullable=True),
        sa.Column("loser_track_id", sa.String(40), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("account_id", "pair_key", name="uq_votes_account_pair"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("request_id", sa.String(40), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("delivered_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_webhook_deliveries_account_id", "webhook_deliveries", ["account_id"])
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_account_id", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("votes")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("webhook_secret")
    with op.batch_alter_table("generation_requests") as batch:
        batch.drop_column("callback_url")
        batch.drop_column("credits_refunded")
        batch.drop_column("variants")
