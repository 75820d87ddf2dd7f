"""Operator commands work on their documented defaults and print only their own output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tuneforge.chain.local import LocalChain
from tuneforge.tools.cli import app

runner = CliRunner()


def test_validator_status_defaults_to_the_validators_state_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    result = runner.invoke(app, ["validator", "status"])
    # No --state needed: it reads the documented default (absent here, so it says where it looked).
    assert result.exit_code == 2, result.output
    assert f"no validator state at {tmp_path}/.tuneforge/validator/state.db" in result.output


def test_validator_status_finds_a_localnet_validator_through_workdir(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validator", "status", "--workdir", str(tmp_path)])
    assert result.exit_code == 2
    assert f"no validator state at {tmp_path}/validator/state.db" in result.output


def test_chain_show_prints_no_debug_lines(tmp_path: Path) -> None:
    """A real process: loguru's default handler (DEBUG, on the process's stderr) is what an
    operator saw."""
    LocalChain.create(tmp_path / "chain.db").close()
    done = subprocess.run(
        [sys.executable, "-m", "tuneforge.tools.cli", "chain", "show",
         "--localnet.path", str(tmp_path / "chain.db")],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("LocalChain (test double) netuid 234")
    assert "DEBUG" not in done.stderr + done.stdout and "INFO" not in done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["localnet"],
        ["score"],
        ["api", "list-accounts"],
        ["validator", "status"],
        ["bench", "scoring"],
    ],
)
def test_flags_are_shown_as_flags_not_as_options_taking_a_bool(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], terminal_width=120)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "--json" in line or "--keep" in line]
    assert rows
    assert not any("<bool>" in row for row in rows)  # `--json true` is not how a flag is given
