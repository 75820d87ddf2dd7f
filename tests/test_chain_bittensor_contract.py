"""BittensorChain against the real SDK 11 through its offline seam (an in-memory Substrate).

Nothing here touches a network: `bt.Subtensor("local", substrate=fake)` runs the SDK's own
metagraph decoding, read registry and `SetWeights`/`ServeAxon` building over the fake's state.
"""

from __future__ import annotations

from pathlib import Path

import bittensor as bt
import pytest

from tests.helpers.chain_substrate import FakeNeuron, FakeSubstrate
from tests.helpers.wallets import make_wallet
from tuneforge.chain.base import ChainError, ChainErrorCode, ChainView
from tuneforge.chain.bittensor_chain import BittensorChain
from tuneforge.chain.factory import open_chain
from tuneforge.core.protocol import SPEC_VERSION_KEY

NETUID = 234
LOCALHOST_INT = 0x7F000001


@pytest.fixture(autouse=True)
def _no_token_symbol_cache_in_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK caches token symbols on connect; keep that file out of the user's home.
    monkeypatch.setenv("BTCLI_TOKEN_SYMBOLS_CACHE", str(tmp_path / "token_symbols.json"))


@pytest.fixture(scope="module")
def validator_wallet(tmp_path_factory: pytest.TempPathFactory) -> bt.Wallet:
    return make_wallet(tmp_path_factory.mktemp("contract"), "validator")


@pytest.fixture
def fake(validator_wallet: bt.Wallet) -> FakeSubstrate:
    return FakeSubstrate(
        netuid=NETUID,
        block=5_000,
        weights_rate_limit=100,
        neurons=[
            FakeNeuron(
                validator_wallet.hotkey.ss58_address,
                "5ColdV",
                stake_tao=4_000.0,
                validator_permit=True,
            ),
            FakeNeuron(
                "5MinerOne", "5ColdM", axon={"ip": LOCALHOST_INT, "port": 8091, "ip_type": 4}
            ),
            FakeNeuron("5MinerTwo", "5ColdM", stake_tao=0.5),
        ],
    )


def _chain(fake: FakeSubstrate, wallet: bt.Wallet | None) -> BittensorChain:
    return BittensorChain("local", NETUID, wallet, subtensor=bt.Subtensor("local", substrate=fake))


def test_metagraph_is_decoded_by_the_sdk_into_our_snapshot(
    fake: FakeSubstrate, validator_wallet: bt.Wallet
) -> None:
    chain = _chain(fake, None)
    assert isinstance(chain, ChainView)
    graph = chain.metagraph()
    assert graph.netuid == NETUID and graph.block == 5_000
    assert [n.uid for n in graph.neurons] == [0, 1, 2]
    validator = graph.by_hotkey(validator_wallet.hotkey.ss58_address)
    assert validator.validator_permit and validator.stake == pytest.approx(4_000.0)
    assert validator.coldkey == "5ColdV"
    assert graph.by_uid(1).axon == "127.0.0.1:8091"
    assert graph.by_uid(2).axon is None  # ip 0 means "not serving"
    assert graph.by_uid(2).stake == pytest.approx(0.5)
    assert [n.uid for n in graph.serving()] == [1]
    chain.close()


def test_reads_uid_block_and_rate_limit(fake: FakeSubstrate) -> None:
    chain = _chain(fake, None)
    assert chain.uid_of("5MinerTwo") == 2
    assert chain.uid_of("5Unknown") is None
    assert chain.block == 5_000
    assert chain.weights_rate_limit == 100
    fake.neurons[0].last_update = 4_990
    assert chain.blocks_since_last_update(0) == 10
    with pytest.raises(ChainError) as info:
        chain.blocks_since_last_update(99)
    assert info.value.code == ChainErrorCode.NOT_REGISTERED


async def test_set_weights_intent_builds_u16_weights_after_the_sdk_preflight(
    fake: FakeSubstrate, validator_wallet: bt.Wallet
) -> None:
    intent = bt.SetWeights(netuid=NETUID, weights={1: 0.25, 2: 0.75}, version_key=1000)
    call = await intent.build(fake, validator_wallet)
    assert call["call_function"] == "set_mechanism_weights"
    assert call["call_args"]["dests"] == [1, 2]
    assert call["call_args"]["weights"] == [21845, 65535]  # max-upscaled u16
    assert call["call_args"]["version_key"] == 1000


async def test_sdk_preflight_refuses_unregistered_and_rate_limited(
    fake: FakeSubstrate, tmp_path: Path, validator_wallet: bt.Wallet
) -> None:
    stranger = make_wallet(tmp_path, "stranger")
    with pytest.raises(bt.ChainError) as info:
        await bt.SetWeights(netuid=NETUID, weights={1: 1.0}).build(fake, stranger)
    assert info.value.code == bt.ErrorCode.NOT_REGISTERED
    fake.neurons[0].last_update = fake.block - 3
    with pytest.raises(bt.ChainError) as info:
        await bt.SetWeights(netuid=NETUID, weights={1: 1.0}).build(fake, validator_wallet)
    assert info.value.code == bt.ErrorCode.RATE_LIMITED


def test_set_weights_submits_the_normalised_vector(
    fake: FakeSubstrate, validator_wallet: bt.Wallet
) -> None:
    chain = _chain(fake, validator_wallet)
    result = chain.set_weights({1: 1.0, 2: 3.0, 0: 0.0}, version_key=SPEC_VERSION_KEY)
    assert result.uids == (1, 2)
    assert result.weights == pytest.approx((0.25, 0.75))
    assert fake.weights == {0: {1: 21845, 2: 65535}}
    assert fake.submitted[-1]["call_args"]["version_key"] == SPEC_VERSION_KEY
    assert fake.neurons[0].last_update == fake.block


def test_rate_limited_set_weights_becomes_chain_error_with_blocks_to_wait(
    fake: FakeSubstrate, validator_wallet: bt.Wallet
) -> None:
    fake.neurons[0].last_update = fake.block - 40
    with pytest.raises(ChainError) as info:
        _chain(fake, validator_wallet).set_weights({1: 1.0}, version_key=SPEC_VERSION_KEY)
    assert info.value.code == ChainErrorCode.RATE_LIMITED
    assert info.value.remediation.startswith("wait 60 blocks")
    assert fake.submitted == []


def test_unregistered_hotkey_becomes_not_registered_with_how_to_register(
    fake: FakeSubstrate, tmp_path: Path
) -> None:
    chain = _chain(fake, make_wallet(tmp_path, "stranger"))
    with pytest.raises(ChainError) as info:
        chain.set_weights({1: 1.0}, version_key=SPEC_VERSION_KEY)
    assert info.value.code == ChainErrorCode.NOT_REGISTERED
    assert "btcli subnets register --netuid 234" in info.value.remediation
    assert "scripts/register.sh" in info.value.remediation


def test_invalid_weights_are_refused_before_signing(
    fake: FakeSubstrate, validator_wallet: bt.Wallet
) -> None:
    chain = _chain(fake, validator_wallet)
    with pytest.raises(ChainError) as info:
        chain.set_weights({1: 0.0, 2: 0.0}, version_key=SPEC_VERSION_KEY)
    assert info.value.code == ChainErrorCode.INVALID
    assert fake.submitted == []


def test_serve_publishes_the_axon_through_serve_axon(
    fake: FakeSubstrate, validator_wallet: bt.Wallet
) -> None:
    chain = _chain(fake, validator_wallet)
    chain.serve("10.1.2.3", 8092)
    assert fake.submitted[-1]["call_function"] == "serve_axon"
    assert chain.metagraph().by_uid(0).axon == "10.1.2.3:8092"
    with pytest.raises(ChainError) as info:
        chain.serve("10.1.2.3", 0)
    assert info.value.code == ChainErrorCode.INVALID


def test_writes_without_a_wallet_are_refused(fake: FakeSubstrate) -> None:
    with pytest.raises(ChainError) as info:
        _chain(fake, None).set_weights({1: 1.0}, version_key=1)
    assert info.value.code == ChainErrorCode.INVALID


def test_missing_subnet_is_a_clear_error(fake: FakeSubstrate) -> None:
    chain = BittensorChain("local", 7, None, subtensor=bt.Subtensor("local", substrate=fake))
    with pytest.raises(ChainError) as info:
        chain.metagraph()
    assert info.value.code == ChainErrorCode.INVALID


def test_open_chain_uses_the_sdk_for_real_networks_without_connecting(
    validator_wallet: bt.Wallet,
) -> None:
    chain = open_chain("test", NETUID, wallet=validator_wallet)
    assert isinstance(chain, BittensorChain)
    assert chain.wallet is validator_wallet
    chain.close()
    with pytest.raises(ChainError) as info:
        open_chain("nonsense", NETUID)
    assert info.value.code == ChainErrorCode.INVALID
    assert "ws://" in info.value.remediation


def test_commit_reveal_sends_a_timelocked_commit_that_the_chain_reveals_itself(
    fake: FakeSubstrate, validator_wallet: bt.Wallet
) -> None:
    fake.commit_reveal = True
    chain = _chain(fake, validator_wallet)
    result = chain.set_weights({1: 1.0, 2: 3.0}, version_key=SPEC_VERSION_KEY)
    assert result.committed and result.reveal_round is not None and result.reveal_round > 0
    [call] = fake.submitted
    assert call["call_function"] == "commit_timelocked_mechanism_weights"
    assert call["call_args"]["reveal_round"] == result.reveal_round
    # The weights are hidden (encrypted to the drand round) and no reveal is ever sent: the
    # chain decrypts the commit itself, so a validator restart after this loses nothing.
    assert fake.weights == {}
    assert fake.commits[validator_wallet.hotkey.ss58_address][1] == result.reveal_round
    assert fake.neurons[0].last_update == fake.block  # the rate limit counts the commit
    with pytest.raises(ChainError) as info:
        chain.set_weights({1: 1.0}, version_key=SPEC_VERSION_KEY)
    assert info.value.code == ChainErrorCode.RATE_LIMITED
    assert len(fake.submitted) == 1


def test_plain_mode_sets_weights_in_the_clear(
    fake: FakeSubstrate, validator_wallet: bt.Wallet
) -> None:
    result = _chain(fake, validator_wallet).set_weights({1: 1.0}, version_key=SPEC_VERSION_KEY)
    assert not result.committed and result.reveal_round is None
    assert fake.submitted[-1]["call_function"] == "set_mechanism_weights"


def test_weights_version_is_the_subnets_hyperparameter(fake: FakeSubstrate) -> None:
    fake.weights_version = 2_001
    assert _chain(fake, None).weights_version == 2_001


def test_serving_rate_limit_is_a_rate_limited_chain_error(
    fake: FakeSubstrate, validator_wallet: bt.Wallet
) -> None:
    fake.serving_rate_limit = 50
    chain = _chain(fake, validator_wallet)
    chain.serve("10.1.2.3", 8092)
    with pytest.raises(ChainError) as info:
        chain.serve("10.1.2.3", 8093)
    assert info.value.code == ChainErrorCode.RATE_LIMITED
    assert chain.metagraph().by_uid(0).axon == "10.1.2.3:8092"


def test_a_dropped_endpoint_is_unavailable_and_the_next_call_opens_a_fresh_client(
    fake: FakeSubstrate,
) -> None:
    chain = BittensorChain(
        "local", NETUID, None, connect=lambda: bt.Subtensor("local", substrate=fake)
    )
    assert chain.block == 5_000
    fake.drop()
    for _ in range(2):
        with pytest.raises(ChainError) as info:
            _ = chain.block
        assert info.value.code == ChainErrorCode.UNAVAILABLE
    fake.restore()
    fake.block = 5_003
    assert chain.block == 5_003
    assert chain.metagraph().block == 5_003
    # Each failed call dropped its dead client; one successful connect before, one after.
    assert chain.reconnects >= 1 and fake.connects == 2
    chain.close()
