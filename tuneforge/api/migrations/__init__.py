"""Alembic migrations of the API database (applied by `tuneforge.api.db.upgrade`)."""
