"""A miner on a public network refuses an address validators cannot reach (documentation
placeholder, private, loopback), with the one-line fix; test setups may publish them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tuneforge.miner.run import MinerStartupError, refuse_unreachable

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "ip", ["203.0.113.7", "198.51.100.1", "192.0.2.9", "10.0.0.5", "192.168.1.2", "127.0.0.1",
           "169.254.1.1", "2001:db8::1", "::1", "fd00::1"],
)  # fmt: skip
@pytest.mark.parametrize("network", ["finney", "test", "wss://entrypoint-finney.example"])
def test_unreachable_addresses_are_refused_on_public_networks(ip: str, network: str) -> None:
    with pytest.raises(MinerStartupError, match="TUNEFORGE_AXON__EXTERNAL_IP"):
        refuse_unreachable(ip, network)


@pytest.mark.parametrize("network", ["localnet", "local", "ws://127.0.0.1:9944"])
def test_test_networks_may_publish_loopback_and_private_addresses(network: str) -> None:
    for ip in ("127.0.0.1", "10.0.0.5", "203.0.113.7"):
        refuse_unreachable(ip, network)


def test_a_public_address_is_accepted_on_finney() -> None:
    refuse_unreachable("8.8.8.8", "finney")
    refuse_unreachable("2606:4700:4700::1111", "test")


def test_the_example_miner_config_ships_no_ip() -> None:
    lines = (ROOT / "miner.env.example").read_text().splitlines()
    assert "TUNEFORGE_AXON__EXTERNAL_IP=" in lines


def test_the_miner_exits_with_the_config_error_code_on_the_placeholder_ip(tmp_path: Path) -> None:
    """The old example config's placeholder: exit code 2 (pm2 stops, no restart loop) and one
    line naming the fix, before any wallet or chain is touched (none exists here)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TUNEFORGE_NETWORK": "test",
        "TUNEFORGE_AXON__EXTERNAL_IP": "203.0.113.7",
        "TUNEFORGE_WALLET__PATH": str(tmp_path / "no-wallets"),
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "neurons" / "miner.py"), "--axon.port", "8091"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "203.0.113.7 is a private or documentation (placeholder) address" in done.stderr
    assert "TUNEFORGE_AXON__EXTERNAL_IP" in done.stderr
    assert "Traceback" not in done.stderr
