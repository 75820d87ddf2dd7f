"""Start-up: flags, clear errors for a missing wallet or an unloadable scoring model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import signals
from tests.helpers.wallets import make_wallet
from tuneforge.core.config import parse_settings
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring.base import Submission
from tuneforge.scoring.engine import ScoringEngine
from tuneforge.scoring.history import InMemoryHistory
from tuneforge.validator.config import ScoringModelSettings, ValidatorSettings
from tuneforge.validator.run import ValidatorStartupError, check_scorer_set, load_models

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
        ["--neuron.sample_size", "4", "--neuron.alpha", "0.5", "--scoring.allow_missing"],
    )
    assert settings.neuron.sample_size == 4 and settings.neuron.alpha == 0.5
    assert settings.scoring.allow_missing is True
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
    with pytest.raises(ValidatorStartupError, match="allow_missing"):
        load_models(ScoringModelSettings(clap=missing, device="cpu"))
    models = load_models(ScoringModelSettings(clap=missing, device="cpu", allow_missing=True))
    assert models is not None and not models.has("clap")
    assert "missing" in models.describe()["clap"]
    assert load_models(ScoringModelSettings()) is None


def test_a_validator_on_testnet_without_clap_refuses_to_start_with_one_line(
    tmp_path: Path,
) -> None:
    make_wallet(tmp_path, "val")
    result = _neuron(
        "--network", "test", "--wallet.name", "val", "--wallet.path", str(tmp_path / "wallets"),
        "--neuron.state_path", str(tmp_path / "state.db"), "--scoring.device", "cpu",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("validator: network 'test' needs the whole scorer set")
    assert "model clap" in line and "scorer clap" in line and "allow_missing" in line


def test_only_localnet_or_allow_missing_may_run_a_degraded_scorer_set(tmp_path: Path) -> None:
    engine = ScoringEngine.create(InMemoryHistory(), None)
    assert engine.degraded  # no neural models here
    for network in ("test", "finney", "ws://127.0.0.1:9944"):
        with pytest.raises(ValidatorStartupError, match="needs the whole scorer set"):
            check_scorer_set(engine, network, allow_missing=False)
        check_scorer_set(engine, network, allow_missing=True)  # an explicit experiment
    check_scorer_set(engine, "localnet", allow_missing=False)
    # ...and every result of a degraded validator says so.
    (score,) = engine.score_round(
        MusicGenerationSynapse(prompt="x", duration_seconds=2),
        [Submission("m", signals.tonal_piece("C major", 100, 2.0), generation_ms=1.0)],
    )
    assert score.degraded and score.score_breakdown["clap"] is None


def test_a_validator_that_does_not_train_never_imports_torch(tmp_path: Path) -> None:
    """torch is ~200 MB resident in the validator process for its whole life; a signal-only
    validator needs it only to train the preference head, so run() imports that lazily. The
    start-up stops at the missing wallet, after run() has imported everything it needs."""
    script = (
        "import sys\n"
        "sys.argv[0] = 'validator'\n"
        "from neurons.validator import main\n"
        f"code = main(['--network', 'localnet', '--localnet.path', {str(tmp_path / 'c.db')!r},\n"
        f"             '--wallet.name', 'nobody', '--wallet.path', {str(tmp_path)!r}])\n"
        "assert code == 2, code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
