"""The OpenAPI schema as the API really answers (issue 11, item 9; D14).

Each route lists the error codes it can return with the one error body; FastAPI's automatic
422 is replaced by the 400 the API sends for invalid input; the hotkey and API-key schemes are
described; every answer may be 429 (rate limit), 413 (body too large) or 431 (headers too large)
because the guard in front of the app says so.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from tuneforge.api.accounts import KEY_PATTERN
from tuneforge.api.schemas import ErrorBody

_DESCRIPTIONS = {
    400: "Invalid parameters or body",
    401: "Missing or invalid credentials",
    402: "Insufficient credits",
    403: "Authenticated but not allowed",
    404: "Not found",
    409: "Conflict (same id, different content; or state changed)",
    413: "Body too large",
    415: "Format not available on this server",
    429: "Rate limited",
    431: "Request header fields too large",
}
# What the guard may answer on any route, before the route runs.
GUARD_CODES = (413, 429, 431)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each code with the `{"detail": ...}` body."""
    return {
        code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]}
        for code in sorted({*codes, 400, *GUARD_CODES})
    }


WAV_BODY = {
    "required": True,
    "content": {
        "audio/wav": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}

HOTKEY_SECURITY: list[dict[str, list[str]]] = [
    {"HotkeySignature": [], "HotkeyNonce": [], "Hotkey": []}
]
API_KEY_SECURITY: list[dict[str, list[str]]] = [{"ApiKey": []}]


def install(app: FastAPI) -> None:
    """Replace `app.openapi` with the post-processed schema (built once, then cached)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.get("responses", {})
                responses.pop("422", None)  # invalid input is 400 here (see app.py)
        components = schema.setdefault("components", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.get("schemas", {}).pop(name, None)
        components["securitySchemes"] = {
            "ApiKey": {
                "type": "http",
                "scheme": "bearer",
                "description": f"Customer API key, `Authorization: Bearer <key>` with the key "
                f"matching `{KEY_PATTERN.pattern}`",
            },
            "Hotkey": {"type": "apiKey", "in": "header", "name": "X-Validator-Hotkey"},
            "HotkeyNonce": {"type": "apiKey", "in": "header", "name": "X-Validator-Nonce"},
            "HotkeySignature": {
                "type": "apiKey",
                "in": "header",
                "name": "X-Validator-Signature",
                "description": "sr25519 signature of `{nonce}.{hotkey}.{METHOD}.{path}."
                "{sha256(body) or 'empty'}` (API.md)",
            },
        }
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]
