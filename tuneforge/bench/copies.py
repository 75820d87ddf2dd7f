"""`tuneforge bench copies`: does the copy check catch disguised copies of real music, and leave
different real pieces alone? And how fast is the index with a million tracks in it?

Real music comes from one function, `real_pieces`: the 23 real 10 s generations shipped in
fadtk 1.1.0's wheel (read as files, never imported) and public-domain scores from music21's
corpus rendered with fluidsynth — every score transposed to C major / A minor and played at
100 bpm, so distinct pieces share key and tempo (the hard case for a false positive).
Each piece is indexed whole; queries are QUERY_S excerpts of a disguised copy:

- tempo ±5% and pitch ±1 semitone (librosa's phase vocoder), noise at 20 dB SNR, an EQ
  (band-pass 300 Hz - 3 kHz), a different start offset, and a splice of two pieces (half each;
  caught = both named).
- false positives: an excerpt of each piece against an index of all the others. A piece named
  whose render plays the excerpt's own notes (`shares_material`: two editions of one score, a
  passage two movements share) is listed apart, not counted: it is the same music (D30).

Latency: `index_size` synthetic tracks (random window codes) plus the real ones, then a batch of
256 real queries through `CopyIndex.search` (what `POST /fingerprints/match` runs per batch).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import typer

from tuneforge.scoring import fingerprint as fp
from tuneforge.scoring.clip import ANALYSIS_RATE
from tuneforge.scoring.copy_index import CopyIndex, stored_codes

RATE = ANALYSIS_RATE
PIECE_S = 30.0
QUERY_S = 12.0
OPENING_MEASURES = 20  # ≥ 30 s at 100 bpm in 3/4 or more
RENDER_TIMEOUT_S = 120
MAX_RENDER_BYTES = 64 * 1024 * 1024
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
FADTK = "fadtk==1.1.0"
# corpus works: Bach chorales, Monteverdi madrigals, Palestrina masses (openings only); the
# instrumental quartets were left out: fluidsynth renders some of their MIDI for minutes
CORPUS_COMPOSERS = ("bach", "monteverdi", "palestrina")
SHARED_CORRELATION = 0.7  # waveform correlation that only the same notes at the same time reach
DISGUISES = ("offset", "tempo+5%", "tempo-5%", "pitch+1", "pitch-1", "noise20dB", "eq", "splice")


def real_pieces(count: int, cache_dir: Path) -> list[tuple[str, np.ndarray]]:
    """(name, mono float32 audio at RATE) of up to `count` real pieces, PIECE_S long at most.

    The one place the copy bench reads real music from (renders are cached in `cache_dir`)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    pieces = _fadtk_clips(cache_dir)
    per_composer = max(1, (count - len(pieces)) // len(CORPUS_COMPOSERS) + 1)
    for composer in CORPUS_COMPOSERS:
        pieces += _corpus_renders(composer, per_composer, cache_dir)
    return pieces[:count]


def _fadtk_clips(cache_dir: Path) -> list[tuple[str, np.ndarray]]:
    import soundfile as sf

    wheels = sorted(cache_dir.glob("fadtk-1.1.0-*.whl"))
    if not wheels:
        command = ["pip", "download", "--no-deps", FADTK, "-d", str(cache_dir), "-q"]
        if subprocess.run(command, capture_output=True, timeout=300).returncode != 0:
            typer.echo(f"{FADTK} could not be downloaded: corpus renders only", err=True)
            return []
        wheels = sorted(cache_dir.glob("fadtk-1.1.0-*.whl"))
    clips = []
    with zipfile.ZipFile(wheels[0]) as wheel:
        for name in sorted(wheel.namelist()):
            if name.startswith("fadtk/test/samples/") and name.endswith(".opus"):
                with wheel.open(name) as handle, tempfile.NamedTemporaryFile(suffix=".opus") as f:
                    f.write(handle.read())
                    f.flush()
                    y, rate = sf.read(f.name, always_2d=True, dtype="float32")
                clips.append((Path(name).stem, _at_rate(y.mean(axis=1), rate)))
    return clips


def _corpus_renders(composer: str, count: int, cache_dir: Path) -> list[tuple[str, np.ndarray]]:
    import soundfile as sf

    rendered = []
    for path in _corpus_paths(composer, count):
        name = f"{composer}-{Path(str(path)).stem}"
        wav = cache_dir / f"{name}.wav"
        if not wav.exists() and not _render(path, wav):
            continue
        y, rate = sf.read(str(wav), always_2d=True, dtype="float32")
        rendered.append((name, _at_rate(y.mean(axis=1), rate)))
    return rendered


def _corpus_paths(composer: str, count: int) -> list[object]:
    from music21 import corpus

    paths = [p for p in corpus.getComposer(composer) if str(p).endswith((".mxl", ".xml", ".krn"))]
    return paths[:count]


def _render(path: object, wav: Path) -> bool:
    """Score -> C major / A minor at 100 bpm -> MIDI -> fluidsynth WAV (first PIECE_S s)."""
    from music21 import converter, interval, pitch, tempo

    try:
        score = converter.parse(path)
        if hasattr(score, "scores"):  # an opus of several works: the first
            score = score.scores[0]
        # the opening only: rendering a whole quartet movement takes minutes
        score = score.measures(0, OPENING_MEASURES)
        key = score.analyze("key")
        target = pitch.Pitch("A" if key.mode == "minor" else "C")
        score = score.transpose(interval.Interval(key.tonic, target))
        for mark in list(score.recurse().getElementsByClass(tempo.MetronomeMark)):
            mark.activeSite.remove(mark)
        score.parts[0].insert(0, tempo.MetronomeMark(number=100))
        with tempfile.TemporaryDirectory() as tmp:
            midi = score.write("midi", fp=str(Path(tmp) / "piece.mid"))
            command = ["fluidsynth", "-ni", "-q", "-F", str(wav), "-r", str(RATE)]
            subprocess.run(
                [*command, str(SOUNDFONT), str(midi)],
                check=True,
                capture_output=True,
                timeout=RENDER_TIMEOUT_S,
            )
        if wav.stat().st_size > MAX_RENDER_BYTES:  # a score with a runaway note: unusable
            raise ValueError(f"render is {wav.stat().st_size} bytes")
    except Exception as exc:  # a score music21 or fluidsynth cannot handle is left out
        typer.echo(f"skipping {path}: {type(exc).__name__}: {exc}", err=True)
        wav.unlink(missing_ok=True)
        return False
    return wav.exists()


def _at_rate(y: np.ndarray, rate: int) -> np.ndarray:
    from tuneforge.audio import Audio, resample

    y = resample(Audio(y[None, :].astype(np.float32), rate), RATE).samples[0]
    return y[: int(PIECE_S * RATE)]


# ---- disguises ---------------------------------------------------------------------------


def disguise(kind: str, y: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A QUERY_S excerpt of `y` disguised as `kind` (`other` is the splice's second source)."""
    import librosa
    from scipy.signal import butter, sosfilt

    start = int(rng.uniform(0.5, 3.0) * RATE)  # never aligned with the stored frames
    n = int(QUERY_S * RATE)
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


# ---- the measurements ------------------------------------------------------------------------


def measure(
    pieces: list[tuple[str, np.ndarray]],
    index_size: int,
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, object]:
    """Catch rate per disguise, false-positive rate, and index latency (see the docstring)."""
    rng = np.random.default_rng(18)
    matrices = [fp.extract(y) for _, y in pieces]
    index = CopyIndex(lambda key: matrices[key] if key < len(matrices) else None)
    for key, matrix in enumerate(matrices):
        index.add(key, matrix)

    results: dict[str, dict[str, object]] = {}
    queries: list[np.ndarray] = []
    for kind in DISGUISES:
        caught, misses = 0, []
        for key, (name, y) in enumerate(pieces):
            other_key = (key + 1) % len(pieces)
            query = fp.extract(disguise(kind, y, pieces[other_key][1], rng))
            queries.append(query)
            named = {f.key for f in index.search(query)}
            wanted = {key, other_key} if kind == "splice" else {key}
            if wanted <= named:
                caught += 1
            else:
                misses.append(name)
        results[kind] = {
            "caught": caught,
            "of": len(pieces),
            "rate": round(caught / len(pieces), 4),
            "missed": misses,
        }
        progress(f"{kind}: {caught}/{len(pieces)}")

    flagged, shared = [], []
    for key, (name, y) in enumerate(pieces):
        excerpt = disguise("offset", y, y, rng)
        query = fp.extract(excerpt)
        # pieces that play the excerpt's own notes are right answers: set aside, search again
        excluded = {key}
        while found := index.search(query, exclude=frozenset(excluded)):
            sharing = {f.key for f in found if shares_material(excerpt, pieces[f.key][1])}
            if not sharing:
                flagged.append(f"{name} ~ {pieces[found[0].key][0]}")
                break
            shared += [f"{name} ~ {pieces[k][0]}" for k in sorted(sharing)]
            excluded |= sharing
    false_positives = {
        "flagged": len(flagged),
        "of": len(pieces),
        "rate": round(len(flagged) / len(pieces), 4),
        "pairs": flagged,
        "sharing_material": shared,
    }
    progress(f"false positives: {len(flagged)}/{len(pieces)}")
    return {
        "pieces": len(pieces),
        "query_seconds": QUERY_S,
        "disguises": results,
        "false_positives": false_positives,
        "index": index_latency(index, queries, index_size, progress),
    }


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
    pieces: int = typer.Option(60, "--pieces", help="real pieces (fadtk clips + corpus renders)"),
    index_size: int = typer.Option(
        1_000_000, "--index-size", help="synthetic tracks added for the latency figure"
    ),
    cache: Path = typer.Option(
        Path("~/.cache/tuneforge/copies"), "--cache", help="downloads and renders"
    ),
    json_out: bool = typer.Option(False, "--json", metavar="", help="print one JSON object"),
) -> None:
    """Catch rate per disguise, false-positive rate, and index latency for 256 queries."""
    found = real_pieces(pieces, cache.expanduser())
    if len(found) < 2:
        typer.echo("no real music available (fadtk wheel or music21 + fluidsynth)", err=True)
        raise typer.Exit(2)
    report = measure(found, index_size, progress=lambda m: typer.echo(m, err=True))
    if json_out:
        typer.echo(json.dumps(report))
        return
    for kind, row in report["disguises"].items():  # type: ignore[union-attr]
        typer.echo(f"{kind:>10}  caught {row['caught']}/{row['of']} ({row['rate']:.1%})")
    fps = report["false_positives"]
    typer.echo(f"false positives  {fps['flagged']}/{fps['of']} ({fps['rate']:.1%})")  # type: ignore[index]
    typer.echo(f"named pieces that share the notes  {len(fps['sharing_material'])}")  # type: ignore[index]
    idx = report["index"]
    typer.echo(
        f"index: {idx['tracks']} tracks, 256 queries in {idx['batch_seconds']} s"  # type: ignore[index]
    )
