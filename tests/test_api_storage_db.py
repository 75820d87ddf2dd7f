"""The packaged migrations build exactly the ORM schema; the audio store is content-addressed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tests.helpers.api_server import wav_bytes
from tuneforge.api.db import Database, upgrade
from tuneforge.api.models import Base
from tuneforge.api.storage import AudioStore, AudioStoreError


def test_migrations_create_the_schema_the_models_describe(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'nested' / 'api.db'}")
    try:
        upgrade(db)
        upgrade(db)  # idempotent at head
        with db.write_engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            tables = set(inspect(connection).get_table_names())
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        assert diff == []
        assert {"accounts", "api_keys", "generation_requests", "tracks", "rounds"} <= tables
        assert {"score_results", "alembic_version"} <= tables
        assert mode == "wal"
    finally:
        db.dispose()


def test_audio_store_is_content_addressed_sharded_and_atomic(tmp_path: Path) -> None:
    store = AudioStore(tmp_path / "audio")
    audio = wav_bytes()
    digest = store.put(audio)
    assert digest == hashlib.sha256(audio).hexdigest()
    path = store.path_of(digest)
    assert path == tmp_path / "audio" / digest[:2] / digest[2:4] / f"{digest}.wav"
    assert store.get(digest) == audio and store.has(digest)
    assert store.put(audio) == digest  # idempotent
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left
    assert not store.has("0" * 64) and not store.has("../../etc/passwd")
    with pytest.raises(AudioStoreError):
        store.path_of("../escape")
