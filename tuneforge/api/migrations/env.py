"""Alembic environment: runs on the connection `tuneforge.api.db.upgrade` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from tuneforge.api.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    # Run from the alembic command line: connect with the configured URL.
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
