"""Validation errors as one line a client can act on: each names its field.

Pydantic's own messages say "Value error, key must look like …" (no field, a class name) and
FastAPI reports a body that is not JSON as "0: JSON decode error" (the location is a character
offset, not a field).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MAX_ERRORS = 5


def describe(error: Mapping[str, Any]) -> str:
    """`field: message` for one pydantic/FastAPI error dict."""
    loc = [str(part) for part in error.get("loc", ()) if part != "body"]
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "json_invalid":
        reason = (error.get("ctx") or {}).get("error") or message
        where = f" at character {loc[0]}" if loc else ""
        return f"the request body is not valid JSON ({reason}{where})"
    field = ".".join(loc)
    return f"{field}: {message}" if field else message


def describe_all(errors: Iterable[Mapping[str, Any]]) -> str:
    """Up to MAX_ERRORS descriptions joined with "; "."""
    parts = [describe(error) for error in list(errors)[:MAX_ERRORS]]
    return "; ".join(parts) or "Invalid request"
