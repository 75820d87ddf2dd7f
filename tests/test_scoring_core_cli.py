"""`tuneforge score` and `tuneforge bench scoring` outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.helpers import signals
from tuneforge.core.audio import encode_wav
from tuneforge.scoring.weights import PENALTY_NAMES, SCORER_NAMES
from tuneforge.tools.bench import scoring as bench_scoring
from tuneforge.tools.score import score_command

# the same command functions `tuneforge` registers, mounted alone so this test does not depend
# on every other sub-app importing cleanly
app = typer.Typer()
app.command("score")(score_command)
app.command("bench-scoring")(bench_scoring.command)
runner = CliRunner()


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("wavs")
    files = {
        "piece.wav": encode_wav(signals.tonal_piece("A minor", 100, 6)),
        "copy.wav": encode_wav(signals.scaled(signals.tonal_piece("A minor", 100, 6), 0.7)),
        "broken.wav": b"RIFF\x00\x00\x00\x00WAVEjunk",
    }
    paths = []
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_score_json_prints_one_object_per_file_with_the_agreed_keys(wavs: list[Path]) -> None:
    args = ["score", *map(str, wavs), "--key", "A minor", "--tempo", "100", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["file"] for r in lines] == [str(p) for p in wavs]
    for record in lines:
        assert set(record) >= {
            "file",
            "final_score",
            "composite",
            "score_breakdown",
            "penalties",
            "reasons",
            "details",
            "timings_ms",
        }
        assert list(record["score_breakdown"]) == list(SCORER_NAMES)
        assert list(record["penalties"]) == list(PENALTY_NAMES)
    piece, copy, broken = lines
    assert piece["final_score"] == 0.0 == copy["final_score"]  # one round: the copy is caught
    assert "copy of" in copy["reasons"]["fingerprint_penalty"]
    assert broken["error"] and broken["final_score"] == 0.0
    assert piece["score_breakdown"]["clap"] is None and piece["degraded"] is True
    assert piece["reasons"]["clap"].startswith("not measured on this validator: ")


def test_score_independent_does_not_compare_files(wavs: list[Path]) -> None:
    result = runner.invoke(app, ["score", str(wavs[0]), str(wavs[1]), "--independent", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert all(r["penalties"]["fingerprint_penalty"] == 1.0 for r in lines)
    assert all(r["final_score"] > 0.1 for r in lines)


def test_score_table_names_excluded_scorers_and_why(wavs: list[Path]) -> None:
    result = runner.invoke(app, ["score", str(wavs[0])])
    assert result.exit_code == 0, result.output
    assert "not measured here" in result.stdout and " n/a " in result.stdout
    assert "final" in result.stdout and "artifact_penalty" in result.stdout


def test_bench_scoring_json_reports_cpu_seconds_per_scorer() -> None:
    result = runner.invoke(app, ["bench-scoring", "--duration", "5", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
    assert set(report["per_scorer_cpu_s"]) == {*SCORER_NAMES, *PENALTY_NAMES}
    assert 0.0 < report["total_cpu_s"] <= report["target_cpu_s"]
    assert report["per_scorer_cpu_s"]["artifact_penalty"] > 0.0


def test_score_on_a_wav_of_huge_finite_floats_reports_zero_and_exits_cleanly(
    tmp_path: Path,
) -> None:
    import numpy as np
    import soundfile as sf

    path = tmp_path / "huge.wav"
    sf.write(path, np.full(32_000, 1e20, dtype=np.float32), 16_000, subtype="FLOAT")
    result = runner.invoke(app, ["score", str(path), "--json"])
    assert result.exit_code == 0, result.output
    [record] = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert record["final_score"] == 0.0 and "out of range" in record["error"]
