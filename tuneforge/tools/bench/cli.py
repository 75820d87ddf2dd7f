"""`tuneforge bench ...`: each benchmark lives in its own module of this package."""

from __future__ import annotations

import typer

from tuneforge.tools.bench import api, copies, generation, reward, round, scoring, transport

app = typer.Typer(no_args_is_help=True)
app.command("transport", help="Miner round-trip overhead: raw WAV vs base64-in-JSON.")(
    transport.command
)
app.command("generation", help="Generation seconds per second of audio (MusicGen, ACE-Step).")(
    generation.command
)
app.command("scoring", help="CPU seconds per scorer for one clip.")(scoring.command)
app.command("round", help="Whole validator rounds on loopback: wall, CPU, RSS, state growth.")(
    round.command
)
app.command("api", help="API throughput and latency: signed scores/best vs health.")(api.command)
app.command("reward", help="Real music vs cheap fakes and degraded twins (signal scorers).")(
    reward.command
)
app.command("copies", help="Copy check on real music: catch rate per disguise, false positives.")(
    copies.command
)
