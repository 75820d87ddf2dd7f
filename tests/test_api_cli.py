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
from tuneforge.core.loopback import free_port
from tuneforge.tools.cli import app

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


def test_workdir_finds_the_localnet_api_database(tmp_path: Path) -> None:
    """`--workdir` addresses the database a localnet's API serves (api.db in that directory),
    not ~/.tuneforge/api.db."""
    url = f"sqlite:///{tmp_path / 'api.db'}"
    Database.open(url).dispose()  # the localnet API creates it
    (tmp_path / "api.db").touch()
    workdir = str(tmp_path)
    account = run("create-account", "--email", "w@example.com", "--workdir", workdir, "--json")
    key = run("create-key", account["account_id"], "--workdir", workdir, "--json")
    accounts = run("list-accounts", "--database-url", url, "--json")["accounts"]
    assert [a["account_id"] for a in accounts] == [account["account_id"]]
    assert key["api_key"]


def test_a_workdir_without_a_localnet_database_says_so(tmp_path: Path) -> None:
    result = runner.invoke(app, ["api", "list-accounts", "--workdir", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "no localnet API database" in result.output and "tuneforge localnet" in result.output


def test_an_unreachable_database_is_one_line_naming_the_fix() -> None:
    port = free_port()  # a port nothing listens on
    url = f"postgresql+psycopg://tuneforge:secret@127.0.0.1:{port}/tuneforge"
    result = runner.invoke(app, ["api", "list-accounts", "--database-url", url])
    assert result.exit_code == 1  # it may come up: pm2 retries
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert f"is PostgreSQL running and listening on 127.0.0.1:{port}" in result.output
    assert "secret" not in result.output


def test_a_missing_postgres_role_names_the_commands_that_create_it() -> None:
    import os

    import pytest
    from sqlalchemy.engine import make_url

    base = os.environ.get("TUNEFORGE_TEST_DATABASE_URL", "")
    if not base.startswith("postgresql"):
        pytest.skip("TUNEFORGE_TEST_DATABASE_URL (PostgreSQL) is not set")
    url = make_url(base).set(username="tf_no_such_role", database="tf_no_such_db")
    result = runner.invoke(
        app, ["api", "list-accounts", "--database-url", url.render_as_string(False)]
    )
    assert result.exit_code == 2  # configuration: pm2 stops instead of restarting
    assert result.output.count("\n") == 1, result.output
    assert 'role "tf_no_such_role" does not exist' in result.output
    assert "createuser tf_no_such_role" in result.output
    assert "createdb -O tf_no_such_role tf_no_such_db" in result.output


def test_serve_help_shows_every_default() -> None:
    result = runner.invoke(app, ["api", "serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for default in ("else 127.0.0.1", "else 8000", "else 1", "else test", "else 234"):
        assert default in result.output, default
