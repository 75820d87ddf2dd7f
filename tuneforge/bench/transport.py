"""`tuneforge bench transport`."""

from __future__ import annotations

import typer


def command(json_out: bool = typer.Option(False, "--json", help="print one JSON object")) -> None:
    """Not built yet."""
    raise typer.Exit(code=2)
