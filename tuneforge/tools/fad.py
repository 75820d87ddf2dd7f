"""`tuneforge fad ...`: build FAD reference statistics and measure audio against them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

app = typer.Typer(no_args_is_help=True)

EMBEDDINGS = ("dsp", "mert", "clap")
MAX_FILE_BYTES = 64 * 1024 * 1024


def _wav_files(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in (".wav", ".flac"))
    if not files:
        raise typer.BadParameter(f"no .wav/.flac files under {directory}")
    return files


def _frames_of(files: list[Path], embedding: str, model: str | None, device: str) -> tuple:
    """(embedding name, frames [N, D]) over all files. MERT rows are layer-12 frames; CLAP rows
    are one clip embedding per file (CLAP has no frame sequence)."""
    import numpy as np

    from tuneforge.core.audio import decode_wav
    from tuneforge.scoring.clip import Clip
    from tuneforge.scoring.fad import DSP_EMBEDDING, MERT_EMBEDDING, dsp_frame_embeddings
    from tuneforge.scoring.neural import DEFAULT_CLAP, DEFAULT_MERT, NeuralModels

    models = None
    if embedding == "mert":
        models = NeuralModels.load(None, model or DEFAULT_MERT, None, None, device=device)
    elif embedding == "clap":
        models = NeuralModels.load(model or DEFAULT_CLAP, None, None, None, device=device)
    rows = []
    for path in files:
        data = path.read_bytes()
        if path.suffix.lower() == ".wav":
            audio = decode_wav(data, max_bytes=MAX_FILE_BYTES, max_seconds=600.0)
        else:
            import soundfile as sf

            from tuneforge.core.audio import Audio

            samples, rate = sf.read(path, dtype="float32", always_2d=True)
            audio = Audio(samples.T.copy(), rate)
        clip = Clip(audio)
        if embedding == "dsp":
            rows.append(dsp_frame_embeddings(clip.y, clip.sr))
        else:
            assert models is not None
            models.prepare_round([clip])
            if embedding == "mert":
                rows.append(_prepared(clip.neural.mert_fad_frames, "MERT frames"))
            else:
                rows.append(_prepared(clip.neural.clap_embedding, "CLAP embedding")[None, :])
    name = {"dsp": DSP_EMBEDDING, "mert": MERT_EMBEDDING}.get(embedding, f"clap:{model}")
    if embedding == "mert" and model and model != DEFAULT_MERT:
        name = f"mert:{model}"  # not comparable with fadtk's MERT-v1-95M statistics
    return name, np.concatenate(rows)


@app.command("build-reference")
def build_reference(
    directory: Path = typer.Argument(..., exists=True, file_okay=False, help="audio to describe"),
    embedding: str = typer.Option("dsp", "--embedding", help="dsp | mert | clap"),
    out: Path = typer.Option(..., "--out", help="output .npz"),
    model: str | None = typer.Option(None, "--model", help="model id or dir (mert/clap)"),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Mean and covariance of the embedding frames of every WAV/FLAC under DIRECTORY."""
    from tuneforge.scoring.fad import ReferenceStats, save_reference, statistics

    if embedding not in EMBEDDINGS:
        raise typer.BadParameter(f"--embedding must be one of {', '.join(EMBEDDINGS)}")
    files = _wav_files(directory)
    name, frames = _frames_of(files, embedding, model, device)
    mu, cov = statistics(frames)
    source = f"{len(files)} files under {directory.name} via tuneforge fad build-reference"
    save_reference(out, ReferenceStats(name, mu, cov, len(frames), source))
    typer.echo(f"{out}: {name}, {len(files)} files, {len(frames)} frames, dim {len(mu)}")


@app.command("distance")
def distance(
    directory: Path = typer.Argument(..., exists=True, file_okay=False),
    embedding: str = typer.Option("dsp", "--embedding", help="dsp | mert"),
    reference: Path | None = typer.Option(None, "--reference", help="default: the shipped one"),
    per_file: bool = typer.Option(True, "--per-file/--pooled", metavar=""),
    model: str | None = typer.Option(None, "--model"),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """FAD (and the penalty it would give) of each file, or of all files pooled, as JSON lines."""
    from tuneforge.scoring.fad import (
        CURVES,
        REFERENCE_DIR,
        REFERENCE_FILES,
        frechet_distance,
        load_reference,
        statistics,
    )

    if embedding not in ("dsp", "mert"):
        raise typer.BadParameter("--embedding must be dsp or mert")
    files = _wav_files(directory)
    groups = [[f] for f in files] if per_file else [files]
    for group in groups:
        name, frames = _frames_of(group, embedding, model, device)
        ref = load_reference(reference or REFERENCE_DIR / REFERENCE_FILES[name])
        value = frechet_distance(*statistics(frames), ref.mu, ref.cov)
        curve = CURVES.get(ref.embedding)
        typer.echo(
            json.dumps(
                {
                    "files": [g.name for g in group] if len(group) < 4 else len(group),
                    "embedding": name,
                    "fad": round(value, 3),
                    "penalty": round(curve(value), 4) if curve else None,
                }
            )
        )


@app.command("real-corpus")
def real_corpus(
    directory: Path = typer.Argument(..., file_okay=False),
    split: str = typer.Option("tune", "--split", help="tune | heldout | all"),
    cache: Path | None = typer.Option(None, "--cache", help="calibration cache directory"),
) -> None:
    """Write the calibration set's REAL clips (fadtk's real generations and the music21 renders)
    of one split as WAVs: the corpus the shipped DSP reference is built from. Never audio this
    repository generates: a reference built from our own synth rewards sounding like it."""
    from tuneforge.calibration.real import CalibrationUnavailable, cache_dir
    from tuneforge.core.audio import encode_wav
    from tuneforge.tools.bench.reward import load_pieces

    if split not in ("tune", "heldout", "all"):
        raise typer.BadParameter("--split must be tune, heldout or all")
    try:
        pieces = load_pieces(cache_dir(cache), split, None, fadtk=True)
    except CalibrationUnavailable as error:
        typer.echo(f"calibration set unavailable: {error}", err=True)
        raise typer.Exit(2) from error
    directory.mkdir(parents=True, exist_ok=True)
    for piece in pieces:
        (directory / f"{piece.piece_id}.wav").write_bytes(encode_wav(piece.audio))
    typer.echo(f"{len(pieces)} real clips in {directory}")


def _prepared(value: np.ndarray | None, what: str) -> np.ndarray:
    if value is None:
        raise typer.BadParameter(f"the model produced no {what} for this clip")
    return value
