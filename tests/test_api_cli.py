"""`tuneforge api` administration commands with --json, checked against the database."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy import text
from typer.testing import CliRunner

from tuneforge.api.accounts import authenticate_key
from tuneforge.api.db import Database
from tuneforge.cli import app

runner = CliRunner()


def run(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["api", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_account_key_credit_and_revocation_lifecycle(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    created = run(
        "create-account",
        "--email",
        "ops@example.com",
        "--plan",
        "pro",
        "--credits",
        "10",
        "--database-url",
        url,
        "--json",
    )
    account_id = created["account_id"]
    assert account_id.startswith("acc_") and created["plan"] == "pro"

    key = run("create-key", account_id, "--database-url", url, "--json")
    assert key["api_key"].startswith("tf_") and len(key["api_key"]) >= 35
    db = Database.open(url)
    try:
        identity = authenticate_key(db, key["api_key"])
        assert identity is not None and identity.account_id == account_id
        with db.read() as session:
            stored = session.execute(text("SELECT key_hash, prefix FROM api_keys")).one()
        assert stored[0] == hashlib.sha256(key["api_key"].encode()).hexdigest()
        assert key["api_key"] not in "".join(stored)  # only the hash and a prefix

        assert (
            run("add-credits", account_id, "15", "--database-url", url, "--json")["credits"] == 25
        )
        listed = run("list-accounts", "--database-url", url, "--json")["accounts"]
        assert listed[0]["credits"] == 25 and listed[0]["keys"][0]["key_id"] == key["key_id"]
        assert "api_key" not in json.dumps(listed)

        revoked = run("revoke-key", key["key_id"], "--database-url", url, "--json")
        assert revoked["key_id"] == key["key_id"] and revoked["revoked_at"].endswith("Z")
        assert authenticate_key(db, key["api_key"]) is None
    finally:
        db.dispose()


def test_errors_exit_nonzero_with_a_json_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    for args in (
        ["create-account", "--email", "x@example.com", "--plan", "gold"],
        ["create-key", "acc_missing"],
        ["add-credits", "acc_missing", "5"],
        ["revoke-key", "key_missing"],
    ):
        result = runner.invoke(app, ["api", *args, "--database-url", url, "--json"])
        assert result.exit_code == 1, result.output
        assert "error" in json.loads(result.stdout.strip().splitlines()[-1])
    run(
        "create-account",
        "--email",
        "y@example.com",
        "--credits",
        "1",
        "--database-url",
        url,
        "--json",
    )
    account = run("list-accounts", "--database-url", url, "--json")["accounts"][0]["account_id"]
    result = runner.invoke(
        app, ["api", "add-credits", "--database-url", url, "--json", "--", account, "-5"]
    )
    assert result.exit_code == 1  # never below zero
