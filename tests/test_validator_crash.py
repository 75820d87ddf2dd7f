"""Crash safety: SIGKILL the validator process in the middle of a round, restart, go on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.miner_server import serve_app
from tests.helpers.state_tools import fetch_one
from tests.helpers.validator_fake_miners import (
    fake_miner_app,
    make_fake_miners,
    register_fake_miners,
)
from tests.helpers.validator_net import ValidatorNet, make_validator_net
from tuneforge.validator.state import ValidatorState

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _start(net: ValidatorNet, log: Path) -> subprocess.Popen[bytes]:
    args = [
        sys.executable,
        str(REPO / "neurons" / "validator.py"),
        "--network", "localnet",
        "--localnet.path", str(net.chain.path),
        "--wallet.name", "validator",
        "--wallet.path", str(net.tmp_path / "wallets"),
        "--neuron.state_path", str(net.state_path),
        "--neuron.round_interval_s", "0",
        "--neuron.min_challenge_seconds", "2",
        "--neuron.max_challenge_seconds", "2",
        "--neuron.timeout", "120",
        "--neuron.timeout_per_second", "0",
        "--logging.level", "INFO",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)


def _wait(predicate: object, timeout: float, what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if process.poll() is not None:
            raise AssertionError(f"validator exited ({process.returncode}) while waiting: {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _counts(path: Path) -> tuple[int, int, dict[tuple[int, str], float], list[int]]:
    state = ValidatorState(path)
    try:
        completed = state.rounds.completed()
        rounds = fetch_one(state, "SELECT COUNT(*) FROM rounds")[0]
        return (
            completed,
            rounds,
            state.miners.emas(),
            [m.rounds_queried for m in state.miners.all()],
        )
    finally:
        state.close()


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_sigkill_mid_round_loses_nothing_and_the_next_round_runs(tmp_path: Path) -> None:
    net = make_validator_net(tmp_path)
    miners = make_fake_miners(tmp_path, ["good", "hold"])
    miners.answer_first = 1  # round 1 completes; round 2 is held open by the "hold" miner
    log = tmp_path / "validator.log"
    with serve_app(fake_miner_app(miners)) as url:
        try:
            register_fake_miners(net.chain, miners, url.removeprefix("http://"))
            process = _start(net, log=log)
            try:
                _wait(miners.held.is_set, 90, "round 2 in flight", process)
                # The validator waits inside round 2: its state cannot change until we let go.
                completed, rounds, emas, queried = _counts(net.state_path)
                peak = _peak_rss_mb(process.pid)
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            finally:
                if process.poll() is None:
                    process.kill()
            print(f"\nvalidator peak RSS after {completed} round: {peak:.0f} MB")
            assert (completed, rounds) == (1, 1)
            assert queried == [1, 1]  # the committed round queried both miners
            assert len(emas) == 2 and all(v > 0 for v in emas.values())
            assert _counts(net.state_path) == (completed, rounds, emas, queried)

            # Restart: round 2 is run again (a new attempt) and completes; round 3 is held, and
            # SIGTERM then stops the validator cleanly without counting the unfinished round.
            miners.held.clear()
            miners.answer_first = miners.hold_requests + 1
            restarted = _start(net, log=log)
            try:
                _wait(miners.held.is_set, 90, "round 3 in flight", restarted)
                restarted.send_signal(signal.SIGTERM)
                assert restarted.wait(timeout=30) == 0, log.read_text()[-3000:]
            finally:
                if restarted.poll() is None:
                    restarted.kill()
        finally:
            miners.hold.set()  # release held requests so the server can stop
    completed2, rounds2, emas2, queried2 = _counts(net.state_path)
    assert (completed2, rounds2, queried2) == (2, 2, [2, 2])
    assert set(emas2) == set(emas) and all(emas2[k] != emas[k] for k in emas)
    assert "abandoned" in log.read_text()
