"""`tuneforge generate`: one challenge -> one WAV with the miner's own backend code, timed.

How an operator checks a model (and its speed on this machine) before going live: the same
backend, settings and post-processing a miner serves with; `--score` then runs the scoring
engine on the result, as `tuneforge score` would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from tuneforge.core.protocol import SEED_LIMIT, RequestOptions

if TYPE_CHECKING:
    from tuneforge.core.audio import Audio
    from tuneforge.core.protocol import MusicGenerationSynapse
    from tuneforge.generation.settings import GenerationSettings


def generate_command(
    prompt: str = typer.Option(..., "--prompt", help="what the music is about"),
    genre: str | None = typer.Option(None, "--genre"),
    mood: str | None = typer.Option(None, "--mood"),
    tempo: int | None = typer.Option(None, "--tempo", help="BPM"),
    key: str | None = typer.Option(None, "--key", help='e.g. "A minor"'),
    instruments: str = typer.Option("", "--instruments", help="comma-separated"),
    vocals: bool = typer.Option(False, "--vocals/--no-vocals", metavar="", help="ask for singing"),
    lyrics: str | None = typer.Option(
        None, "--lyrics", help="lyrics to sing (with --vocals; written by the lyrics model if not)"
    ),
    duration: float = typer.Option(15.0, "--duration", help="seconds (1-60)"),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_LIMIT - 1),
    backend: str = typer.Option(
        "musicgen", "--backend", help="musicgen | ace-step | synth | audiocraft"
    ),
    model: str | None = typer.Option(
        None, "--model", help="model id or local folder (default: the backend's own)"
    ),
    vocal_backend: str | None = typer.Option(
        None, "--vocal-backend", help="route vocal requests to this backend, as a miner would"
    ),
    vocal_model: str = typer.Option("", "--vocal-model", help="the vocal backend's model"),
    lyrics_model: str | None = typer.Option(
        None, "--lyrics-model", help="lyrics writer (hub id or folder; '' = fixed lyrics)"
    ),
    steps: int = typer.Option(0, "--steps", help="ACE-Step denoising steps (0 = auto)"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps"),
    dtype: str = typer.Option("auto", "--dtype", help="auto | fp32 | fp16 | bf16"),
    output: Path = typer.Option(Path("out.wav"), "-o", "--output", help="WAV file to write"),
    score: bool = typer.Option(
        False, "--score", metavar="", help="score the result with the engine"
    ),
) -> None:
    """Generate one clip from a prompt and write it as a WAV."""
    from pydantic import ValidationError

    from tuneforge.core.audio import encode_wav
    from tuneforge.generation.settings import GenerationSettings

    options = RequestOptions(prompt, genre, mood, tempo, key, instruments, vocals, lyrics)
    try:
        request = options.synapse(duration, seed)
        fields = _backend_fields(backend, model, vocal_backend, vocal_model, lyrics_model)
        fields["dtype"] = dtype  # a plain string here: GenerationSettings validates it
        settings = GenerationSettings(**fields, device=device, steps=steps)
    except ValidationError as exc:
        typer.echo(f"invalid request: {exc}", err=True)
        raise typer.Exit(code=2) from exc

    timed = _generate_timed(settings, request)
    audio = timed.audio
    output.write_bytes(encode_wav(audio))
    typer.echo(
        f"wrote {output} ({audio.duration_seconds:.1f} s, {audio.sample_rate} Hz, "
        f"{audio.channels} ch) with {timed.backend}: "
        f"load {timed.load_s:.1f} s, generation {timed.generation_s:.2f} s, "
        f"real-time factor {audio.duration_seconds / timed.generation_s:.2f}x"
    )
    if score:
        _score(output, options, duration, device)


def _backend_fields(
    backend: str,
    model: str | None,
    vocal_backend: str | None,
    vocal_model: str,
    lyrics_model: str | None,
) -> dict[str, Any]:
    """The backend settings given on the command line (unset ones keep their defaults)."""
    fields: dict[str, Any] = dict(backend=backend, vocal_model=vocal_model)
    if model:
        fields["model"] = model
    if vocal_backend:
        fields["vocal_backend"] = vocal_backend
    if lyrics_model is not None:
        fields["lyrics_model"] = lyrics_model
    return fields


def _score(output: Path, options: RequestOptions, duration: float, device: str) -> None:
    """Score the written clip against the same request, as `tuneforge score` would."""
    from tuneforge.tools.score import score_files

    score_files([output], options, duration, device=device, independent=True)


@dataclass(frozen=True)
class _Timed:
    audio: Audio
    backend: str  # "<name> <model id>"
    load_s: float
    generation_s: float


def _generate_timed(settings: GenerationSettings, request: MusicGenerationSynapse) -> _Timed:
    """Load the backend and generate once, each timed; a GenerationError exits with code 1."""
    from tuneforge.generation.base import GenerationError
    from tuneforge.generation.factory import create_backend

    try:
        with typer.progressbar(length=2, label="loading model", show_eta=False) as bar:
            started = time.perf_counter()
            generator = create_backend(settings)
            generator.load()
            load_s = time.perf_counter() - started
            bar.label = "generating"
            bar.update(1)
            started = time.perf_counter()
            audio = generator.generate(request)
            generation_s = time.perf_counter() - started
            bar.update(1)
    except GenerationError as exc:
        typer.echo(f"generation failed: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    return _Timed(audio, f"{generator.name} {generator.model_id}", load_s, generation_s)
