"""Start-up: flags, clear errors for a missing wallet or an unloadable scoring model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tuneforge.config import parse_settings
from tuneforge.validator.config import ScoringModelSettings, ValidatorSettings
from tuneforge.validator.run import ValidatorStartupError, load_models

REPO = Path(__file__).resolve().parents[1]


def _neuron(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(REPO / "neurons" / "validator.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_flags_reach_the_validator_settings() -> None:
    settings = parse_settings(
        ValidatorSettings,
        ["--neuron.sample_size", "4", "--neuron.alpha", "0.5", "--scoring.allow_missing_models"],
    )
    assert settings.neuron.sample_size == 4 and settings.neuron.alpha == 0.5
    assert settings.scoring.allow_missing_models is True
    assert settings.netuid == 234 and settings.network == "test"
    assert settings.neuron.max_response_bytes == 32 * 1024 * 1024


def test_neuron_help_lists_the_validator_flags() -> None:
    result = _neuron("--help")
    assert result.returncode == 0
    for flag in ("--neuron.sample_size", "--neuron.state_path", "--scoring.clap", "--api.publish"):
        assert flag in result.stdout


def test_a_missing_wallet_is_a_clear_start_up_error(tmp_path: Path) -> None:
    result = _neuron(
        "--network", "localnet", "--localnet.path", str(tmp_path / "chain.db"),
        "--wallet.name", "nobody", "--wallet.path", str(tmp_path / "wallets"),
        "--neuron.state_path", str(tmp_path / "state.db"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "nobody" in result.stderr and "not found" in result.stderr


def test_an_unloadable_scoring_model_stops_start_up_unless_allowed(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-clap")
    with pytest.raises(ValidatorStartupError, match="allow_missing_models"):
        load_models(ScoringModelSettings(clap=missing, device="cpu"))
    models = load_models(
        ScoringModelSettings(clap=missing, device="cpu", allow_missing_models=True)
    )
    assert models is not None and not models.has("clap")
    assert "missing" in models.describe()["clap"]
    assert load_models(ScoringModelSettings()) is None
