"""`tuneforge bench copies`: does the copy check catch disguised copies of real music, and leave
different pieces alone — even pieces in the same key and tempo? And how fast is the index with a
million tracks in it?

Real music is the calibration set (`real_pieces`): fadtk's 23 real clips and the rendered
public-domain scores, each on its tune or held-out side (tune on one, report both). Each piece is
indexed whole; queries are QUERY_S excerpts of a disguised copy:

- tempo ±5% and pitch ±1 semitone (librosa's phase vocoder), noise at 20 dB SNR, an EQ
  (band-pass 300 Hz - 3 kHz), a different start offset, and a splice of two pieces (half each;
  caught = both named).
- false positives: an excerpt of each piece against an index of all the others. A piece named
  whose audio plays the excerpt's own notes (`shares_material`: two editions of one score, a
  passage two movements share) is listed apart, not counted: it is the same music (D30).
- same key and tempo (`same_key_tempo`), the false positive honest miners of one round risk:
  every render moved to C major / A minor at 100 bpm (librosa pitch shift and time stretch)
  against the others moved alike; and, per challenge (one key, tempo and genre), pieces of
  different seeds from the `synth` backend and from `calibration.heldout.markov_piece` against
  the other seeds of the same generator — with QUERY_S excerpts, and apart (`short_queries`)
  with SHORT_QUERY_S ones, the length of a short answer, whose coverage rule differs (D59).

Latency: `index_size` synthetic tracks (random window codes) plus the real ones, then a batch of
256 real queries through `CopyIndex.search` (what `POST /fingerprints/match` runs per batch).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import typer

from tuneforge.scoring import fingerprint as fp
from tuneforge.scoring.clip import ANALYSIS_RATE
from tuneforge.scoring.copy_index import CopyIndex, stored_codes

RATE = ANALYSIS_RATE
PIECE_S = 15.0  # the calibration renders' length (fadtk clips are 10 s)
QUERY_S = 12.0
SHORT_QUERY_S = 10.0  # a 10 s answer (fadtk's clips' length): its copy check has fewer windows
SHARED_CORRELATION = 0.7  # waveform correlation that only the same notes at the same time reach
DISGUISES = ("offset", "tempo+5%", "tempo-5%", "pitch+1", "pitch-1", "noise20dB", "eq", "splice")
COMMON_TEMPO = 100.0  # renders are all moved to this tempo and to C major / A minor
# one challenge per row: the synth and markov pieces of one row differ only in their seed
CHALLENGES = (("A minor", 90), ("C major", 120), ("E minor", 100), ("D major", 76))
SEEDS_PER_CHALLENGE = 6


@dataclass(frozen=True)
class BenchPiece:
    """One real piece of the calibration set, mono at RATE (key and tempo known for renders)."""

    name: str
    split: str  # "tune" or "heldout"
    y: np.ndarray
    key: str | None = None
    tempo_bpm: float | None = None


def real_pieces(cache_dir: Path | None = None) -> list[BenchPiece]:
    """The calibration set's real music (`tuneforge.calibration.real`): fadtk's 23 real clips
    and the rendered public-domain scores, each on its tune / held-out side.

    The one place the copy bench reads real music from; CalibrationUnavailable says why not."""
    from tuneforge.calibration.real import cache_dir as default_cache
    from tuneforge.calibration.real import fadtk_pieces, rendered_pieces
    from tuneforge.core.audio import resample

    cache = default_cache(cache_dir)
    pieces = []
    for piece in fadtk_pieces(cache) + rendered_pieces(cache):
        y = resample(piece.audio, RATE).samples.mean(axis=0).astype(np.float32)
        pieces.append(
            BenchPiece(piece.piece_id, piece.split, y, piece.true_key, piece.true_tempo_bpm)
        )
    return pieces


# ---- disguises ---------------------------------------------------------------------------


def disguise(
    kind: str,
    y: np.ndarray,
    other: np.ndarray,
    rng: np.random.Generator,
    seconds: float = QUERY_S,
) -> np.ndarray:
    """A `seconds` excerpt of `y` disguised as `kind` (`other` is the splice's second source)."""
    import librosa
    from scipy.signal import butter, sosfilt

    start = int(rng.uniform(0.5, 3.0) * RATE)  # never aligned with the stored frames
    n = int(seconds * RATE)
    if kind == "splice":
        half = n // 2
        return np.concatenate([y[start : start + half], other[start : start + half]])
    excerpt = y[start : start + int(n * 1.1)]
    if kind == "tempo+5%":
        excerpt = librosa.effects.time_stretch(excerpt, rate=1.05)
    elif kind == "tempo-5%":
        excerpt = librosa.effects.time_stretch(excerpt, rate=0.95)
    elif kind in ("pitch+1", "pitch-1"):
        steps = 1 if kind == "pitch+1" else -1
        excerpt = librosa.effects.pitch_shift(excerpt, sr=RATE, n_steps=steps)
    elif kind == "noise20dB":
        rms = float(np.sqrt(np.mean(excerpt**2)))
        excerpt = excerpt + rng.normal(0.0, rms / 10.0, len(excerpt)).astype(np.float32)
    elif kind == "eq":
        excerpt = sosfilt(butter(2, [300, 3000], "bandpass", fs=RATE, output="sos"), excerpt)
    return np.asarray(excerpt[:n], dtype=np.float32)


def shares_material(excerpt: np.ndarray, other: np.ndarray) -> bool:
    """Ground truth for a flagged pair, from samples rather than fingerprints: does `other`
    play the excerpt's notes? True when 4.5 s windows of the excerpt (every 1.5 s) find a
    waveform cross-correlation ≥ SHARED_CORRELATION somewhere in `other` for
    `fingerprint.needed_seconds` of it. Waveforms only correlate like that when the same notes
    sound at the same time: two renders of one score (or of one passage) by one synthesiser."""
    from scipy.signal import fftconvolve

    window, hop = int(4.5 * RATE), int(1.5 * RATE)
    energy = np.concatenate([[0.0], np.cumsum(other.astype(np.float64) ** 2)])
    covered = np.zeros(len(excerpt), dtype=bool)
    for start in range(0, len(excerpt) - window + 1, hop):
        part = excerpt[start : start + window].astype(np.float64)
        if len(other) < window or not part.any():
            continue
        cross = fftconvolve(other, part[::-1], mode="valid")
        norms = np.sqrt((energy[window:] - energy[:-window]).clip(1e-12) * (part @ part))
        if float(np.max(cross / norms)) >= SHARED_CORRELATION:
            covered[start : start + window] = True
    return covered.sum() / RATE >= fp.needed_seconds(len(excerpt) / RATE)


# ---- same key and tempo ------------------------------------------------------------------


def common_key_and_tempo(pieces: list[BenchPiece]) -> list[tuple[str, np.ndarray]]:
    """Every piece with a known key and tempo, moved to C major / A minor (the nearer way round)
    and to COMMON_TEMPO: distinct music that shares key and tempo, as one round's answers do."""
    import librosa

    from tuneforge.scoring.keys import parse_key

    moved = []
    for piece in pieces:
        if piece.key is None or piece.tempo_bpm is None:
            continue
        key = parse_key(piece.key)
        steps = ((9 if key.minor else 0) - key.tonic + 6) % 12 - 6
        y = librosa.effects.pitch_shift(piece.y, sr=RATE, n_steps=steps) if steps else piece.y
        y = librosa.effects.time_stretch(y, rate=COMMON_TEMPO / piece.tempo_bpm)
        moved.append((piece.name, np.asarray(y, dtype=np.float32)))
    return moved


def one_challenge_pieces(generator: str, row: int, split: str) -> list[tuple[str, np.ndarray]]:
    """SEEDS_PER_CHALLENGE pieces of one CHALLENGES row from `generator` ("synth" or "markov"),
    different seeds only (each split its own seeds)."""
    from tuneforge.calibration.heldout import markov_piece
    from tuneforge.core.audio import resample
    from tuneforge.core.protocol import MusicGenerationSynapse
    from tuneforge.generation.synth import SynthBackend

    key, tempo = CHALLENGES[row]
    made = []
    for seed in range(SEEDS_PER_CHALLENGE):
        challenge = MusicGenerationSynapse(
            prompt="lofi", genre="lofi", key=key, tempo_bpm=tempo, duration_seconds=PIECE_S,
            seed=1000 * row + seed + (0 if split == "tune" else 500),
        )  # fmt: skip
        audio = (
            SynthBackend().generate(challenge) if generator == "synth" else markov_piece(challenge)
        )
        y = resample(audio, RATE).samples.mean(axis=0).astype(np.float32)
        made.append((f"{generator}-{key}-{tempo}-{seed}", y))
    return made


# ---- the measurements ------------------------------------------------------------------------


def index_of(matrices: list[np.ndarray]) -> CopyIndex:
    index = CopyIndex(lambda key: matrices[key] if key < len(matrices) else None)
    for key, matrix in enumerate(matrices):
        index.add(key, matrix)
    return index


def catch_rates(
    pieces: list[BenchPiece], index: CopyIndex, rng: np.random.Generator
) -> tuple[dict[str, dict[str, object]], list[np.ndarray]]:
    """Per disguise: how many disguised excerpts name their source (both, for a splice)."""
    results: dict[str, dict[str, object]] = {}
    queries: list[np.ndarray] = []
    for kind in DISGUISES:
        caught, misses = 0, []
        for key, piece in enumerate(pieces):
            other_key = (key + 1) % len(pieces)
            query = fp.extract(disguise(kind, piece.y, pieces[other_key].y, rng))
            queries.append(query)
            named = {f.key for f in index.search(query)}
            wanted = {key, other_key} if kind == "splice" else {key}
            if wanted <= named:
                caught += 1
            else:
                misses.append(piece.name)
        rate = round(caught / len(pieces), 4)
        results[kind] = {"caught": caught, "of": len(pieces), "rate": rate, "missed": misses}
    return results, queries


def false_positives(
    named_audio: list[tuple[str, np.ndarray]],
    rng: np.random.Generator,
    seconds: float = QUERY_S,
) -> dict[str, object]:
    """A `seconds` excerpt of each piece searched in an index of all of them but itself; a
    piece named that plays the excerpt's own notes is set aside as shared material, not
    counted."""
    index = index_of([fp.extract(y) for _, y in named_audio])
    flagged, shared = [], []
    for key, (name, y) in enumerate(named_audio):
        excerpt = disguise("offset", y, y, rng, seconds)
        query = fp.extract(excerpt)
        excluded = {key}
        while found := index.search(query, exclude=frozenset(excluded)):
            sharing = {f.key for f in found if shares_material(excerpt, named_audio[f.key][1])}
            if not sharing:
                flagged.append(f"{name} ~ {named_audio[found[0].key][0]}")
                break
            shared += [f"{name} ~ {named_audio[k][0]}" for k in sorted(sharing)]
            excluded |= sharing
    return _rate(len(flagged), len(named_audio)) | {"pairs": flagged, "sharing_material": shared}


def same_key_tempo(pieces: list[BenchPiece], split: str, rng: np.random.Generator) -> dict:
    """False positives among distinct pieces that share key and tempo (see the docstring);
    the one-challenge pieces also with SHORT_QUERY_S excerpts (`short_queries`, its own total)."""
    cases: dict[str, dict[str, object]] = {"real_common": false_positives(
        common_key_and_tempo(pieces), rng
    )}  # fmt: skip
    short: dict[str, dict[str, object]] = {}
    short_rng = np.random.default_rng(59)  # its own draws: the 12 s cases keep theirs
    for generator in ("synth", "markov"):
        made = [one_challenge_pieces(generator, row, split) for row in range(len(CHALLENGES))]
        cases[generator] = _pooled([false_positives(group, rng) for group in made])
        short[generator] = _pooled(
            [false_positives(group, short_rng, SHORT_QUERY_S) for group in made]
        )
    return _pooled(list(cases.values())) | {
        "cases": cases,
        "short_queries": _pooled(list(short.values())) | {"seconds": SHORT_QUERY_S, "cases": short},
    }


def _pooled(groups: list[dict[str, object]]) -> dict[str, object]:
    """One rate over several `false_positives` results, their flagged pairs listed."""
    flagged = sum(int(g["flagged"]) for g in groups)  # type: ignore[call-overload]
    of = sum(int(g["of"]) for g in groups)  # type: ignore[call-overload]
    return _rate(flagged, of) | {"pairs": [p for g in groups for p in g["pairs"]]}  # type: ignore[attr-defined]


def _rate(count: int, of: int) -> dict[str, object]:
    return {"flagged": count, "of": of, "rate": round(count / of, 4) if of else 0.0}


def measure(
    pieces: list[BenchPiece],
    split: str,
    progress: Callable[[str], None] = lambda _m: None,
) -> tuple[dict[str, object], CopyIndex, list[np.ndarray]]:
    """Catch rates, false positives and same-key-and-tempo false positives on one split."""
    rng = np.random.default_rng(18)
    chosen = [p for p in pieces if p.split == split]
    index = index_of([fp.extract(p.y) for p in chosen])
    disguises, queries = catch_rates(chosen, index, rng)
    for kind, row in disguises.items():
        progress(f"{split} {kind}: {row['caught']}/{row['of']}")
    distinct = false_positives([(p.name, p.y) for p in chosen], rng)
    progress(f"{split} false positives: {distinct['flagged']}/{distinct['of']}")
    alike = same_key_tempo(chosen, split, rng)
    progress(f"{split} same key and tempo: {alike['flagged']}/{alike['of']}")
    short = alike["short_queries"]
    progress(
        f"{split} one challenge, {SHORT_QUERY_S:.0f} s queries: {short['flagged']}/{short['of']}"
    )
    report = {
        "pieces": len(chosen),
        "query_seconds": QUERY_S,
        "disguises": disguises,
        "false_positives": distinct,
        "same_key_tempo": alike,
    }
    return report, index, queries


def index_latency(
    index: CopyIndex,
    queries: list[np.ndarray],
    index_size: int,
    progress: Callable[[str], None],
) -> dict[str, object]:
    """Seconds for 256 queries once `index_size` synthetic tracks are indexed beside the real."""
    rng = np.random.default_rng(7)
    codes_per_track = int(np.mean([len(stored_codes(q)) for q in queries[:32]]) * PIECE_S / QUERY_S)
    started = time.perf_counter()
    chunk = 100_000
    for first in range(0, index_size, chunk):
        tracks = min(chunk, index_size - first)
        keys = np.repeat(np.arange(first, first + tracks) + 1_000_000_000, codes_per_track)
        codes = rng.integers(0, 2**63, size=len(keys), dtype=np.int64).astype(np.uint64)
        index.add_many(keys, codes, tracks)
    index.candidates(queries[0])  # sorts the tables once
    build_s = time.perf_counter() - started
    progress(f"{len(index)} tracks indexed in {build_s:.1f} s")
    batch = (queries * (256 // len(queries) + 1))[:256]
    started = time.perf_counter()
    for query in batch:
        index.search(query)
    seconds = time.perf_counter() - started
    return {
        "tracks": len(index),
        "codes_per_synthetic_track": codes_per_track,
        "build_seconds": round(build_s, 2),
        "queries": len(batch),
        "batch_seconds": round(seconds, 3),
        "per_query_ms": round(1000.0 * seconds / len(batch), 2),
    }


def command(
    splits: str = typer.Option("tune,heldout", "--splits", help="calibration splits to measure"),
    index_size: int = typer.Option(
        1_000_000, "--index-size", "--index-tracks", help="synthetic tracks for the latency figure"
    ),
    cache: Path | None = typer.Option(None, "--cache", help="calibration cache (default: shared)"),
    json_out: bool = typer.Option(False, "--json", metavar="", help="print one JSON object"),
) -> None:
    """Catch rate per disguise, false-positive rates, and index latency for 256 queries."""
    from tuneforge.calibration.real import CalibrationUnavailable

    try:
        found = real_pieces(cache)
    except CalibrationUnavailable as exc:
        typer.echo(f"no real music available: {exc}", err=True)
        raise typer.Exit(2) from exc
    say = lambda m: typer.echo(m, err=True)  # noqa: E731
    report: dict[str, object] = {}
    index, queries = None, []
    for split in [s.strip() for s in splits.split(",") if s.strip()]:
        report[split], index, queries = measure(found, split, progress=say)
    if index is None:
        raise typer.Exit(2)
    report["index"] = index_latency(index, queries, index_size, say)
    if json_out:
        typer.echo(json.dumps(report))
        return
    for split, result in report.items():
        if split == "index":
            continue
        for kind, row in result["disguises"].items():  # type: ignore[index]
            typer.echo(f"{split:>8} {kind:>10}  caught {row['caught']}/{row['of']}")
        for name in ("false_positives", "same_key_tempo"):
            row = result[name]  # type: ignore[index]
            typer.echo(f"{split:>8} {name}  {row['flagged']}/{row['of']} ({row['rate']:.1%})")
        row = result["same_key_tempo"]["short_queries"]  # type: ignore[index]
        typer.echo(f"{split:>8} one challenge, {SHORT_QUERY_S:.0f} s  {row['flagged']}/{row['of']}")
    idx = report["index"]
    typer.echo(
        f"index: {idx['tracks']} tracks, 256 queries in {idx['batch_seconds']} s"  # type: ignore[index]
    )
