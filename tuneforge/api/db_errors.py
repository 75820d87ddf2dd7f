"""One line an operator can act on when the API's database cannot be opened.

A wrong `TUNEFORGE_DATABASE_URL` used to end in a 139-line SQLAlchemy traceback; the driver's
own first line is kept (it is the precise fact) and the fix is appended.
"""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from tuneforge.core.errors import TuneForgeError


class DatabaseConfigError(TuneForgeError):
    """The database URL names something that does not exist: no retry will fix it."""

    code = "database_config"


class DatabaseUnreachable(TuneForgeError):
    """The database server did not answer: it may be starting, so a retry may fix it."""

    status = 503
    code = "database_unreachable"


def _driver_line(exc: BaseException) -> str:
    """The driver's message without SQLAlchemy's wrapper, background link and hint lines."""
    text = str(getattr(exc, "orig", None) or exc)
    text = re.sub(r"^\([\w.]+\)\s*", "", text)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first.replace("connection failed: ", "")


def explain(url: str, exc: BaseException) -> DatabaseConfigError | DatabaseUnreachable:
    """Map an error from opening/migrating `url` to one line that names the fix (the URL is
    shown without its password)."""
    try:
        parsed = make_url(url)
        shown = parsed.render_as_string(hide_password=True)
    except ArgumentError:
        return DatabaseConfigError(
            f"database URL {url!r} is not a URL: use sqlite:////path/api.db or "
            "postgresql+psycopg://USER@HOST:5432/DB"
        )
    if isinstance(exc, NoSuchModuleError | ModuleNotFoundError):
        return DatabaseConfigError(
            f"database URL {shown}: driver {parsed.drivername!r} is not installed; use sqlite:/// "
            "or postgresql+psycopg:// (pip install -e '.[api]')"
        )
    line = _driver_line(exc)
    user, database = parsed.username or "postgres", parsed.database or ""
    if "role" in line and "does not exist" in line:
        return DatabaseConfigError(
            f"{line} — create it: sudo -u postgres createuser {user} && "
            f"sudo -u postgres createdb -O {user} {database} (docs/api.md, PostgreSQL)"
        )
    if "database" in line and "does not exist" in line:
        return DatabaseConfigError(
            f"{line} — create it: sudo -u postgres createdb -O {user} {database} "
            "(docs/api.md, PostgreSQL)"
        )
    if "password authentication failed" in line or "no password supplied" in line:
        return DatabaseConfigError(f"{line} — fix the user/password in the database URL {shown}")
    if isinstance(exc, DBAPIError) and parsed.get_backend_name() == "postgresql":
        where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
        return DatabaseUnreachable(
            f"{line} — is PostgreSQL running and listening on {where}? "
            "(e.g. sudo systemctl start postgresql)"
        )
    return DatabaseUnreachable(f"database {shown}: {line}")
