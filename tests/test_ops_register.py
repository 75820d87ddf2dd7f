"""scripts/register.sh drives btcli in the documented order and never spends in a dry run."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "register.sh"


def _stub_btcli(bin_dir: Path, log: Path, fail_on: str = "", fail_output: str = "") -> None:
    """A btcli stand-in that records each call, one line of argv, and can fail on demand
    (printing `fail_output` to stderr, as btcli prints its `error[CODE]` diagnostics)."""
    (bin_dir / "fail_output.txt").write_text(fail_output)
    stub = bin_dir / "btcli"
    stub.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> "{log}"\n'
        f'if [ -n "{fail_on}" ] && [[ "$*" == *"{fail_on}"* ]]; then\n'
        f'  cat "{bin_dir / "fail_output.txt"}" >&2; exit 7\n'
        "fi\n"
        "exit 0\n"
    )
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)


def _run(
    tmp_path: Path, *args: str, fail_on: str = "", stdin: str = "", fail_output: str = ""
) -> tuple[int, str, list]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    _stub_btcli(bin_dir, log, fail_on, fail_output)
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


# btcli 11's diagnostics as it prints them (`error[CODE]: ...`, `note: ... `Name``).
REGISTER_FAILURES = [
    (
        "error[RATE_LIMITED]: too many registrations\nnote: the chain rejected the call with "
        "`TooManyRegistrationsThisInterval`",
        "rerun in a few minutes",
    ),
    (
        "error[INSUFFICIENT_BALANCE]: balance too low\nnote: the chain rejected the call with "
        "`NotEnoughBalanceToStake`",
        "fund the coldkey",
    ),
    (
        "error[DISABLED]: registration is off\nnote: the chain rejected the call with "
        "`SubNetRegistrationDisabled`",
        "switched off on netuid 234",
    ),
    (
        "error: MEV shield is not active on this network (MevShield.NextKey is unset)\n"
        "help: burned_register cannot submit unshielded",
        "only registers MEV-shielded",
    ),
    (
        "error: registration must be submitted MEV-shielded\nhelp: collateral / "
        "burned-registration AMM fills cannot run unshielded; omit --no-mev-shield",
        "btcli config set mev_shield true",
    ),
    (
        "error[SUBNET_NOT_EXISTS]: subnet 234 does not exist",
        "does not exist on 'test'",
    ),
    (
        "error[LIMIT_EXCEEDED]: price moved\nnote: the chain rejected the call with "
        "`RegistrationPriceLimitExceeded`",
        "cost moved",
    ),
    ("error: something nobody has seen before", "btcli reported the error above"),
]


@pytest.mark.parametrize(("output", "advice"), REGISTER_FAILURES)
def test_each_registration_failure_gets_a_plain_message_and_the_next_step(
    tmp_path: Path, output: str, advice: str
) -> None:
    code, text, calls = _run(tmp_path, "--yes", fail_on="subnets register", fail_output=output)
    assert code == 7, text
    assert advice in text, text
    assert "Next:" in text or "rerun" in text
    assert not any("wallet registrations" in call for call in calls)


def test_an_already_registered_hotkey_is_not_a_failure(tmp_path: Path) -> None:
    output = (
        "error[ALREADY_EXISTS]: already registered\nnote: the chain rejected the call with "
        "`HotKeyAlreadyRegisteredInSubNet`"
    )
    code, text, calls = _run(tmp_path, "--yes", fail_on="subnets register", fail_output=output)
    assert code == 0, text
    assert "already registered" in text
    assert sum("subnets register" in call for call in calls) == 1  # nothing submitted after
    assert "wallet registrations" in calls[-1]


def test_a_shielded_registration_of_unknown_fate_checks_the_uid_then_fails(
    tmp_path: Path,
) -> None:
    output = (
        "error: the MEV shield accepted the encrypted submission, but the decrypted extrinsic "
        "(0xabc) was not included before its era expired"
    )
    # Only the real submission fails (the preview passed): it is the one sent with --yes.
    code, text, calls = _run(tmp_path, "--yes", fail_on="--yes", fail_output=output)
    assert code == 7, text
    assert "unknown outcome" in text and "may still have registered" in text
    assert "wallet registrations" in calls[-1]  # the uid check tells whether it landed
