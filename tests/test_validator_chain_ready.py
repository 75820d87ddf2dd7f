"""The validator's weight path against what a real subnet does: commit-reveal across a restart,
a `weights_version` above our `version_key`, and a chain endpoint that drops and comes back."""

from __future__ import annotations

from pathlib import Path

import bittensor as bt
import pytest

from tests.helpers.chain_substrate import FakeNeuron, FakeSubstrate
from tests.helpers.validator_net import ValidatorNet, make_validator_net
from tests.helpers.wallets import make_wallet
from tuneforge.chain.base import ChainError, ChainErrorCode
from tuneforge.chain.bittensor_chain import BittensorChain
from tuneforge.chain.local import LocalChain
from tuneforge.core.protocol import SPEC_VERSION_KEY
from tuneforge.validator.loop import ValidatorLoop
from tuneforge.validator.state import MinerRoundResult, ValidatorState
from tuneforge.validator.status import status_snapshot


@pytest.fixture(autouse=True)
def _no_token_symbol_cache_in_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BTCLI_TOKEN_SYMBOLS_CACHE", str(tmp_path / "token_symbols.json"))


def _loop(net: ValidatorNet, state: ValidatorState) -> ValidatorLoop:
    view = LocalChain(net.chain.path, netuid=net.chain.netuid, hotkey=net.hotkey)
    return ValidatorLoop(net.settings(), net.hotkey, view, state, runner=None)  # type: ignore[arg-type]


def _scored(net: ValidatorNet, state: ValidatorState, emas: dict[str, float]) -> dict[str, int]:
    uids, results, values = {}, [], {}
    for name, ema in emas.items():
        hotkey = make_wallet(net.tmp_path, name).hotkey.ss58_address
        uids[name] = net.chain.register(hotkey, axon="127.0.0.1:9")
        results.append(MinerRoundResult(uids[name], hotkey, ema, {"final_score": ema}))
        values[(uids[name], hotkey)] = ema
    state.commit_round(state.rounds.completed() + 1, {}, 1, 0.0, results, values)
    return uids


def test_a_commit_survives_a_restart_and_the_chain_reveals_it_without_a_resend(
    tmp_path: Path,
) -> None:
    net = make_validator_net(tmp_path, commit_reveal=True, reveal_period_blocks=3)
    state = ValidatorState(net.state_path)
    uids = _scored(net, state, {"a": 0.8, "b": 0.4})
    outcome = _loop(net, state).maybe_set_weights()
    assert outcome is not None and outcome["ok"] and outcome["committed"]
    assert net.chain.weights() == {}  # hidden until the reveal
    pending = state.weights.pending_commit()
    assert pending is not None and pending["reveal_round"] == outcome["reveal_round"]
    state.close()

    # Restart: a fresh process opens the same state and a fresh chain view.
    state = ValidatorState(net.state_path)
    assert state.weights.pending_commit() == pending
    restarted = _loop(net, state)
    assert restarted.maybe_set_weights() is None  # inside the rate limit: nothing resent
    net.chain.advance_blocks(3)
    weights = net.chain.weights()[net.uid]
    assert set(weights) == {uids["a"], uids["b"]}
    assert weights[uids["a"]] == pytest.approx(0.8**2 / (0.8**2 + 0.4**2))
    assert net.chain.weight_set_count(net.uid) == 1
    assert status_snapshot(state)["pending_commit"]["block"] == pending["block"]


def test_a_stale_version_key_sets_no_weights_and_says_so_everywhere(tmp_path: Path) -> None:
    net = make_validator_net(tmp_path)
    net.chain.set_weights_version(SPEC_VERSION_KEY + 1)
    state = ValidatorState(net.state_path)
    _scored(net, state, {"a": 0.5})
    loop = _loop(net, state)
    outcome = loop.maybe_set_weights()
    assert outcome is not None and outcome["ok"] is False and outcome["code"] == "STALE_VERSION"
    assert (
        outcome["weights_version"] == SPEC_VERSION_KEY + 1 and "upgrade" in outcome["remediation"]
    )
    assert net.chain.weight_set_count(net.uid) == 0 and net.chain.weights() == {}
    assert loop.metrics.version_stale._value.get() == 1
    version = status_snapshot(state)["version"]
    assert version == {
        "version_key": SPEC_VERSION_KEY,
        "weights_version": SPEC_VERSION_KEY + 1,
        "stale": True,
    }
    from typer.testing import CliRunner

    from tuneforge.tools.cli import app

    printed = CliRunner().invoke(app, ["validator", "status", "--state", str(net.state_path)])
    assert printed.exit_code == 0, printed.output
    assert "version: STALE" in printed.output and str(SPEC_VERSION_KEY + 1) in printed.output
    # The owner lowers it again (or we upgraded): weights flow.
    net.chain.set_weights_version(SPEC_VERSION_KEY)
    assert (loop.maybe_set_weights() or {}).get("ok") is True
    assert loop.metrics.version_stale._value.get() == 0
    assert status_snapshot(state)["version"]["stale"] is False


def test_the_validator_carries_on_after_the_chain_endpoint_restarts(tmp_path: Path) -> None:
    wallet = make_wallet(tmp_path, "validator")
    miner = make_wallet(tmp_path, "miner")
    fake = FakeSubstrate(
        netuid=234,
        block=5_000,
        neurons=[
            FakeNeuron(wallet.hotkey.ss58_address, "5C", stake_tao=4_000.0, validator_permit=True),
            FakeNeuron(miner.hotkey.ss58_address, "5C"),
        ],
    )
    chain = BittensorChain(
        "local", 234, wallet, connect=lambda: bt.Subtensor("local", substrate=fake)
    )
    net = make_validator_net(tmp_path)  # only for its settings and state path
    state = ValidatorState(net.state_path)
    state.commit_round(1, {}, 1, 0.0, [MinerRoundResult(1, miner.hotkey.ss58_address, 0.7, {})],
                       {(1, miner.hotkey.ss58_address): 0.7})  # fmt: skip
    loop = ValidatorLoop(net.settings(), wallet.hotkey.ss58_address, chain, state, None)  # type: ignore[arg-type]
    assert loop.metagraph(force=True).block == 5_000

    fake.drop()
    with pytest.raises(ChainError) as info:
        loop.metagraph(force=True)
    assert info.value.code == ChainErrorCode.UNAVAILABLE  # what run() logs and waits out
    assert state.miners.emas() == {(1, miner.hotkey.ss58_address): 0.7}  # state intact

    fake.restore()
    fake.block = 5_010
    assert loop.metagraph(force=True).block == 5_010
    outcome = loop.maybe_set_weights()
    assert outcome is not None and outcome["ok"] is True
    assert fake.weights == {0: {1: 65535}}
    assert chain.reconnects == 1 and fake.connects == 2  # a fresh client, not the dead one
    chain.close()
