"""`tuneforge api ...`: serve the API and administer accounts and keys.

Heavy imports (SQLAlchemy, FastAPI, uvicorn) happen inside the commands so `tuneforge --help`
stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer

app = typer.Typer(no_args_is_help=True)
T = TypeVar("T")

DATABASE_URL_HELP = (
    "database URL (default: env TUNEFORGE_DATABASE_URL, else sqlite:///~/.tuneforge/api.db)"
)
WORKDIR_HELP = "a `tuneforge localnet --workdir` directory: use its API database (api.db)"
# Exit codes: 2 = configuration to fix (pm2 stops, see ecosystem.config.js), 1 = may pass.
EXIT_CONFIG, EXIT_RETRY = 2, 1


def setting_help(name: str) -> str:
    """An ApiSettings field's description with its default, for `api serve --help`."""
    from tuneforge.api.settings import ApiSettings

    field = ApiSettings.model_fields[name]
    default = field.get_default(call_default_factory=True)
    env = f"TUNEFORGE_{name.upper()}"
    return f"{field.description} (default: env {env}, else {default or 'none'})"


def database_url_for(database_url: str | None, workdir: Path | None) -> str:
    """--database-url, else the localnet work directory's api.db, else the settings' URL."""
    from tuneforge.api.settings import ApiSettings

    if database_url and workdir:
        raise typer.BadParameter("give --database-url or --workdir, not both")
    if workdir is not None:
        path = workdir.expanduser().resolve() / "api.db"
        if not path.is_file():
            typer.echo(
                f"error: no localnet API database at {path} (run `tuneforge localnet "
                f"--workdir {workdir}` first)",
                err=True,
            )
            raise typer.Exit(code=EXIT_CONFIG)
        return f"sqlite:///{path}"
    return database_url or ApiSettings().database_url


def _open_db(database_url: str | None, workdir: Path | None = None) -> Any:
    """The migrated database, or exit with one line naming the fix (never a traceback)."""
    from sqlalchemy.exc import SQLAlchemyError

    from tuneforge.api.db import Database, upgrade
    from tuneforge.api.db_errors import DatabaseConfigError, explain

    url = database_url_for(database_url, workdir)
    try:
        database = Database.open(url)
        upgrade(database)
    except (SQLAlchemyError, ImportError, OSError) as exc:
        problem = explain(url, exc)
        typer.echo(f"error: {problem}", err=True)
        config = isinstance(problem, DatabaseConfigError)
        raise typer.Exit(code=EXIT_CONFIG if config else EXIT_RETRY) from None
    return database


def _emit(payload: dict[str, Any], json_out: bool, text: str) -> None:
    typer.echo(json.dumps(payload) if json_out else text)


def _fail(message: str, json_out: bool) -> NoReturn:
    if json_out:
        typer.echo(json.dumps({"error": message}))
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def _account_action(
    database_url: str | None, workdir: Path | None, json_out: bool, action: Callable[[Any], T]
) -> T:
    """Run one account operation on the migrated database; an AccountError becomes one line
    (or `{"error": ...}`) and exit code 1."""
    from tuneforge.api.accounts import AccountError

    db = _open_db(database_url, workdir)
    try:
        return action(db)
    except AccountError as exc:
        _fail(str(exc), json_out)
    finally:
        db.dispose()


@app.command("serve")
def serve(
    host: str | None = typer.Option(None, "--host", help=setting_help("host")),
    port: int | None = typer.Option(None, "--port", help=setting_help("port")),
    workers: int | None = typer.Option(None, "--workers", help=setting_help("workers")),
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    redis_url: str | None = typer.Option(None, "--redis-url", help=setting_help("redis_url")),
    network: str | None = typer.Option(
        None,
        "--network",
        help="finney | test | local | localnet (default: env TUNEFORGE_CHAIN__NETWORK, else test)",
    ),
    netuid: int | None = typer.Option(
        None, "--netuid", help="subnet uid (default: env TUNEFORGE_CHAIN__NETUID, else 234)"
    ),
    localnet_path: str | None = typer.Option(
        None, "--localnet.path", help="LocalChain file (with --network localnet)"
    ),
    audio_dir: str | None = typer.Option(None, "--audio-dir", help=setting_help("audio_dir")),
) -> None:
    """Run the API with uvicorn (migrations are applied first, once). Every setting can also
    come from the environment (TUNEFORGE_*, see api.env.example); flags win."""
    import os

    import uvicorn

    from tuneforge.api.app import SETTINGS_ENV
    from tuneforge.api.settings import ApiSettings
    from tuneforge.core.http_limits import uvicorn_limits

    base = ApiSettings()
    overrides: dict[str, Any] = {
        key: value
        for key, value in {
            "host": host,
            "port": port,
            "workers": workers,
            "database_url": database_url,
            "redis_url": redis_url,
            "audio_dir": audio_dir,
        }.items()
        if value is not None
    }
    chain = base.chain.model_dump()
    if network is not None:
        chain["network"] = network
    if netuid is not None:
        chain["netuid"] = netuid
    localnet = base.localnet.model_dump()
    if localnet_path is not None:
        localnet["path"] = localnet_path
    settings = ApiSettings.model_validate(
        {**base.model_dump(), **overrides, "chain": chain, "localnet": localnet}
    )
    if settings.workers > 1 and not settings.redis_url:
        typer.echo(
            "warning: several workers without --redis-url do not share nonces or rate limits",
            err=True,
        )
    _open_db(settings.database_url).dispose()
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    uvicorn.run(
        "tuneforge.api.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.logging.level.lower(),
        **uvicorn_limits(),
    )


@app.command("create-account")
def create_account_command(
    email: str = typer.Option(..., "--email"),
    plan: str = typer.Option("free", "--plan", help="free | pro | premier"),
    credits: int = typer.Option(0, "--credits"),
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    json_out: bool = typer.Option(False, "--json", metavar="", help="print one JSON object"),
) -> None:
    """Create an account and print its id."""
    from tuneforge.api.accounts import create_account

    account = _account_action(
        database_url, workdir, json_out, lambda db: create_account(db, email, plan, credits)
    )
    payload = {"account_id": account.id, "email": email, "plan": plan, "credits": credits}
    _emit(payload, json_out, account.id)


@app.command("create-key")
def create_key_command(
    account_id: str = typer.Argument(...),
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    json_out: bool = typer.Option(False, "--json", metavar="", help="print one JSON object"),
) -> None:
    """Create an API key and print it (it is shown only this once)."""
    from tuneforge.api.accounts import create_key

    row, key = _account_action(
        database_url, workdir, json_out, lambda db: create_key(db, account_id)
    )
    _emit({"key_id": row.id, "account_id": account_id, "api_key": key}, json_out, key)


@app.command("add-credits")
def add_credits_command(
    account_id: str = typer.Argument(...),
    amount: int = typer.Argument(..., help="credits to add (negative removes)"),
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    json_out: bool = typer.Option(False, "--json", metavar="", help="print one JSON object"),
) -> None:
    """Add credits to an account and print the new balance."""
    from tuneforge.api.accounts import add_credits

    balance = _account_action(
        database_url, workdir, json_out, lambda db: add_credits(db, account_id, amount)
    )
    _emit({"account_id": account_id, "credits": balance}, json_out, str(balance))


@app.command("revoke-key")
def revoke_key_command(
    key_id: str = typer.Argument(...),
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    json_out: bool = typer.Option(False, "--json", metavar="", help="print one JSON object"),
) -> None:
    """Revoke an API key (by key id, as listed by list-accounts)."""
    from tuneforge.api.accounts import revoke_key

    revoked_at = _account_action(database_url, workdir, json_out, lambda db: revoke_key(db, key_id))
    payload = {"key_id": key_id, "revoked_at": revoked_at.isoformat() + "Z"}
    _emit(payload, json_out, f"revoked {key_id}")


@app.command("list-accounts")
def list_accounts_command(
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    json_out: bool = typer.Option(False, "--json", metavar="", help="print one JSON object"),
) -> None:
    """List accounts with their credits and keys (prefixes only)."""
    from tuneforge.api.accounts import list_accounts

    db = _open_db(database_url, workdir)
    try:
        accounts = list_accounts(db)
    finally:
        db.dispose()
    lines = [
        f"{a['account_id']}  {a['email']}  {a['plan']}  credits={a['credits']}  "
        f"keys={','.join(str(k['key_id']) for k in a['keys']) or '-'}"  # type: ignore[union-attr]
        for a in accounts
    ]
    _emit({"accounts": accounts}, json_out, "\n".join(lines) or "no accounts")
