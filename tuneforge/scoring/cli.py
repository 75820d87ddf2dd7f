"""`tuneforge score`."""

from __future__ import annotations

import typer


def score_command() -> None:
    raise typer.Exit(code=2)
