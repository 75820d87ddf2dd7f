"""`tuneforge generate`: a prompt becomes a WAV with the miner's backend code, timed."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tuneforge.core.audio import decode_wav
from tuneforge.tools.cli import app


def test_generate_writes_the_requested_clip_and_prints_the_real_time_factor(
    tmp_path: Path,
) -> None:
    out = tmp_path / "clip.wav"
    args = ["generate", "--prompt", "calm piano", "--tempo", "90", "--key", "C major"]
    result = CliRunner().invoke(app, [*args, "--backend", "synth", "--duration", "2", "-o", out])
    assert result.exit_code == 0, result.output
    audio = decode_wav(out.read_bytes())
    assert abs(audio.duration_seconds - 2.0) < 1e-3
    assert "real-time factor" in result.output and "synth" in result.output


def test_generate_reports_a_model_that_cannot_load_and_a_bad_request(tmp_path: Path) -> None:
    missing = ["--backend", "ace-step", "--model", str(tmp_path / "absent"), "--device", "cpu"]
    result = CliRunner().invoke(app, ["generate", "--prompt", "x", *missing, "-o", tmp_path / "o"])
    assert result.exit_code == 1
    assert "cannot load ACE-Step" in result.output
    bad = CliRunner().invoke(app, ["generate", "--prompt", "x", "--key", "H major"])
    assert bad.exit_code == 2 and "invalid request" in bad.output


def test_generate_score_scores_the_written_clip_against_the_same_request(tmp_path: Path) -> None:
    out = tmp_path / "clip.wav"
    args = ["generate", "--prompt", "calm piano", "--key", "C major", "--duration", "2"]
    result = CliRunner().invoke(app, [*args, "--backend", "synth", "-o", out, "--score"])
    assert result.exit_code == 0, result.output
    assert f"{out}: final " in result.output and "scored in" in result.output
