"""Key-value facts of the validator state (`meta` table): the challenge secret and the small
records other repositories keep there (round counter, weight outcomes)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from tuneforge.validator.store.database import Database, json_default

SECRET_KEY = "challenge_secret"


class MetaRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str) -> str | None:
        return self._db.meta_value(key)

    def put(self, key: str, value: str) -> None:
        """Write `key` (joins the caller's transaction when there is one)."""
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def delete(self, key: str) -> None:
        with self._db.transaction() as db:
            db.execute("DELETE FROM meta WHERE key = ?", (key,))

    def get_json(self, key: str) -> Any:
        value = self.get(key)
        return json.loads(value) if value else None

    def put_json(self, key: str, value: Any) -> None:
        self.put(key, json.dumps(value, default=json_default))

    def secret(self) -> bytes:
        """This validator's private challenge secret, created once and kept in the state."""
        with self._db.transaction():
            value = self.get(SECRET_KEY)
            if value is not None:
                return bytes.fromhex(value)
            created = secrets.token_bytes(32)
            self.put(SECRET_KEY, created.hex())
            return created
