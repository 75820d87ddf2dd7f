"""`tuneforge chain init | register | show` over a real LocalChain file."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tuneforge.chain.local import LocalChain
from tuneforge.tools.chain import app

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_init_register_and_show_json(tmp_path: Path) -> None:
    path = str(tmp_path / "chain.db")
    code, out, _ = _invoke(
        "init", "--localnet.path", path, "--block-time", "0.5", "--weights-rate-limit", "7"
    )
    assert code == 0, out
    code, out, _ = _invoke(
        "register",
        "--localnet.path",
        path,
        "--hotkey",
        "5Validator",
        "--coldkey",
        "5Cold",
        "--stake",
        "1500",
        "--validator-permit",
    )
    assert code == 0 and "uid 0" in out
    code, out, _ = _invoke(
        "register", "--localnet.path", path, "--hotkey", "5Miner", "--axon", "127.0.0.1:9123"
    )
    assert code == 0 and "uid 1" in out
    LocalChain(path, hotkey="5Validator").set_weights({1: 2.0}, version_key=1000)

    code, out, _ = _invoke("show", "--localnet.path", path, "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["netuid"] == 234
    assert shown["weights_rate_limit"] == 7
    assert shown["block_time_s"] == 0.5
    validator, miner = shown["neurons"]
    assert validator == {
        "uid": 0,
        "hotkey": "5Validator",
        "coldkey": "5Cold",
        "stake": 1500.0,
        "validator_permit": True,
        "axon": None,
        "last_update": validator["last_update"],
        "weight_sets": 1,
    }
    assert (miner["hotkey"], miner["axon"], miner["validator_permit"]) == (
        "5Miner",
        "127.0.0.1:9123",
        False,
    )
    assert shown["weights"] == {"0": {"1": 1.0}}


def test_show_prints_a_readable_table(tmp_path: Path) -> None:
    path = str(tmp_path / "chain.db")
    _invoke("init", "--localnet.path", path)
    _invoke("register", "--localnet.path", path, "--hotkey", "5Miner", "--axon", "10.0.0.2:80")
    code, out, _ = _invoke("show", "--localnet.path", path)
    assert code == 0
    assert "5Miner" in out and "10.0.0.2:80" in out


def test_commands_on_a_missing_file_fail_with_a_hint(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.db")
    code, _, err = _invoke("register", "--localnet.path", missing, "--hotkey", "5X")
    assert code == 1
    assert "does not exist" in err and "tuneforge chain init" in err
    code, _, err = _invoke("show", "--localnet.path", missing)
    assert code == 1


def test_register_rejects_a_malformed_axon(tmp_path: Path) -> None:
    path = str(tmp_path / "chain.db")
    _invoke("init", "--localnet.path", path)
    code, _, err = _invoke(
        "register", "--localnet.path", path, "--hotkey", "5X", "--axon", "nowhere"
    )
    assert code == 1 and "ip:port" in err
    assert LocalChain(path).uid_of("5X") is None
