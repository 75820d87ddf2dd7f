"""Every project exception shares `TuneForgeError`, so each role maps them to HTTP in one place."""

from __future__ import annotations

import ast
from pathlib import Path

from tuneforge.core.errors import TuneForgeError

PACKAGE = Path(__file__).resolve().parents[1] / "tuneforge"
BUILTIN_BASES = {"Exception", "ValueError", "RuntimeError", "OSError", "LookupError"}


def _stray_exceptions() -> list[str]:
    stray = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative == "core/errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
            if bases & BUILTIN_BASES and "TuneForgeError" not in bases:
                stray.append(f"{relative}:{node.name}")
    return stray


def test_project_exceptions_derive_from_one_base() -> None:
    assert _stray_exceptions() == []


def test_an_error_carries_its_http_answer() -> None:
    from tuneforge.api.jobs import JobNotFound
    from tuneforge.chain.base import ChainError, ChainErrorCode
    from tuneforge.miner.admission import Refusal

    hidden = JobNotFound("req_secret")
    assert (hidden.status, hidden.detail_text) == (404, "Request not found")
    refused = Refusal(503, "busy", {"Retry-After": "3"})
    assert (refused.status, refused.detail_text, dict(refused.headers)) == (
        503,
        "busy",
        {"Retry-After": "3"},
    )
    chain = ChainError(ChainErrorCode.UNAVAILABLE, "down")
    assert isinstance(chain, TuneForgeError) and chain.status == 503
    assert chain.code == ChainErrorCode.UNAVAILABLE
