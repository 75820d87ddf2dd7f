"""The miner as operators run it: neurons/miner.py, startup checks, and the transport bench."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.helpers.miner_server import free_port, make_net, post_generate, synapse_body
from tests.helpers.wallets import make_wallet
from tuneforge.chain.local import LocalChain
from tuneforge.core.audio import decode_wav
from tuneforge.core.config import parse_settings
from tuneforge.generation.settings import GenerationSettings
from tuneforge.miner.config import MinerSettings
from tuneforge.miner.run import (
    MinerStartupError,
    check_registered,
    load_backend,
    published_address,
)
from tuneforge.tools.bench.cli import app as bench_app

REPO = Path(__file__).resolve().parents[1]


def test_neurons_miner_help_exits_zero() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "neurons" / "miner.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for flag in ("--netuid", "--miner.min_stake", "--axon.external_ip", "--generation.backend"):
        assert flag in result.stdout


def test_flags_override_defaults_and_min_stake_follows_the_network() -> None:
    settings = parse_settings(
        MinerSettings, ["--network", "finney", "--miner.queue_size", "7", "--netuid", "9"]
    )
    assert (settings.network, settings.netuid, settings.miner.queue_size) == ("finney", 9, 7)
    assert settings.effective_min_stake() == 1000.0
    assert parse_settings(MinerSettings, ["--network", "localnet"]).effective_min_stake() == 0.0
    explicit = parse_settings(MinerSettings, ["--miner.min_stake", "42.5"])
    assert explicit.effective_min_stake() == 42.5


def test_published_address_prefers_external_and_refuses_the_wildcard() -> None:
    behind_nat = parse_settings(
        MinerSettings, ["--axon.external_ip", "203.0.113.7", "--axon.external_port", "443"]
    )
    assert published_address(behind_nat) == ("203.0.113.7", 443)
    local = parse_settings(MinerSettings, ["--axon.ip", "127.0.0.1", "--axon.port", "9000"])
    assert published_address(local) == ("127.0.0.1", 9000)
    with pytest.raises(MinerStartupError, match="external_ip"):
        published_address(parse_settings(MinerSettings, []))


def test_unregistered_miner_hotkey_is_refused_at_startup(tmp_path: Path) -> None:
    chain = LocalChain.create(tmp_path / "chain.db")
    with pytest.raises(MinerStartupError, match="not registered"):
        check_registered(chain, make_wallet(tmp_path, "m").hotkey.ss58_address, "localnet", 234)


def test_the_model_is_loaded_at_startup_and_a_missing_model_stops_the_miner(
    tmp_path: Path,
) -> None:
    from tests.helpers.tiny_musicgen import build_tiny_musicgen

    model_dir = build_tiny_musicgen(tmp_path / "tiny")
    backend = load_backend(GenerationSettings(backend="musicgen", model=str(model_dir)))
    assert backend.loaded  # type: ignore[attr-defined]
    missing = GenerationSettings(backend="musicgen", model=str(tmp_path / "no-such-model"))
    with pytest.raises(MinerStartupError, match="could not load the musicgen backend"):
        load_backend(missing)


@pytest.mark.slow
def test_neurons_miner_publishes_its_axon_serves_and_stops_cleanly(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    validator = net.add_caller("validator", stake=10.0)
    port = free_port()
    env = {**os.environ, "TUNEFORGE_MINER__METAGRAPH_REFRESH_S": "0.5"}
    argv = [
        sys.executable,
        str(REPO / "neurons" / "miner.py"),
        "--network", "localnet",
        "--localnet.path", str(net.chain.path),
        "--wallet.name", "miner",
        "--wallet.path", str(tmp_path / "wallets"),
        "--axon.ip", "127.0.0.1",
        "--axon.port", str(port),
        "--generation.backend", "synth",
        "--logging.level", "WARNING",
    ]  # fmt: skip
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        axon = None
        while axon is None:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            assert time.monotonic() < deadline, "the miner never published its axon"
            neuron = net.chain.metagraph().by_hotkey(net.miner_hotkey)
            axon = neuron.axon if neuron else None
            time.sleep(0.1)
        assert axon == f"127.0.0.1:{port}"
        body = synapse_body(duration_seconds=2.0)
        with httpx.Client(base_url=f"http://{axon}", timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    response = post_generate(client, validator, net.miner_hotkey, body)
                    break
                except httpx.ConnectError:
                    assert process.poll() is None, process.communicate()[0].decode()
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            assert response.status_code == 200, response.text
            assert decode_wav(response.content).duration_seconds == pytest.approx(2.0, abs=1e-3)
            # A validator registered after startup is admitted once the metagraph refreshes.
            late = net.add_caller("late_validator", stake=10.0)
            deadline = time.monotonic() + 15
            while (
                status := post_generate(client, late, net.miner_hotkey, body).status_code
            ) == 403:
                assert time.monotonic() < deadline, "the miner never refreshed its metagraph"
                time.sleep(0.2)
            assert status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=20)[0].decode()
    assert process.returncode == 0, output


def test_bench_transport_prints_valid_json() -> None:
    result = CliRunner().invoke(bench_app, ["transport", "--requests", "10", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["requests"] == 10
    assert report["payload_bytes"] > 2_600_000  # 15 s of 44.1 kHz stereo 16-bit PCM + header
    assert report["base64_json_payload_bytes"] > report["payload_bytes"] * 4 / 3
    assert 0 < report["median_ms"] <= report["p95_ms"]
    assert report["speedup"] == pytest.approx(
        report["base64_json_median_ms"] / report["median_ms"], rel=0.01
    )
