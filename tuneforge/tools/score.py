"""`tuneforge score FILE.wav ...`: score WAV files against one challenge, as a validator would.

All files form one round (they are compared with each other for copies and diversity) unless
`--independent`, which scores each file alone with an empty history. Neural scorers run only
when their model directories are given; the output says which scorers are excluded and why.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import typer

from tuneforge.core.protocol import RequestOptions

if TYPE_CHECKING:
    from tuneforge.core.protocol import MusicGenerationSynapse
    from tuneforge.scoring.base import ClipScore, Submission
    from tuneforge.scoring.engine import ScoringEngine
    from tuneforge.scoring.neural import NeuralModels


def _jsonable(value: Any) -> Any:
    """json.dumps fallback for numpy scalars and arrays in scorer details."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def score_command(
    files: list[Path] = typer.Argument(..., help="WAV files to score", exists=False),
    prompt: str = typer.Option("music", "--prompt", help="challenge text prompt"),
    genre: str | None = typer.Option(None, "--genre"),
    mood: str | None = typer.Option(None, "--mood"),
    tempo: int | None = typer.Option(None, "--tempo", help="requested tempo, BPM"),
    key: str | None = typer.Option(None, "--key", help='e.g. "A minor"'),
    instruments: str = typer.Option("", "--instruments", help="comma-separated"),
    vocals: bool = typer.Option(False, "--vocals/--no-vocals", metavar=""),
    lyrics: str | None = typer.Option(None, "--lyrics"),
    duration: float | None = typer.Option(
        None, "--duration", help="requested seconds (default: the first readable file's length)"
    ),
    independent: bool = typer.Option(
        False,
        "--independent",
        metavar="",
        help="score each file alone (no cross-file copy/diversity checks)",
    ),
    json_out: bool = typer.Option(
        False, "--json", metavar="", help="one JSON object per file per line"
    ),
    clap: str | None = typer.Option(None, "--clap", help="CLAP model id or local dir"),
    mert: str | None = typer.Option(None, "--mert", help="MERT model id or local dir"),
    whisper: str | None = typer.Option(None, "--whisper", help="Whisper model id or local dir"),
    mos: str | None = typer.Option(None, "--mos", help="MOS head dir"),
    preference: str | None = typer.Option(None, "--preference", help="preference head dir"),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Score WAV files against one challenge."""
    options = RequestOptions(prompt, genre, mood, tempo, key, instruments, vocals, lyrics)
    sources = ModelSources(clap, mert, whisper, mos, preference)
    score_files(
        files,
        options,
        duration,
        sources=sources,
        device=device,
        independent=independent,
        json_out=json_out,
    )


class ModelSources(NamedTuple):
    """Where the neural scoring models come from (a hub id or a local folder); None: not run."""

    clap: str | None = None
    mert: str | None = None
    whisper: str | None = None
    mos: str | None = None
    preference: str | None = None


def score_files(
    files: list[Path],
    options: RequestOptions,
    duration: float | None,
    *,
    sources: ModelSources = ModelSources(),
    device: str = "auto",
    independent: bool = False,
    json_out: bool = False,
) -> None:
    """Score `files` against the challenge `options` describe, `duration` seconds long (None:
    the first readable file's length), and print the results (`tuneforge score`, and
    `tuneforge generate --score` on the clip it wrote)."""
    from tuneforge.scoring.engine import ScoringEngine
    from tuneforge.scoring.history import InMemoryHistory

    submissions = _read(files)
    challenge = _challenge(options, duration, submissions)
    engine = ScoringEngine.create(InMemoryHistory(), _load_models(sources, device))
    scores = _score(engine, challenge, submissions, independent)
    if json_out:
        for path, score in zip(files, scores, strict=True):
            record = {"file": str(path), **score.to_dict()}
            typer.echo(json.dumps(record, default=_jsonable, sort_keys=False))
        return
    _print_table(files, scores, engine.excluded)


def _read(files: list[Path]) -> list[Submission]:
    """One submission per file: its audio, or why it has none."""
    from tuneforge.core.audio import AudioError, decode_wav
    from tuneforge.scoring.base import Submission

    submissions: list[Submission] = []
    for path in files:
        try:
            audio = decode_wav(path.read_bytes())
            submissions.append(Submission(miner_hotkey=str(path), audio=audio))
        except (OSError, AudioError) as exc:
            submissions.append(Submission(miner_hotkey=str(path), audio=None, error=str(exc)))
    return submissions


def _challenge(
    options: RequestOptions, duration: float | None, submissions: list[Submission]
) -> MusicGenerationSynapse:
    """The challenge the files are scored against; an invalid one exits with code 2."""
    from pydantic import ValidationError

    from tuneforge.core.protocol import MAX_DURATION_S, MIN_DURATION_S

    if duration is None:
        lengths = [s.audio.duration_seconds for s in submissions if s.audio is not None]
        duration = min(MAX_DURATION_S, max(MIN_DURATION_S, lengths[0] if lengths else 15.0))
    try:
        return options.synapse(duration)
    except ValidationError as exc:
        typer.echo(f"invalid challenge: {exc}", err=True)
        raise typer.Exit(code=2) from exc


def _load_models(sources: ModelSources, device: str) -> NeuralModels | None:
    """The neural models named, None when none is; one that cannot load exits with code 2."""
    if not any(sources):
        return None
    from tuneforge.scoring.neural import ModelLoadError, NeuralModels

    try:
        return NeuralModels.load(
            sources.clap,
            sources.mert,
            sources.whisper,
            sources.mos,
            device=device,
            preference=sources.preference,
        )
    except ModelLoadError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from exc


def _score(
    engine: ScoringEngine,
    challenge: MusicGenerationSynapse,
    submissions: list[Submission],
    independent: bool,
) -> list[ClipScore]:
    """All submissions as one round, or each alone with an empty history (`independent`)."""
    from tuneforge.scoring.history import InMemoryHistory

    # Never minutes of silence: librosa compiles its kernels with numba on first use (about a
    # minute on 2 cores, cached afterwards). Progress goes to stderr; --json keeps stdout clean.
    typer.echo(
        f"scoring {len(submissions)} file(s); the first run on a machine also compiles "
        "librosa's kernels (about a minute, cached afterwards)…",
        err=True,
    )
    started = time.perf_counter()
    if independent:
        scores: list[ClipScore] = []
        for submission in submissions:
            engine.history = InMemoryHistory()
            scores.extend(engine.score_round(challenge, [submission]))
    else:
        scores = engine.score_round(challenge, submissions)
    typer.echo(f"scored in {time.perf_counter() - started:.1f} s", err=True)
    return scores


def _print_table(files: list[Path], scores: list[ClipScore], excluded: dict[str, str]) -> None:
    if excluded:
        typer.echo("not measured here (the network's set needs them; results are degraded):")
        for name, reason in excluded.items():
            typer.echo(f"  {name:<20} {reason}")
        typer.echo("")
    for path, score in zip(files, scores, strict=True):
        typer.echo(f"{path}: final {score.final_score:.3f} (composite {score.composite:.3f})")
        if score.error:
            typer.echo(f"  error: {score.error}\n")
            continue
        typer.echo(f"  {'scorer':<20} {'score':>6} {'weight':>7}  reason")
        for name, value in score.score_breakdown.items():
            weight = score.effective_weights.get(name, 0.0)
            shown = "n/a" if value is None else f"{value:.3f}"
            typer.echo(f"  {name:<20} {shown:>6} {weight:>7.3f}  {score.reasons.get(name, '')}")
        for name, value in score.penalties.items():
            shown = "n/a" if value is None else f"{value:.3f}"
            typer.echo(f"  {name:<20} {shown:>6} {'x':>7}  {score.reasons.get(name, '')}")
        typer.echo("")
