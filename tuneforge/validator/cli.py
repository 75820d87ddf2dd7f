"""`tuneforge validator ...` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from tuneforge.validator.preference_training import TrainingReport

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
    from tuneforge.core.config import expand_path

    if state is None:
        state = workdir / "validator" / "state.db" if workdir else Path(expand_path(DEFAULT_STATE))
    snapshot = _read_snapshot(state)
    if as_json:
        typer.echo(json.dumps(snapshot, indent=2, default=str))
        return
    _echo_status(snapshot)


def _read_snapshot(state: Path) -> dict[str, Any]:
    """The status snapshot of the state file at `state`, opened read-only; exit 2 if unreadable."""
    from tuneforge.validator.state import StateError, ValidatorState
    from tuneforge.validator.status import status_snapshot

    if not state.is_file():
        typer.echo(f"no validator state at {state}", err=True)
        raise typer.Exit(code=2)
    try:
        store = ValidatorState.open_read_only(state)  # a view never migrates or writes
    except StateError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    try:
        return status_snapshot(store)
    finally:
        store.close()


def _echo_status(snapshot: dict[str, Any]) -> None:
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
        _echo_miner(miner)


def _echo_miner(miner: dict[str, Any]) -> None:
    """One miner's row, then its error, breakdown, penalties and reasons indented below it."""
    typer.echo(
        f"{miner['uid']:>4}  {miner['hotkey']:<48}  {_fmt(miner['ema'])}  "
        f"{_fmt(miner['weight'])}  {_fmt(miner['last_final_score'])}  "
        f"{miner['rounds_queried']}"
    )
    if miner["error"]:
        typer.echo(f"      error: {miner['error']}")
    breakdown = miner["score_breakdown"]
    if breakdown:
        typer.echo("      " + "  ".join(f"{name}={_fmt(v, 2)}" for name, v in breakdown.items()))
    penalties = miner["penalties"]
    if penalties:
        typer.echo(
            "      penalties: " + "  ".join(f"{n}={_fmt(v, 2)}" for n, v in penalties.items())
        )
    for name, reason in miner["reasons"].items():
        if reason:
            typer.echo(f"      {name}: {reason}")


@app.command("train-preference")
def train_preference(
    api_url: Annotated[str, typer.Option("--api.url", help="TuneForge API base URL")],
    clap: Annotated[
        str, typer.Option("--scoring.clap", help="CLAP model id or dir (the network's)")
    ] = "",
    embedding: Annotated[
        str,
        typer.Option(
            "--embedding",
            help="clap (the network's recipe, needs --scoring.clap) or dsp (no model: localnet)",
        ),
    ] = "clap",
    wallet_name: Annotated[str, typer.Option("--wallet.name")] = "default",
    wallet_hotkey: Annotated[str, typer.Option("--wallet.hotkey")] = "default",
    wallet_path: Annotated[str, typer.Option("--wallet.path")] = "~/.bittensor/wallets",
    out: Annotated[
        Path,
        typer.Option("--out", help="checkpoint directory (give it to --scoring.preference)"),
    ] = Path("~/.tuneforge/validator/preference"),
    cache: Annotated[Path, typer.Option("--cache", help="downloaded voted tracks")] = Path(
        "~/.tuneforge/validator/preference-audio"
    ),
    device: Annotated[str, typer.Option("--scoring.device")] = "auto",
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="machine-readable output")
    ] = False,
) -> None:
    """Fit the preference head on customer votes (GET /preferences), embedding the voted tracks
    with this validator's own CLAP; deterministic, so validators reading the same votes agree.
    Says how many pairs it has and needs while there are too few."""
    import asyncio

    from tuneforge.core.config import expand_path
    from tuneforge.core.wallets import WalletError, load_wallet
    from tuneforge.validator.api_client import ApiClient, ApiUnavailable
    from tuneforge.validator.preference_training import train_preference as run_training

    try:
        wallet = load_wallet(wallet_name, wallet_hotkey, wallet_path)
    except WalletError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    models = _embedding_models(embedding, clap, device)

    async def run() -> Any:
        api = ApiClient(api_url, wallet)
        try:
            return await run_training(
                api,
                models,
                Path(expand_path(str(out))),
                Path(expand_path(str(cache))),
                f"{embedding}_embedding",
            )
        finally:
            await api.aclose()

    try:
        report = asyncio.run(run())
    except ApiUnavailable as exc:
        typer.echo(f"the API did not answer: {exc}", err=True)
        raise typer.Exit(code=1) from None
    _echo_training(report, as_json)


def _embedding_models(embedding: str, clap: str, device: str) -> Any:
    """The models the chosen embedding needs (None for dsp); exit 2 on a bad choice."""
    from tuneforge.scoring.neural import NeuralModels

    if embedding not in ("clap", "dsp"):
        typer.echo("--embedding must be clap or dsp", err=True)
        raise typer.Exit(code=2)
    if embedding == "clap" and not clap:
        typer.echo("--embedding clap needs --scoring.clap (a CLAP id or dir)", err=True)
        raise typer.Exit(code=2)
    if embedding != "clap":
        return None
    return NeuralModels.load(clap=clap, mert=None, whisper=None, mos=None, device=device)


def _echo_training(report: TrainingReport, as_json: bool) -> None:
    import dataclasses

    if as_json:
        summary = {**dataclasses.asdict(report), "active": report.active}
        typer.echo(json.dumps({**summary, "summary": report.describe()}))
        return
    typer.echo(report.describe())
    if report.checkpoint:
        typer.echo(
            f"checkpoint: {report.checkpoint} (use --scoring.preference {report.checkpoint})"
        )
