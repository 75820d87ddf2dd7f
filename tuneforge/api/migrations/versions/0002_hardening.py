"""Hostile-input hardening: 64-bit `block`, null-not-zero fields, audio ownership.

- `rounds.block` becomes BIGINT (PostgreSQL int4 overflowed at 2^31; SQLite INTEGER is already
  64-bit, so the column is left as it is there).
- `excluded` ({scorer: reason}) and `degraded` on published results and customer tracks.
- `audio_uploads`: which validator uploaded which audio for what (a job or a round).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    if not _is_sqlite():
        op.alter_column("rounds", "block", type_=sa.BigInteger, existing_nullable=False)
    for table in ("score_results", "tracks"):
        op.add_column(table, sa.Column("excluded", sa.JSON, nullable=True))
        op.add_column(
            table,
            sa.Column("degraded", sa.Boolean, nullable=False, server_default=sa.false()),
        )
    op.create_table(
        "audio_uploads",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("uploader_hotkey", sa.String(64), primary_key=True),
        sa.Column("purpose", sa.String(8), primary_key=True),
        sa.Column("bound_to", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audio_uploads")
    for table in ("score_results", "tracks"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("degraded")
            batch.drop_column("excluded")
    if not _is_sqlite():
        op.alter_column("rounds", "block", type_=sa.Integer, existing_nullable=False)
