"""Publishing the axon survives restarts: no re-send of a known address, and the chain's serving
rate limit never stops the miner (it keeps serving and retries with backoff)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.wallets import make_wallet
from tuneforge.chain.base import ChainError, ChainErrorCode
from tuneforge.chain.local import LocalChain
from tuneforge.miner.axon import AxonPublisher, publish_axon


@pytest.fixture
def chain_and_view(tmp_path: Path) -> tuple[LocalChain, LocalChain, str]:
    chain = LocalChain.create(tmp_path / "chain.db", block_time_s=0.05, serving_rate_limit=50)
    hotkey = make_wallet(tmp_path, "miner").hotkey.ss58_address
    chain.register(hotkey)
    return chain, LocalChain(chain.path, hotkey=hotkey), hotkey


def test_local_chain_rate_limits_serving_like_the_real_chain(chain_and_view) -> None:
    _, view, _ = chain_and_view
    view.serve("10.0.0.1", 8091)
    with pytest.raises(ChainError) as info:
        view.serve("10.0.0.1", 8091)
    assert info.value.code == ChainErrorCode.RATE_LIMITED
    assert "ServingRateLimitExceeded" in info.value.message


def test_a_restart_with_the_same_address_sends_nothing(chain_and_view) -> None:
    chain, view, hotkey = chain_and_view
    view.serve("10.0.0.1", 8091)  # e.g. register.sh --ip, or the previous run
    assert publish_axon(view, hotkey, "10.0.0.1", 8091) is False  # no rate-limit error
    publisher = AxonPublisher(view, hotkey, "10.0.0.1", 8091)
    publisher.start()
    assert publisher.published.is_set()
    assert chain.metagraph().by_hotkey(hotkey).axon == "10.0.0.1:8091"


def test_a_rate_limited_new_address_is_retried_in_the_background(chain_and_view) -> None:
    chain, view, hotkey = chain_and_view
    view.serve("10.0.0.1", 8091)
    publisher = AxonPublisher(view, hotkey, "10.0.0.1", 9000, first_retry_s=0.05, max_retry_s=0.2)
    publisher.start()  # does not raise: the miner goes on serving
    try:
        assert not publisher.published.is_set()
        chain.advance_blocks(50)
        assert publisher.published.wait(10), "never published after the rate limit passed"
        assert chain.metagraph().by_hotkey(hotkey).axon == "10.0.0.1:9000"
    finally:
        publisher.stop()


def test_refusals_that_time_cannot_fix_still_stop_the_start(tmp_path: Path) -> None:
    chain = LocalChain.create(tmp_path / "chain.db")
    stranger = LocalChain(chain.path, hotkey="5NotRegistered")
    with pytest.raises(ChainError) as info:
        AxonPublisher(stranger, "5NotRegistered", "10.0.0.1", 8091).start()
    assert info.value.code == ChainErrorCode.NOT_REGISTERED


def test_the_miner_rides_out_a_chain_endpoint_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bittensor as bt

    from tests.helpers.chain_substrate import FakeNeuron, FakeSubstrate
    from tuneforge.chain.bittensor_chain import BittensorChain
    from tuneforge.chain.metagraph import MetagraphCache

    monkeypatch.setenv("BTCLI_TOKEN_SYMBOLS_CACHE", str(tmp_path / "token_symbols.json"))
    miner = make_wallet(tmp_path, "miner")
    fake = FakeSubstrate(
        netuid=234, block=100, neurons=[FakeNeuron(miner.hotkey.ss58_address, "c")]
    )
    chain = BittensorChain(
        "local", 234, miner, connect=lambda: bt.Subtensor("local", substrate=fake)
    )
    cache = MetagraphCache(chain, refresh_s=60)
    cache.refresh()
    fake.drop()
    # Startup during the outage: publishing is retried in the background, not fatal.
    publisher = AxonPublisher(chain, miner.hotkey.ss58_address, "10.0.0.1", 8091, 0.05, 0.2)
    publisher.start()
    try:
        with pytest.raises(ChainError) as info:
            cache.refresh()
        assert info.value.code == ChainErrorCode.UNAVAILABLE
        assert cache.get().block == 100  # admission keeps using the cached callers
        fake.restore()
        fake.block = 120
        assert publisher.published.wait(10), "never published after the endpoint came back"
        assert cache.refresh().block == 120
        assert cache.get().by_hotkey(miner.hotkey.ss58_address).axon == "10.0.0.1:8091"
        assert chain.reconnects >= 1
    finally:
        publisher.stop()
        chain.close()
