"""`tuneforge localnet`: the whole network on 127.0.0.1 (DESIGN.md §8).

Only typer is imported here; the orchestrator (and through it bittensor, httpx) loads when the
command runs, so `tuneforge --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from tuneforge.localnet import LocalnetOptions


def localnet_command(
    miners: Annotated[int, typer.Option("--miners", help="number of miners", min=1, max=32)] = 3,
    rounds: Annotated[
        int, typer.Option("--rounds", help="validator rounds before the report", min=1)
    ] = 2,
    backend: Annotated[
        str, typer.Option("--backend", help="synth (weight-free) | musicgen (needs --model)")
    ] = "synth",
    model: Annotated[
        str, typer.Option("--model", help="MusicGen directory (or an id already cached)")
    ] = "",
    models_dir: Annotated[
        str,
        typer.Option(
            "--models-dir",
            help="directory with scoring models (clap/, mert/, whisper/, mos/, preference/); "
            "the Hugging Face cache is searched too; nothing is downloaded",
        ),
    ] = "",
    duration: Annotated[
        float,
        typer.Option(
            "--duration",
            help="seconds of audio per challenge (below ~12 s the copy check misfires)",
            min=1,
            max=60,
        ),
    ] = 12.0,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="keep chain, wallets, state and logs here (default: temp)"),
    ] = None,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", metavar="", help="leave the network up until Ctrl-C")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="print one JSON object")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="give up after this many seconds", min=1)
    ] = 600.0,
    votes: Annotated[
        int,
        typer.Option(
            "--votes",
            help="a scripted customer casts N votes, then the validator trains the preference "
            "head on them and the report shows its accuracy and weight (50 pairs activate it)",
            min=0,
            max=1000,
        ),
    ] = 0,
    commit_reveal: Annotated[
        bool,
        typer.Option(
            "--commit-reveal",
            metavar="",
            help="the chain runs commit-reveal weights (committed, revealed 4 blocks later)",
        ),
    ] = False,
) -> None:
    """Start LocalChain, the API, N miners and a validator on 127.0.0.1; run rounds; request a
    track as a customer; print the leaderboard. Ctrl-C stops every process."""
    from tuneforge.localnet import LocalnetOptions

    options = LocalnetOptions(
        miners=miners,
        rounds=rounds,
        backend=backend,
        model=model,
        models_dir=models_dir,
        duration=duration,
        workdir=str(workdir) if workdir else "",
        keep_running=keep_running,
        timeout=timeout,
        votes=votes,
        commit_reveal=commit_reveal,
    )

    _run(options, as_json)


def _run(options: LocalnetOptions, as_json: bool) -> None:
    """Run the network with progress on stderr and the report on stdout; exit 1 on failure,
    130 when interrupted (every process is stopped either way)."""
    from tuneforge.localnet import (
        Localnet,
        LocalnetError,
        LocalnetStopped,
        format_report,
        quiet_logs,
    )

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def emit(report: dict[str, Any]) -> None:
        if as_json:
            typer.echo(json.dumps(report, default=str))
        else:
            typer.echo(format_report(report))
        sys.stdout.flush()

    with quiet_logs():
        try:
            Localnet(options, progress).run(emit)
        except LocalnetError as exc:
            if as_json:
                typer.echo(json.dumps({"error": str(exc)}))
            typer.echo(f"localnet failed: {exc}", err=True)
            raise typer.Exit(code=1) from None
        except (KeyboardInterrupt, LocalnetStopped):
            typer.echo("localnet interrupted; every process was stopped", err=True)
            raise typer.Exit(code=130) from None
