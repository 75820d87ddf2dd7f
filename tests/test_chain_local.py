"""LocalChain, the file-backed chain test double, and open_chain's localnet path."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers.wallets import make_wallet
from tuneforge.chain.base import ChainError, ChainErrorCode, ChainView
from tuneforge.chain.factory import open_chain
from tuneforge.chain.local import LocalChain
from tuneforge.chain.rules import normalize_weights

FAST_BLOCK_S = 0.05
RATE_LIMIT = 40  # 2 s of fast blocks: far more than two calls take, even on a loaded box


@pytest.fixture
def chain_path(tmp_path: Path) -> Path:
    path = tmp_path / "chain.db"
    LocalChain.create(
        path, netuid=234, block_time_s=FAST_BLOCK_S, weights_rate_limit=RATE_LIMIT
    ).close()
    return path


def _run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_local_chain_implements_chain_view(chain_path: Path) -> None:
    with LocalChain(chain_path) as chain:
        assert isinstance(chain, ChainView)
        assert chain.netuid == 234
        assert chain.weights_rate_limit == RATE_LIMIT


def test_registration_in_one_process_is_seen_by_another(chain_path: Path) -> None:
    out = _run_python(
        f"""
        from tuneforge.chain.local import LocalChain
        chain = LocalChain({str(chain_path)!r})
        print(chain.register("5Miner", coldkey="5Cold", stake=3.5, axon="127.0.0.1:9100"))
        """
    )
    with LocalChain(chain_path) as chain:
        neuron = chain.metagraph().by_hotkey("5Miner")
        assert neuron is not None
        assert neuron.uid == int(out.splitlines()[-1])
        assert (neuron.coldkey, neuron.stake, neuron.axon) == ("5Cold", 3.5, "127.0.0.1:9100")
        assert chain.uid_of("5Miner") == neuron.uid
        assert chain.uid_of("5Nobody") is None


def test_concurrent_registrations_from_two_processes_get_distinct_uids(chain_path: Path) -> None:
    code = """
        import sys
        from tuneforge.chain.local import LocalChain
        chain = LocalChain({path!r})
        for i in range(15):
            chain.register(f"{prefix}{{i}}")
    """
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code.format(path=str(chain_path), prefix=p))],
            stderr=subprocess.PIPE,
        )
        for p in ("a", "b")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    with LocalChain(chain_path) as chain:
        neurons = chain.metagraph().neurons
    assert len(neurons) == 30
    assert sorted(n.uid for n in neurons) == list(range(30))


def test_one_view_can_be_used_from_worker_threads(chain_path: Path) -> None:
    chain = LocalChain(chain_path)
    with ThreadPoolExecutor(max_workers=4) as pool:
        uids = list(pool.map(lambda i: chain.register(f"5T{i}"), range(12)))
        graphs = list(pool.map(lambda _: chain.metagraph(), range(4)))
    assert sorted(uids) == list(range(12))
    assert all(len(g.neurons) >= 1 for g in graphs)
    assert len(chain.metagraph().neurons) == 12


def test_blocks_advance_with_wall_time(chain_path: Path) -> None:
    with LocalChain(chain_path) as chain:
        first = chain.block
        time.sleep(FAST_BLOCK_S * 3)
        assert chain.block >= first + 2
        before = chain.block
        chain.advance_blocks(100)
        assert chain.block >= before + 100


def test_create_is_idempotent_and_keeps_the_chain(chain_path: Path) -> None:
    with LocalChain(chain_path) as chain:
        chain.register("5Kept")
        chain.advance_blocks(50)
        block = chain.block
    again = LocalChain.create(chain_path, netuid=234, block_time_s=99.0, weights_rate_limit=1)
    assert again.uid_of("5Kept") == 0
    assert again.block >= block
    assert again.weights_rate_limit == RATE_LIMIT  # the original parameters stay


def test_weights_are_normalised_and_zeros_dropped(chain_path: Path) -> None:
    admin = LocalChain(chain_path)
    admin.register("5Val", stake=1000.0, validator_permit=True)
    for hotkey in ("5M1", "5M2", "5M3"):
        admin.register(hotkey)
    validator = LocalChain(chain_path, hotkey="5Val")
    result = validator.set_weights({1: 1.0, 2: 3.0, 3: 0.0}, version_key=1000)
    assert result.uids == (1, 2)
    assert result.weights == pytest.approx((0.25, 0.75))
    assert admin.weights() == {0: pytest.approx({1: 0.25, 2: 0.75})}
    assert admin.weight_set_count(0) == 1
    assert admin.metagraph().by_uid(0).last_update == result.block


@pytest.mark.parametrize(
    "weights", [{1: 0.0, 2: 0.0}, {1: -0.5, 2: 1.0}, {1: float("nan")}, {}], ids=str
)
def test_invalid_weight_vectors_are_rejected(weights: dict[int, float]) -> None:
    with pytest.raises(ChainError) as info:
        normalize_weights(weights)
    assert info.value.code == ChainErrorCode.INVALID


def test_weights_for_unregistered_uids_are_rejected(chain_path: Path) -> None:
    admin = LocalChain(chain_path)
    admin.register("5Val", validator_permit=True)
    with pytest.raises(ChainError) as info:
        LocalChain(chain_path, hotkey="5Val").set_weights({0: 1.0, 7: 1.0}, version_key=1)
    assert info.value.code == ChainErrorCode.INVALID
    assert admin.weights() == {}


def test_weights_rate_limit_is_enforced_until_enough_blocks_pass(chain_path: Path) -> None:
    admin = LocalChain(chain_path)
    admin.register("5Val", validator_permit=True)
    admin.register("5Miner")
    validator = LocalChain(chain_path, hotkey="5Val")
    validator.set_weights({1: 1.0}, version_key=1)
    with pytest.raises(ChainError) as info:
        validator.set_weights({0: 1.0}, version_key=1)
    assert info.value.code == ChainErrorCode.RATE_LIMITED
    assert "wait" in info.value.remediation
    assert admin.weights() == {0: {1: 1.0}}  # the refused vector changed nothing
    assert validator.blocks_since_last_update(0) < validator.weights_rate_limit
    admin.advance_blocks(RATE_LIMIT)
    assert validator.blocks_since_last_update(0) >= RATE_LIMIT
    validator.set_weights({0: 1.0}, version_key=1)
    assert admin.weights() == {0: {0: 1.0}}
    assert admin.weight_set_count(0) == 2


def test_unregistered_hotkey_cannot_set_weights_or_serve(chain_path: Path) -> None:
    LocalChain(chain_path).register("5Miner")
    stranger = LocalChain(chain_path, hotkey="5Stranger")
    with pytest.raises(ChainError) as info:
        stranger.set_weights({0: 1.0}, version_key=1)
    assert info.value.code == ChainErrorCode.NOT_REGISTERED
    assert "register" in info.value.remediation
    with pytest.raises(ChainError) as info:
        stranger.serve("127.0.0.1", 9000)
    assert info.value.code == ChainErrorCode.NOT_REGISTERED


def test_setting_weights_needs_a_validator_permit(chain_path: Path) -> None:
    admin = LocalChain(chain_path)
    admin.register("5Val")
    validator = LocalChain(chain_path, hotkey="5Val")
    with pytest.raises(ChainError) as info:
        validator.set_weights({0: 1.0}, version_key=1)
    assert info.value.code == ChainErrorCode.NO_PERMIT
    admin.set_validator_permit("5Val", True)
    validator.set_weights({0: 1.0}, version_key=1)


def test_a_view_without_hotkey_is_read_only(chain_path: Path) -> None:
    with pytest.raises(ChainError) as info:
        LocalChain(chain_path).serve("127.0.0.1", 9000)
    assert info.value.code == ChainErrorCode.INVALID


def test_serve_records_the_acting_hotkeys_axon(chain_path: Path) -> None:
    admin = LocalChain(chain_path)
    admin.register("5A")
    admin.register("5B")
    LocalChain(chain_path, hotkey="5B").serve("10.0.0.7", 8091)
    admin.serve_hotkey("5A", "::1", 9000)
    graph = admin.metagraph()
    assert graph.by_hotkey("5B").axon == "10.0.0.7:8091"
    assert graph.by_hotkey("5A").axon == "[::1]:9000"
    with pytest.raises(ChainError):
        LocalChain(chain_path, hotkey="5B").serve("not-an-ip", 8091)
    with pytest.raises(ChainError):
        LocalChain(chain_path, hotkey="5B").serve("127.0.0.1", 70000)


def test_admin_updates_stake_and_permit_and_reregistering_keeps_the_uid(chain_path: Path) -> None:
    admin = LocalChain(chain_path)
    uid = admin.register("5V", stake=1.0)
    admin.set_stake("5V", 250.0)
    admin.set_validator_permit("5V", True)
    neuron = admin.metagraph().by_uid(uid)
    assert (neuron.stake, neuron.validator_permit) == (250.0, True)
    assert admin.register("5V", stake=5.0) == uid
    assert admin.metagraph().by_uid(uid).stake == 5.0
    with pytest.raises(ChainError) as info:
        admin.set_stake("5Unknown", 1.0)
    assert info.value.code == ChainErrorCode.NOT_REGISTERED


def test_replacing_a_hotkey_resets_the_uid(chain_path: Path) -> None:
    admin = LocalChain(chain_path)
    admin.register("5Old", stake=10.0, validator_permit=True, axon="127.0.0.1:9000")
    LocalChain(chain_path, hotkey="5Old").set_weights({0: 1.0}, version_key=1)
    admin.replace_hotkey(0, "5New")
    neuron = admin.metagraph().by_uid(0)
    assert (neuron.hotkey, neuron.stake, neuron.axon, neuron.last_update) == ("5New", 0, None, 0)
    assert admin.uid_of("5Old") is None
    assert admin.weights() == {}


def test_missing_file_and_wrong_netuid_are_clear_errors(tmp_path: Path, chain_path: Path) -> None:
    with pytest.raises(ChainError) as info:
        LocalChain(tmp_path / "absent.db")
    assert info.value.code == ChainErrorCode.UNAVAILABLE
    assert "tuneforge chain init" in info.value.remediation
    with pytest.raises(ChainError) as info:
        LocalChain(chain_path, netuid=1)
    assert info.value.code == ChainErrorCode.INVALID
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ChainError):
        LocalChain(junk)


def test_open_chain_localnet_writes_as_the_wallets_hotkey(tmp_path: Path, chain_path: Path) -> None:
    wallet = make_wallet(tmp_path, "validator")
    hotkey = wallet.hotkey.ss58_address
    LocalChain(chain_path).register(hotkey, validator_permit=True)
    chain = open_chain("localnet", 234, wallet=wallet, localnet_path=str(chain_path))
    assert isinstance(chain, LocalChain)
    chain.serve("127.0.0.1", 8091)
    assert chain.metagraph().by_hotkey(hotkey).axon == "127.0.0.1:8091"
    with pytest.raises(ChainError) as info:
        open_chain("localnet", 234, wallet=wallet, localnet_path="")
    assert info.value.code == ChainErrorCode.INVALID
