"""`tuneforge validator ...` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(no_args_is_help=True)


def _fmt(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


# The validator's own default for --neuron.state_path (docs/validator.md).
DEFAULT_STATE = "~/.tuneforge/validator/state.db"


@app.command("status")
def status(
    state: Annotated[
        Path | None,
        typer.Option("--state", help=f"the validator's state.db (default: {DEFAULT_STATE})"),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir", help="a `tuneforge localnet --workdir` directory: its validator's state"
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="machine-readable output")
    ] = False,
) -> None:
    """Each miner's EMA, weight and last result (breakdown, reasons); rounds; last weights."""
    from tuneforge.config import expand_path
    from tuneforge.validator.state import StateError, ValidatorState
    from tuneforge.validator.status import status_snapshot

    if state is None:
        state = workdir / "validator" / "state.db" if workdir else Path(expand_path(DEFAULT_STATE))
    if not state.is_file():
        typer.echo(f"no validator state at {state}", err=True)
        raise typer.Exit(code=2)
    try:
        store = ValidatorState(state)
    except StateError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    try:
        snapshot = status_snapshot(store)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(snapshot, indent=2, default=str))
        return
    typer.echo(f"rounds completed: {snapshot['rounds_completed']}")
    weights = snapshot["last_weights"]
    if weights is None:
        typer.echo("last weights: never attempted")
    elif weights.get("ok"):
        verb = "committed" if weights.get("committed") else "set"
        typer.echo(
            f"last weights: {verb} at block {weights['block']} on {len(weights['weights'])} uids"
        )
    else:
        typer.echo(
            f"last weights: NOT set ({weights.get('code')}: {weights.get('message')})"
            + (f" — {weights['remediation']}" if weights.get("remediation") else "")
        )
    version = snapshot["version"]
    if version["stale"]:
        typer.echo(
            f"version: STALE — version_key {version['version_key']} < subnet weights_version "
            f"{version['weights_version']}; weights are not set until you upgrade"
        )
    else:
        typer.echo(f"version: version_key {version['version_key']} (ok)")
    pending = snapshot["pending_commit"]
    if pending is not None:
        typer.echo(
            f"pending commit: block {pending['block']}, revealed by the chain at round "
            f"{pending['reveal_round']}"
        )
    typer.echo(f"outbox: {snapshot['outbox_size']} unsent")
    typer.echo(f"{'uid':>4}  {'hotkey':<48}  {'ema':>6}  {'weight':>6}  {'last':>6}  rounds")
    for miner in snapshot["miners"]:
        typer.echo(
            f"{miner['uid']:>4}  {miner['hotkey']:<48}  {_fmt(miner['ema'])}  "
            f"{_fmt(miner['weight'])}  {_fmt(miner['last_final_score'])}  "
            f"{miner['rounds_queried']}"
        )
        if miner["error"]:
            typer.echo(f"      error: {miner['error']}")
        breakdown = miner["score_breakdown"]
        if breakdown:
            typer.echo(
                "      " + "  ".join(f"{name}={_fmt(v, 2)}" for name, v in breakdown.items())
            )
        penalties = miner["penalties"]
        if penalties:
            typer.echo(
                "      penalties: " + "  ".join(f"{n}={_fmt(v, 2)}" for n, v in penalties.items())
            )
        for name, reason in miner["reasons"].items():
            if reason:
                typer.echo(f"      {name}: {reason}")
