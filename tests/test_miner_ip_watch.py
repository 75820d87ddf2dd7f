"""The miner re-publishes its axon when its public IP changes (LocalChain, real HTTP and shell).

An IP server on 127.0.0.1 answers whatever text a test sets, as a home router's "what is my IP"
service would after a reconnect; the watcher must follow it onto the chain, and survive bad
answers and chain refusals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from bittensor.sp_core import Keypair

from tests.helpers.miner_server import free_port, make_net
from tuneforge.chain.local import LocalChain
from tuneforge.core.config import parse_settings
from tuneforge.miner.config import MinerSettings
from tuneforge.miner.ip_watch import (
    MAX_ANSWER_BYTES,
    CommandIpSource,
    IpSourceConfigError,
    IpSourceError,
    IpWatcher,
    StaticIpSource,
    UrlIpSource,
    ip_source_from_spec,
    parse_ip,
)
from tuneforge.miner.run import MinerStartupError, ip_source, startup_address

REPO = Path(__file__).resolve().parents[1]
MINER = Keypair.create_from_uri("//TuneForgeIpWatchMiner").ss58_address
PORT = 8091


class IpServer:
    """A 'what is my IP' service on 127.0.0.1 whose answer and status the test sets."""

    def __init__(self) -> None:
        self.answer = b"203.0.113.7\n"
        self.status = 200
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                self.send_response(owner.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(owner.answer)))
                self.end_headers()
                self.wfile.write(owner.answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ip"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def ip_server() -> Iterator[IpServer]:
    server = IpServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture()
def chain(tmp_path: Path) -> LocalChain:
    # No serving rate limit here: these tests are about the IP changing (test_miner_axon.py
    # covers the rate limit, which the watcher meets as one more refusal retried next check).
    admin = LocalChain.create(tmp_path / "chain.db", serving_rate_limit=0)
    admin.register(MINER)
    return LocalChain(admin.path, admin.netuid, hotkey=MINER)


def axon_on_chain(chain: LocalChain) -> str | None:
    neuron = chain.metagraph().by_hotkey(MINER)
    return neuron.axon if neuron else None


def test_parse_ip_accepts_one_address_and_refuses_what_validators_cannot_call() -> None:
    assert parse_ip(" 203.0.113.7\r\n") == "203.0.113.7"
    assert parse_ip("2001:DB8::1\n") == "2001:db8::1"
    for bad in ("", "  \n", "not-an-ip", "203.0.113.7 203.0.113.8", "0.0.0.0", "::", "224.0.0.1"):
        with pytest.raises(IpSourceError):
            parse_ip(bad)
    with pytest.raises(IpSourceError, match="not one IP"):
        parse_ip("<html>" + "x" * 500)


def test_ip_source_setting_selects_static_url_command_or_none() -> None:
    assert ip_source_from_spec("", "") is None
    assert ip_source_from_spec("none", "203.0.113.7") is None
    default = ip_source_from_spec("", "203.0.113.7")
    assert isinstance(default, StaticIpSource) and default.current_ip() == "203.0.113.7"
    url = ip_source_from_spec("url:https://ip.example/", "")
    assert isinstance(url, UrlIpSource) and url.url == "https://ip.example/"
    cmd = ip_source_from_spec("cmd: echo 203.0.113.9", "")
    assert isinstance(cmd, CommandIpSource) and cmd.command == "echo 203.0.113.9"
    for spec, external in (("static", ""), ("url:ftp://x/", ""), ("cmd:", ""), ("static", "x")):
        with pytest.raises(IpSourceConfigError):
            ip_source_from_spec(spec, external)
    with pytest.raises(ValueError, match="ip_source"):
        parse_settings(MinerSettings, ["--miner.ip_source", "dns"])
    settings = parse_settings(
        MinerSettings, ["--miner.ip_source", "cmd:false", "--miner.ip_check_interval_s", "7"]
    )
    assert settings.miner.ip_check_interval_s == 7.0
    with pytest.raises(MinerStartupError, match="could not read the public IP"):
        startup_address(settings, ip_source(settings))


def test_watcher_republishes_the_axon_only_when_the_ip_changes(
    chain: LocalChain, ip_server: IpServer
) -> None:
    chain.serve("203.0.113.7", PORT)  # what the miner published at startup
    watcher = IpWatcher(chain, UrlIpSource(ip_server.url), PORT, published_ip="203.0.113.7")
    assert watcher.check_once() is False
    assert axon_on_chain(chain) == f"203.0.113.7:{PORT}"

    ip_server.answer = b"198.51.100.23\n"  # the ISP handed out a new address
    assert watcher.check_once() is True
    assert axon_on_chain(chain) == f"198.51.100.23:{PORT}"
    assert watcher.published_ip == "198.51.100.23"
    assert watcher.check_once() is False
    assert ip_server.hits == 3


def test_bad_answers_keep_the_published_axon_and_are_retried(
    chain: LocalChain, ip_server: IpServer
) -> None:
    chain.serve("203.0.113.7", PORT)
    watcher = IpWatcher(chain, UrlIpSource(ip_server.url), PORT, published_ip="203.0.113.7")
    ip_server.status = 502
    assert watcher.check_once() is False
    ip_server.status, ip_server.answer = 200, b"<html>captive portal</html>"
    assert watcher.check_once() is False
    ip_server.answer = b"1" * (MAX_ANSWER_BYTES + 1)
    assert watcher.check_once() is False
    assert axon_on_chain(chain) == f"203.0.113.7:{PORT}"
    ip_server.answer = b"198.51.100.23"
    assert watcher.check_once() is True
    assert axon_on_chain(chain) == f"198.51.100.23:{PORT}"
    # An unreachable source is one more failed check, not a crash.
    ip_server.close()
    assert IpWatcher(chain, UrlIpSource(ip_server.url, 1.0), PORT).check_once() is False


def test_a_chain_refusal_is_retried_at_the_next_check(tmp_path: Path) -> None:
    admin = LocalChain.create(tmp_path / "chain.db")
    view = LocalChain(admin.path, admin.netuid, hotkey=MINER)  # not registered yet
    watcher = IpWatcher(view, StaticIpSource("203.0.113.7"), PORT)
    assert watcher.check_once() is False  # NOT_REGISTERED: logged, nothing recorded
    assert watcher.published_ip is None
    admin.register(MINER)
    assert watcher.check_once() is True
    assert axon_on_chain(admin) == f"203.0.113.7:{PORT}"


def test_command_source_reads_the_printed_ip_and_reports_failures() -> None:
    assert CommandIpSource("printf '203.0.113.9\\n'").current_ip() == "203.0.113.9"
    with pytest.raises(IpSourceError, match="exited 3"):
        CommandIpSource("echo boom >&2; exit 3").current_ip()
    with pytest.raises(IpSourceError, match="ran over"):
        CommandIpSource("sleep 5", timeout_s=0.2).current_ip()


def test_background_watcher_follows_the_ip_without_being_asked(
    chain: LocalChain, ip_server: IpServer
) -> None:
    watcher = IpWatcher(chain, UrlIpSource(ip_server.url), PORT, interval_s=0.05)
    watcher.start()
    try:
        for ip in ("203.0.113.7", "198.51.100.23"):
            ip_server.answer = ip.encode()
            deadline = time.monotonic() + 10
            while axon_on_chain(chain) != f"{ip}:{PORT}":
                assert time.monotonic() < deadline, f"{ip} was never published"
                time.sleep(0.02)
    finally:
        watcher.stop()
    hits = ip_server.hits
    time.sleep(0.2)
    assert ip_server.hits == hits  # stopped means stopped


@pytest.mark.slow
def test_running_miner_republishes_its_axon_after_the_ip_changes(
    tmp_path: Path, ip_server: IpServer
) -> None:
    net = make_net(tmp_path, serving_rate_limit=0)  # the IP changes right after startup
    port = free_port()
    argv = [
        sys.executable,
        str(REPO / "neurons" / "miner.py"),
        "--network", "localnet",
        "--localnet.path", str(net.chain.path),
        "--wallet.name", "miner",
        "--wallet.path", str(tmp_path / "wallets"),
        "--axon.ip", "127.0.0.1",
        "--axon.port", str(port),
        "--miner.ip_source", f"url:{ip_server.url}",
        "--miner.ip_check_interval_s", "0.2",
        "--generation.backend", "synth",
        "--logging.level", "WARNING",
    ]  # fmt: skip
    process = subprocess.Popen(
        argv, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )

    def wait_for_axon(expected: str) -> None:
        deadline = time.monotonic() + 30
        while (neuron := net.chain.metagraph().by_hotkey(net.miner_hotkey)).axon != expected:
            assert process.poll() is None, process.communicate()[0].decode()
            assert time.monotonic() < deadline, f"axon is {neuron.axon}, never {expected}"
            time.sleep(0.05)

    try:
        wait_for_axon(f"203.0.113.7:{port}")  # the source's answer, not the bind address
        ip_server.answer = b"198.51.100.23\n"
        wait_for_axon(f"198.51.100.23:{port}")
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=20)[0].decode()
    assert process.returncode == 0, output
