"""The `tuneforge` command: one entry point, one sub-app per room.

Sub-apps import heavy libraries (torch, librosa, SQLAlchemy) inside their commands, so
`tuneforge --help` stays fast.
"""

from __future__ import annotations

import typer

from tuneforge.api.cli import app as api_app
from tuneforge.tools.bench.cli import app as bench_app
from tuneforge.tools.chain import app as chain_app
from tuneforge.tools.fad import app as fad_app
from tuneforge.tools.generate import generate_command
from tuneforge.tools.localnet import localnet_command
from tuneforge.tools.score import score_command
from tuneforge.validator.cli import app as validator_app

app = typer.Typer(
    name="tuneforge",
    help="TuneForge: decentralized AI music generation (Bittensor subnet 234).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(chain_app, name="chain", help="Inspect and administer chains (LocalChain files).")
app.add_typer(api_app, name="api", help="Run and administer the TuneForge API.")
app.add_typer(validator_app, name="validator", help="Validator operator tools.")
app.add_typer(fad_app, name="fad", help="FAD reference statistics.")
app.add_typer(bench_app, name="bench", help="Benchmarks (JSON with --json).")
app.command("score", help="Score WAV files against one challenge.")(score_command)
app.command("generate", help="Generate one clip into a WAV (check a model before going live).")(
    generate_command
)
app.command("localnet", help="Run a whole local TuneForge network.")(localnet_command)


@app.command("version")
def version() -> None:
    """Print the package and protocol versions."""
    from tuneforge import __version__
    from tuneforge.core.protocol import SPEC_VERSION

    typer.echo(f"tuneforge {__version__} (protocol {SPEC_VERSION})")


if __name__ == "__main__":
    app()
