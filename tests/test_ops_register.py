"""scripts/register.sh drives btcli in the documented order and never spends in a dry run."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "register.sh"


def _stub_btcli(bin_dir: Path, log: Path, fail_on: str = "") -> None:
    """A btcli stand-in that records each call, one line of argv, and can fail on demand."""
    stub = bin_dir / "btcli"
    stub.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> "{log}"\n'
        f'if [ -n "{fail_on}" ] && [[ "$*" == *"{fail_on}"* ]]; then exit 7; fi\n'
        "exit 0\n"
    )
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)


def _run(tmp_path: Path, *args: str, fail_on: str = "", stdin: str = "") -> tuple[int, str, list]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    _stub_btcli(bin_dir, log, fail_on)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return proc.returncode, proc.stdout + proc.stderr, calls


def test_dry_run_calls_read_only_commands_in_order_and_never_registers(tmp_path: Path) -> None:
    code, output, calls = _run(
        tmp_path,
        "--wallet",
        "tf",
        "--hotkey",
        "m1",
        "--dry-run",
        "--ip",
        "1.2.3.4",
        "--port",
        "8091",
    )
    assert code == 0, output
    verbs = [" ".join(call.split()[:2]) for call in calls]
    assert verbs == [
        "wallet balance",
        "subnets burn-cost",
        "subnets register",
        "wallet registrations",
    ]
    register = calls[2]
    assert "--netuid 234" in register and "-n test" in register and "--dry-run" in register
    assert not any("--yes" in call and "register" in call for call in calls)
    # Mutations are shown, not run.
    assert "btcli wallet create" in output and "(dry run: not run)" in output
    assert "btcli tx serve-axon --netuid 234 --ip 1.2.3.4 --port 8091" in output
    assert "+ btcli wallet balance" in output  # each command printed before it runs


def test_real_run_asks_before_spending_and_stops_on_no(tmp_path: Path) -> None:
    wallet_dir = tmp_path / ".bittensor" / "wallets" / "tf"
    (wallet_dir / "hotkeys").mkdir(parents=True)
    (wallet_dir / "coldkeypub.txt").write_text("{}")
    (wallet_dir / "hotkeys" / "m1").write_text("{}")
    code, output, calls = _run(tmp_path, "--wallet", "tf", "--hotkey", "m1", stdin="n\n")
    assert code == 1
    assert "not registering" in output
    assert sum("subnets register" in call for call in calls) == 1  # only the preview
    assert "--dry-run" in [c for c in calls if "subnets register" in c][0]


def test_confirmed_run_registers_then_checks_uid(tmp_path: Path) -> None:
    code, output, calls = _run(tmp_path, "--wallet", "tf", "--hotkey", "m1", "--yes")
    assert code == 0, output
    verbs = [" ".join(call.split()[:2]) for call in calls]
    assert verbs == [
        "wallet create",
        "wallet balance",
        "subnets burn-cost",
        "subnets register",
        "subnets register",
        "wallet registrations",
    ]
    assert "--dry-run" in calls[3] and "--yes" in calls[4]


@pytest.mark.parametrize("failing", ["burn-cost", "balance"])
def test_first_failure_stops_the_script(tmp_path: Path, failing: str) -> None:
    code, _output, calls = _run(tmp_path, "--dry-run", fail_on=failing)
    assert code == 7
    assert calls[-1].split()[1] == failing
    assert not any("subnets register" in call for call in calls)


@pytest.mark.parametrize("args", [["--wallet"], ["--wallet", "--hotkey", "m1"], ["--netuid"]])
def test_an_option_without_its_value_is_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    code, output, calls = _run(tmp_path, *args)
    assert code == 2 and calls == []
    assert f"{args[0]} needs a value" in output and "unbound variable" not in output
