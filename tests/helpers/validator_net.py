"""A validator under test: LocalChain, registered validator wallet, in-process round machinery."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bittensor as bt

from tests.helpers.miner_server import serve_app
from tests.helpers.state_tools import set_secret
from tests.helpers.wallets import make_wallet
from tuneforge.chain.local import LocalChain
from tuneforge.validator.config import NeuronSettings, ValidatorSettings
from tuneforge.validator.loop import ValidatorLoop
from tuneforge.validator.query import MinerClient
from tuneforge.validator.round import RoundRunner
from tuneforge.validator.state import ValidatorState


@dataclass
class ValidatorNet:
    tmp_path: Path
    chain: LocalChain
    wallet: bt.Wallet
    uid: int

    @property
    def hotkey(self) -> str:
        return self.wallet.hotkey.ss58_address

    @property
    def state_path(self) -> Path:
        return self.tmp_path / "validator" / "state.db"

    def settings(self, publish: bool = False, **neuron: Any) -> ValidatorSettings:
        values: dict[str, Any] = {
            "state_path": str(self.state_path),
            "round_interval_s": 0.0,
            "min_challenge_seconds": 2.0,
            # 2 s: synth pieces for different seeds share their first bars, and from about
            # 3 s the fingerprint check would (rightly) call them copies of each other.
            "max_challenge_seconds": 2.0,
            "timeout": 20.0,
            "timeout_per_second": 0.0,
            "metagraph_refresh_blocks": 1,
            **neuron,
        }
        return ValidatorSettings(
            network="localnet",
            localnet={"path": str(self.chain.path)},
            wallet={
                "name": "validator",
                "hotkey": "default",
                "path": str(self.tmp_path / "wallets"),
            },
            neuron=NeuronSettings(**values),
            api={"url": "http://127.0.0.1:9", "publish": publish},
        )

    def build(
        self, settings: ValidatorSettings, engine_factory: Any = None
    ) -> tuple[ValidatorLoop, ValidatorState, MinerClient]:
        """State, client, scoring engine and loop wired as `run()` wires them."""
        from tuneforge.scoring.engine import ScoringEngine

        state = ValidatorState(settings.neuron.state_path)
        set_secret(state, b"tuneforge-tests-fixed-secret-32b")  # reproducible challenges
        state.weights.set_rule(settings.neuron.weights_exponent, settings.neuron.weights_top_k)
        engine = (engine_factory or ScoringEngine.create)(state.history, None)
        client = MinerClient(
            self.wallet, settings.neuron.max_response_bytes, settings.neuron.max_audio_seconds
        )
        runner = RoundRunner(settings, self.hotkey, state, client, engine)
        view = LocalChain(self.chain.path, netuid=self.chain.netuid, hotkey=self.hotkey)
        return ValidatorLoop(settings, self.hotkey, view, state, runner), state, client


def make_validator_net(
    tmp_path: Path, block_time_s: float = 0.2, weights_rate_limit: int = 500, **chain_options: Any
) -> ValidatorNet:
    chain = LocalChain.create(
        tmp_path / "chain.db",
        block_time_s=block_time_s,
        weights_rate_limit=weights_rate_limit,
        **chain_options,
    )
    wallet = make_wallet(tmp_path, "validator")
    uid = chain.register(
        wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, stake=5000.0,
        validator_permit=True,
    )  # fmt: skip
    return ValidatorNet(tmp_path, chain, wallet, uid)


@contextmanager
def synth_miners(net: ValidatorNet, count: int) -> Iterator[list[bt.Wallet]]:
    """`count` real miners (miner app + SynthBackend) on loopback, registered and serving."""
    from tuneforge.generation.synth import SynthBackend
    from tuneforge.miner.app import create_app
    from tuneforge.miner.config import MinerSection, MinerSettings

    wallets = []
    with ExitStack() as stack:
        for index in range(count):
            wallet = make_wallet(net.tmp_path, f"miner{index}")
            hotkey = wallet.hotkey.ss58_address
            net.chain.register(hotkey, wallet.coldkeypub.ss58_address)
            settings = MinerSettings(
                network="localnet", miner=MinerSection(min_stake=0.0, metagraph_refresh_s=60.0)
            )
            view = LocalChain(net.chain.path, netuid=net.chain.netuid, hotkey=hotkey)
            app = create_app(settings, SynthBackend(), view, wallet)
            url = stack.enter_context(serve_app(app))
            host, port = url.removeprefix("http://").split(":")
            net.chain.serve_hotkey(hotkey, host, int(port))
            wallets.append(wallet)
        yield wallets


def run_one_round(loop: ValidatorLoop, client: MinerClient) -> None:
    """One `loop.run` (the settings' max_rounds), then the miner client closed."""

    async def go() -> None:
        try:
            await loop.run(asyncio.Event())
        finally:
            await client.aclose()

    asyncio.run(go())
