"""Real miner servers for tests: uvicorn on a free 127.0.0.1 port, LocalChain, temp wallets."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bittensor as bt
import httpx
import numpy as np
from fastapi import FastAPI

from tests.helpers.wallets import make_wallet
from tuneforge.auth.btauth import sign_request
from tuneforge.chain.local import LocalChain
from tuneforge.core.audio import Audio
from tuneforge.core.loopback import free_port as free_port  # re-exported for the tests
from tuneforge.core.loopback import serve_in_thread
from tuneforge.core.protocol import GENERATE_PATH, HEADER_SPEC_VERSION, INFO_PATH, SPEC_VERSION
from tuneforge.core.protocol import MusicGenerationSynapse as Synapse
from tuneforge.miner.app import create_app
from tuneforge.miner.config import MinerSection, MinerSettings


class CountingBackend:
    """Pass-through test backend: a sine of the requested length, counting every call.

    `gate` (when given) holds each generation until set, so tests can fill the queue;
    `entered` is set when a generation starts; `failures` are raised by successive calls.
    """

    name = "passthrough"
    model_id = "test/passthrough"
    sings = False

    def __init__(
        self,
        sample_rate: int = 32_000,
        channels: int = 1,
        gate: threading.Event | None = None,
        failures: list[Exception] | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.max_duration_seconds = 60.0
        self.gate = gate
        self.failures = list(failures or [])
        self.entered = threading.Event()
        self.calls = 0
        self.prompts: list[str] = []
        self._lock = threading.Lock()

    def generate(self, request: Synapse) -> Audio:
        with self._lock:
            self.calls += 1
            self.prompts.append(request.prompt)
            failure = self.failures.pop(0) if self.failures else None
        self.entered.set()
        if self.gate is not None and not self.gate.wait(timeout=20):
            raise TimeoutError("test gate never opened")
        if failure is not None:
            raise failure
        n = int(round(request.duration_seconds * self.sample_rate))
        t = np.arange(n, dtype=np.float32) / self.sample_rate
        tone = 0.3 * np.sin(2 * np.pi * 440.0 * t, dtype=np.float32)
        return Audio(np.tile(tone, (self.channels, 1)), self.sample_rate)


def serve_app(app: FastAPI) -> Any:
    """Run `app` under uvicorn in a thread; yields its base URL and stops it on exit."""
    return serve_in_thread(app, start_timeout_s=15)


@dataclass
class MinerNet:
    """A LocalChain with one miner and named callers, plus signed-request helpers."""

    tmp_path: Path
    chain: LocalChain
    miner: bt.Wallet
    callers: dict[str, bt.Wallet] = field(default_factory=dict)

    @property
    def miner_hotkey(self) -> str:
        return self.miner.hotkey.ss58_address

    def add_caller(
        self,
        name: str,
        stake: float = 5_000.0,
        permit: bool = True,
        registered: bool = True,
    ) -> bt.Wallet:
        wallet = make_wallet(self.tmp_path, name)
        if registered:
            self.chain.register(
                wallet.hotkey.ss58_address,
                wallet.coldkeypub.ss58_address,
                stake=stake,
                validator_permit=permit,
            )
        self.callers[name] = wallet
        return wallet

    def settings(self, **miner: Any) -> MinerSettings:
        section = {"min_stake": 1_000.0, "metagraph_refresh_s": 60.0, **miner}
        return MinerSettings(network="localnet", miner=MinerSection(**section))

    def app(self, backend: Any, **miner: Any) -> FastAPI:
        view = LocalChain(self.chain.path, self.chain.netuid, hotkey=self.miner_hotkey)
        return create_app(self.settings(**miner), backend, view, self.miner)


def make_net(tmp_path: Path, **chain_options: Any) -> MinerNet:
    chain = LocalChain.create(tmp_path / "chain.db", **chain_options)
    miner = make_wallet(tmp_path, "miner")
    chain.register(miner.hotkey.ss58_address, miner.coldkeypub.ss58_address)
    return MinerNet(tmp_path=tmp_path, chain=chain, miner=miner)


def synapse_body(**fields: Any) -> bytes:
    values: dict[str, Any] = {"prompt": "calm piano", "duration_seconds": 2.0, "seed": 1}
    values.update(fields)
    return Synapse(**values).model_dump_json().encode()


def signed_headers(
    wallet: bt.Wallet, receiver: str, body: bytes, method: str = "POST", path: str = GENERATE_PATH
) -> dict[str, str]:
    headers = sign_request(wallet, method, path, body, receiver)
    headers[HEADER_SPEC_VERSION] = SPEC_VERSION
    headers["Content-Type"] = "application/json"
    return headers


def post_generate(
    client: httpx.Client, wallet: bt.Wallet, receiver: str, body: bytes
) -> httpx.Response:
    return client.post(GENERATE_PATH, content=body, headers=signed_headers(wallet, receiver, body))


def get_info(client: httpx.Client, wallet: bt.Wallet, receiver: str) -> httpx.Response:
    headers = signed_headers(wallet, receiver, b"", method="GET", path=INFO_PATH)
    return client.get(INFO_PATH, headers=headers)
