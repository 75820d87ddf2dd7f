"""`tuneforge localnet`: the whole network on 127.0.0.1 (DESIGN.md §8)."""

from __future__ import annotations

import typer


def localnet_command() -> None:
    typer.echo("localnet is not built yet")
    raise typer.Exit(code=2)
