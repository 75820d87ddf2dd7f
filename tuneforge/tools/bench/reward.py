"""`tuneforge bench reward`: does the reward rank real music over cheap fakes, and does each
scorer catch the defect it is named for?

Real pieces (fadtk's real generations + music21 scores rendered with a GM soundfont) are scored
with the signal scorers alone (no neural models: the worst case), each clip in a round of its own
with a fresh history and the same generation time, against fakes made for the same challenge and
against degraded twins. See docs/scoring.md ("Calibration") for what each number means.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

GENERATION_MS = 1000.0  # equal for both sides of every pair: speed must not decide a pair
TEMPO_TOLERANCE = 0.04  # a detected tempo within 4 % of the truth (or of 2x / 0.5x) is right
TEMPO_FACTORS = (1.0, 2.0, 0.5)
SPLITS = ("heldout", "tune", "all")


@dataclass
class Scored:
    final: float
    breakdown: dict[str, float | None]
    penalties: dict[str, float | None]
    details: dict[str, Any]

    def value(self, name: str) -> float | None:
        if name in self.penalties:
            return self.penalties[name]
        return self.breakdown.get(name)


@dataclass
class Tally:
    """Pairwise outcomes: wins of the real/original side, its margins, and the pairs it lost."""

    wins: int = 0
    total: int = 0
    margins: list[float] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # "piece_id (margin)" of every pair not won

    def add(self, mine: float | None, other: float | None, piece_id: str = "") -> None:
        self.total += 1
        if mine is None:  # a side that was not measured cannot win
            self.lost.append(f"{piece_id} (not measured)")
            return
        other_value = 0.0 if other is None else other
        self.margins.append(mine - other_value)
        won = mine > other_value
        self.wins += int(won)
        if not won:
            self.lost.append(f"{piece_id} ({mine - other_value:+.3f})")

    def summary(self, pairs: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "win_rate": round(self.wins / self.total, 3) if self.total else None,
            "median_margin": round(statistics.median(self.margins), 3) if self.margins else None,
            "pairs": self.total,
        }
        if pairs:
            out["lost"] = list(self.lost)
        return out


def tempo_is_right(detected: float, truth: float) -> bool:
    """Right within TEMPO_TOLERANCE at the true tempo or one octave off (half or double)."""
    if detected <= 0 or truth <= 0:
        return False
    return any(abs(detected / (truth * f) - 1.0) <= TEMPO_TOLERANCE for f in TEMPO_FACTORS)


def command(
    split: str = typer.Option("heldout", "--split", help="heldout | tune | all"),
    renders: int = typer.Option(0, "--renders", min=0, help="use the first N scores (0 = all)"),
    cache: Path | None = typer.Option(None, "--cache", help="calibration cache directory"),
    no_fadtk: bool = typer.Option(False, "--no-fadtk", metavar="", help="leave fadtk's clips out"),
    json_out: bool = typer.Option(False, "--json", metavar="", help="print one JSON object"),
    pairs: bool = typer.Option(
        False, "--pairs", metavar="", help="list the pairs each fake kind and twin won"
    ),
) -> None:
    """Real music vs cheap fakes and degraded twins, with the signal scorers alone."""
    from tuneforge.calibration.real import CalibrationUnavailable, cache_dir

    if split not in SPLITS:
        raise typer.BadParameter(f"--split must be one of {', '.join(SPLITS)}")
    try:
        report = measure(cache_dir(cache), split, renders or None, fadtk=not no_fadtk, pairs=pairs)
    except CalibrationUnavailable as error:
        typer.echo(f"calibration set unavailable: {error}", err=True)
        raise typer.Exit(2) from error
    if json_out:
        typer.echo(json.dumps(report))
        return
    typer.echo(format_table(report))


def load_pieces(cache: Path, split: str, renders: int | None, fadtk: bool) -> list:
    from tuneforge.calibration.real import fadtk_pieces, rendered_pieces

    pieces = rendered_pieces(cache, renders)
    if fadtk:
        pieces = fadtk_pieces(cache) + pieces
    return [p for p in pieces if split == "all" or p.split == split]


def measure(
    cache: Path, split: str, renders: int | None, fadtk: bool = True, pairs: bool = False
) -> dict[str, Any]:
    """The whole table as a JSON-ready dict; with `pairs`, each row also lists the pieces whose
    pair the real/original side did not win ("lost": ["piece_id (margin)", ...])."""
    from tuneforge.calibration.fakes import FAKES, HELDOUT_KINDS
    from tuneforge.calibration.twins import TWINS
    from tuneforge.scoring.features import warm_up

    started = time.process_time()
    pieces = load_pieces(cache, split, renders, fadtk)
    warm_up()
    engine = _engine()
    fakes = {kind: Tally() for kind in FAKES if split == "heldout" or kind not in HELDOUT_KINDS}
    twins = {(kind, name): Tally() for kind, (_, names) in TWINS.items() for name in names}
    musicgen_vs_synth = Tally()
    key_right = tempo_right = renders_seen = keys_seen = 0
    artifact_fp = fad_fp = 0
    misses: dict[str, list[str]] = {"key": [], "tempo": [], "artifact": [], "fad": []}
    for number, piece in enumerate(pieces, 1):
        print(f"[{number}/{len(pieces)}] {piece.piece_id}", file=sys.stderr)
        real = score_one(engine, piece.challenge, piece.audio)
        artifact_fp += int((real.penalties.get("artifact_penalty") or 0.0) < 1.0)
        fad_fp += int((real.penalties.get("fad_penalty") or 0.0) < 1.0)
        if (real.penalties.get("artifact_penalty") or 0.0) < 1.0:
            misses["artifact"].append(piece.piece_id)
        if (real.penalties.get("fad_penalty") or 0.0) < 1.0:
            misses["fad"].append(piece.piece_id)
        for kind, tally in fakes.items():
            fake = score_one(engine, piece.challenge, FAKES[kind](piece))
            tally.add(real.final, fake.final, piece.piece_id)
            if kind == "synth" and piece.source == "fadtk:MusicGen":
                musicgen_vs_synth.add(real.final, fake.final, piece.piece_id)
        if piece.true_key is None:
            continue  # fadtk clips: no truth for key, tempo or bar lines
        renders_seen += 1
        attribute = real.details.get("attribute") or {}
        detected_key = attribute.get("detected_key")
        detected_tempo = float(attribute.get("raw_tempo_bpm") or 0.0)
        tempo_right += int(tempo_is_right(detected_tempo, piece.true_tempo_bpm or 0.0))
        if piece.key_certain:  # an excerpt whose own notes contradict its signature: no truth
            keys_seen += 1
            key_right += int(detected_key == piece.true_key)
        if piece.key_certain and detected_key != piece.true_key:
            misses["key"].append(f"{piece.piece_id}: {detected_key} (true {piece.true_key})")
        if not tempo_is_right(detected_tempo, piece.true_tempo_bpm or 0.0):
            misses["tempo"].append(f"{piece.piece_id}: {detected_tempo} ({piece.true_tempo_bpm})")
        for kind, (degrade, names) in TWINS.items():
            twin = score_one(engine, piece.challenge, degrade(piece))
            for name in names:
                twins[(kind, name)].add(real.value(name), twin.value(name), piece.piece_id)
    n = len(pieces)
    return {
        "split": split,
        "real_pieces": n,
        "renders": renders_seen,
        "fakes": {kind: tally.summary(pairs) for kind, tally in fakes.items()},
        "twins": {
            f"{name} vs {kind}": tally.summary(pairs) for (kind, name), tally in twins.items()
        },
        "key_exact": round(key_right / keys_seen, 3) if keys_seen else None,
        "key_pieces": keys_seen,
        "tempo_accuracy": round(tempo_right / renders_seen, 3) if renders_seen else None,
        "artifact_false_positive_rate": round(artifact_fp / n, 3) if n else None,
        "fad_false_positive_rate": round(fad_fp / n, 3) if n else None,
        "musicgen_vs_synth": musicgen_vs_synth.summary(pairs),
        "misses": misses,
        "cpu_s": round(time.process_time() - started, 1),
    }


def _engine() -> Any:
    from tuneforge.scoring.engine import ScoringEngine
    from tuneforge.scoring.history import InMemoryHistory

    return ScoringEngine.create(InMemoryHistory(), models=None)


def score_one(engine: Any, challenge: Any, audio: Any) -> Scored:
    """One clip alone in its round, with a fresh history (no fingerprint/FAD carry-over)."""
    from tuneforge.scoring.base import Submission
    from tuneforge.scoring.history import InMemoryHistory

    engine.history = InMemoryHistory()
    result = engine.score_round(challenge, [Submission("bench", audio, GENERATION_MS)])[0]
    return Scored(
        float(result.final_score),
        dict(result.score_breakdown),
        dict(result.penalties),
        dict(result.details),
    )


def format_table(report: dict[str, Any]) -> str:
    lines = [f"split {report['split']}: {report['real_pieces']} real pieces "
             f"({report['renders']} renders)", "real vs fake (final score):"]  # fmt: skip
    for kind, row in report["fakes"].items():
        lines.append(f"  {kind:<20} win {row['win_rate']}  median margin {row['median_margin']}")
        lines.extend(_lost_lines(row))
    lines.append("original vs degraded twin (named scorer):")
    for name, row in report["twins"].items():
        lines.append(f"  {name:<34} win {row['win_rate']}  median margin {row['median_margin']}")
        lines.extend(_lost_lines(row))
    lines.append(f"key exact {report['key_exact']}, tempo {report['tempo_accuracy']}")
    lines.append(
        f"false positives on real clips: artifact {report['artifact_false_positive_rate']}, "
        f"FAD {report['fad_false_positive_rate']}"
    )
    row = report["musicgen_vs_synth"]
    lines.append(f"fadtk MusicGen vs synth: win {row['win_rate']} over {row['pairs']} pairs")
    return "\n".join(lines)


def _lost_lines(row: dict[str, Any]) -> list[str]:
    """With --pairs: one indented line per pair the fake or twin won (real margin in brackets)."""
    return [f"      lost: {pair}" for pair in row.get("lost", [])]
