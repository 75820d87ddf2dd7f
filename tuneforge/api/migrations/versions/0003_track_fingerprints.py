"""Network-wide copy index: one fingerprint (and its window codes) per published track.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "track_fingerprints",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("track_id", sa.String(64), nullable=False, unique=True),
        sa.Column("miner_hotkey", sa.String(64), nullable=False),
        sa.Column("validator_hotkey", sa.String(64), nullable=False),
        sa.Column("audio_sha256", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("matrix", sa.LargeBinary, nullable=False),
        sa.Column("codes", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_track_fingerprints_miner_hotkey", "track_fingerprints", ["miner_hotkey"])


def downgrade() -> None:
    op.drop_index("ix_track_fingerprints_miner_hotkey", table_name="track_fingerprints")
    op.drop_table("track_fingerprints")
