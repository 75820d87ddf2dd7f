"""Miner rotation, metagraph changes and every weight-setting outcome, on a real LocalChain."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.helpers.validator_net import ValidatorNet, make_validator_net
from tests.helpers.wallets import make_wallet
from tuneforge.chain.base import Metagraph, Neuron
from tuneforge.chain.local import LocalChain
from tuneforge.validator.loop import ValidatorLoop
from tuneforge.validator.round import select_miners
from tuneforge.validator.state import MinerRoundResult, ValidatorState
from tuneforge.validator.status import StatusServer


def _neuron(uid: int, axon: str | None = "127.0.0.1:1") -> Neuron:
    return Neuron(uid, f"hk{uid}", "", 0.0, False, axon, 0)


def test_rotation_queries_least_recently_queried_first_and_everyone_equally() -> None:
    neurons = (*(_neuron(u) for u in range(7)), _neuron(7, axon=None), _neuron(8))
    metagraph = Metagraph(234, 1, neurons)
    last: dict[tuple[int, str], int] = {}
    picks: Counter[int] = Counter()
    for round_number in range(1, 13):
        chosen = select_miners(metagraph, "hk8", last, 3, round_number.to_bytes(4, "big"))
        assert len(chosen) == 3
        for neuron in chosen:
            picks[neuron.uid] += 1
            last[(neuron.uid, neuron.hotkey)] = round_number
    # 12 rounds x 3 slots over 7 serving miners (uid 7 serves nothing, uid 8 is ourselves).
    assert set(picks) == set(range(7))
    assert max(picks.values()) - min(picks.values()) <= 1


def _loop(net: ValidatorNet, state: ValidatorState) -> ValidatorLoop:
    view = LocalChain(net.chain.path, netuid=net.chain.netuid, hotkey=net.hotkey)
    return ValidatorLoop(net.settings(), net.hotkey, view, state, runner=None)  # type: ignore[arg-type]


def _scored(net: ValidatorNet, state: ValidatorState, emas: dict[str, float]) -> dict[str, int]:
    uids = {}
    results, values = [], {}
    for name, ema in emas.items():
        wallet = make_wallet(net.tmp_path, name)
        hotkey = wallet.hotkey.ss58_address
        uids[name] = net.chain.register(hotkey, axon="127.0.0.1:9")
        results.append(MinerRoundResult(uids[name], hotkey, ema, {"final_score": ema}))
        values[(uids[name], hotkey)] = ema
    state.commit_round(state.rounds.completed() + 1, {}, 1, 0.0, results, values)
    return uids


def test_weights_follow_emas_of_registered_miners_and_departed_ones_are_dropped(
    tmp_path: Path,
) -> None:
    net = make_validator_net(tmp_path)
    state = ValidatorState(net.state_path)
    uids = _scored(net, state, {"a": 0.8, "b": 0.4, "c": 0.2})
    net.chain.replace_hotkey(uids["c"], "5NewcomerHotkeyThatTookTheUid")
    loop = _loop(net, state)
    outcome = loop.maybe_set_weights()
    assert outcome is not None and outcome["ok"] is True
    weights = net.chain.weights()[net.uid]
    assert set(weights) == {uids["a"], uids["b"]}
    assert weights[uids["a"]] == pytest.approx(0.8**2 / (0.8**2 + 0.4**2))
    assert (uids["c"], "5NewcomerHotkeyThatTookTheUid") not in state.miners.emas()
    assert len(state.miners.emas()) == 2  # the replaced hotkey's EMA is gone
    # Inside the rate limit nothing is attempted, and the recorded outcome stays the success.
    assert loop.maybe_set_weights() is None
    assert net.chain.weight_set_count(net.uid) == 1


def test_weights_are_not_re_set_until_a_round_changes_the_state(tmp_path: Path) -> None:
    net = make_validator_net(tmp_path, block_time_s=0.05, weights_rate_limit=2)
    state = ValidatorState(net.state_path)
    _scored(net, state, {"a": 0.8, "b": 0.4})
    loop = _loop(net, state)
    assert (loop.maybe_set_weights() or {}).get("ok") is True

    def past_the_rate_limit() -> None:
        start = net.chain.block
        while net.chain.block - start < 3:
            time.sleep(0.05)

    past_the_rate_limit()
    # Every round since has failed (nothing committed): the frozen weights are not sent again.
    assert loop.maybe_set_weights() is None
    assert net.chain.weight_set_count(net.uid) == 1
    _scored(net, state, {"a": 0.9, "b": 0.3})  # a round completed: new EMAs
    past_the_rate_limit()
    assert (loop.maybe_set_weights() or {}).get("ok") is True
    assert net.chain.weight_set_count(net.uid) == 2


def test_no_permit_is_recorded_with_remediation_not_raised(tmp_path: Path) -> None:
    net = make_validator_net(tmp_path)
    net.chain.set_validator_permit(net.hotkey, False)
    state = ValidatorState(net.state_path)
    _scored(net, state, {"a": 0.5})
    outcome = _loop(net, state).maybe_set_weights()
    assert outcome is not None and outcome["ok"] is False and outcome["code"] == "NO_PERMIT"
    assert outcome["remediation"]
    assert state.weights.last_outcome() == outcome
    assert net.chain.weight_set_count(net.uid) == 0


def test_an_unregistered_validator_keeps_running_and_says_how_to_register(tmp_path: Path) -> None:
    net = make_validator_net(tmp_path)
    net.chain.replace_hotkey(net.uid, "5SomebodyElse")
    state = ValidatorState(net.state_path)
    outcome = _loop(net, state).maybe_set_weights()
    assert outcome is not None and outcome["code"] == "NOT_REGISTERED"
    assert "register" in outcome["remediation"]


def test_all_zero_emas_set_no_weights(tmp_path: Path) -> None:
    net = make_validator_net(tmp_path)
    state = ValidatorState(net.state_path)
    _scored(net, state, {"a": 0.0, "b": 0.0})
    outcome = _loop(net, state).maybe_set_weights()
    assert outcome is not None and outcome["ok"] is False and outcome["code"] == "NO_WEIGHTS"
    assert net.chain.weights() == {} and net.chain.weight_set_count(net.uid) == 0


def test_status_endpoint_serves_the_snapshot_on_loopback(tmp_path: Path) -> None:
    net = make_validator_net(tmp_path)
    state = ValidatorState(net.state_path)
    _scored(net, state, {"a": 0.5})
    outcome = _loop(net, state).maybe_set_weights()  # the view shows the weights SET
    assert outcome is not None and outcome["ok"] is True
    server = StatusServer(net.state_path, 0)
    port = server.start()
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/status", timeout=5).json()
        assert httpx.get(f"http://127.0.0.1:{port}/nope", timeout=5).status_code == 404
    finally:
        server.stop()
    assert body["rounds_completed"] == 1
    [miner] = body["miners"]
    assert miner["ema"] == 0.5 and miner["weight"] == 1.0
