"""Querying miners over loopback: every misbehaviour ends in one specific failure code."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import bittensor as bt
import pytest

from tests.helpers.miner_server import serve_app
from tests.helpers.validator_fake_miners import (
    EXPECTED_CODES,
    STREAM_CHUNK,
    FakeMiners,
    fake_miner_app,
    make_fake_miners,
    register_fake_miners,
)
from tests.helpers.wallets import make_wallet
from tuneforge.chain.base import Neuron
from tuneforge.chain.local import LocalChain
from tuneforge.core.audio import WavAudio
from tuneforge.validator.challenges import make_challenge, round_seed
from tuneforge.validator.query import MAX_CONCURRENT_CHECKS, MinerClient, QueryOutcome
from tuneforge.validator.spool import RoundSpool, SpooledWav

LIMIT = 16 * 1024 * 1024  # above the 9.6 MB ten-minute WAV, so that one fails on length


@dataclass
class Net:
    chain: LocalChain
    validator: bt.Wallet
    miners: FakeMiners

    def neuron(self, behaviour: str) -> Neuron:
        neuron = self.chain.metagraph().by_hotkey(self.miners.hotkey(behaviour))
        assert neuron is not None
        return neuron


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    tmp_path: Path = tmp_path_factory.mktemp("query")
    chain = LocalChain.create(tmp_path / "chain.db", block_time_s=0.2)
    validator = make_wallet(tmp_path, "validator")
    miners = make_fake_miners(tmp_path, list(EXPECTED_CODES))
    with serve_app(fake_miner_app(miners)) as url:
        register_fake_miners(chain, miners, url.removeprefix("http://"))
        yield Net(chain, validator, miners)


async def _ask(net: Net, behaviour: str, deadline_s: float = 10.0) -> QueryOutcome:
    client = MinerClient(net.validator, max_response_bytes=LIMIT, max_audio_seconds=90.0)
    challenge = make_challenge(round_seed("v", 1, b"k"), 2, 2)
    try:
        [outcome] = await client.query_many([net.neuron(behaviour)], challenge, deadline_s)
    finally:
        await client.aclose()
    return outcome


@pytest.mark.parametrize(
    "behaviour", [b for b, code in EXPECTED_CODES.items() if code and b != "timeout"]
)
async def test_misbehaving_miner_gets_a_specific_failure(net: Net, behaviour: str) -> None:
    outcome = await _ask(net, behaviour)
    assert outcome.audio is None and outcome.wav is None
    assert outcome.code == EXPECTED_CODES[behaviour], outcome.reason
    assert outcome.reason


async def test_a_valid_signed_answer_is_checked_and_kept_as_its_wav_bytes(net: Net) -> None:
    outcome = await _ask(net, "good")
    assert outcome.ok and outcome.code is None
    assert outcome.audio is not None and outcome.audio.sample_rate == 32_000
    # Until it is scored the answer is its signed bytes: no decoded samples are held (D48).
    assert isinstance(outcome.audio, WavAudio) and outcome.audio.wav is outcome.wav
    assert abs(outcome.audio.duration_seconds - 2.0) < 0.01
    assert outcome.generation_ms == 12.0 and outcome.model == "fake/model"
    assert outcome.bytes_read == len(outcome.wav or b"")
    # named for publication once, as it was checked (a spooled answer is not read back for it)
    assert outcome.audio_sha256 == hashlib.sha256(outcome.wav or b"").hexdigest()


async def test_a_slow_miner_times_out_at_the_deadline(net: Net) -> None:
    started = time.perf_counter()
    outcome = await _ask(net, "timeout", deadline_s=1.0)
    elapsed = time.perf_counter() - started
    assert outcome.code == "timeout"
    assert 0.9 < elapsed < 3.0


async def test_reading_stops_at_the_response_limit(net: Net) -> None:
    outcome = await _ask(net, "too_large")
    assert outcome.code == "too_large"
    # At most one chunk past the limit is read; the server had far more to send.
    assert LIMIT < outcome.bytes_read <= LIMIT + 2 * STREAM_CHUNK
    assert outcome.bytes_read < 256 * 1024 * 1024


async def test_the_http_status_and_detail_are_reported(net: Net) -> None:
    outcome = await _ask(net, "error_500")
    assert outcome.status == 500 and "boom" in (outcome.reason or "")


async def test_each_miner_gets_the_same_challenge_with_a_seed_of_its_own(net: Net) -> None:
    client = MinerClient(net.validator, max_response_bytes=LIMIT, max_audio_seconds=90.0)
    challenge = make_challenge(round_seed("v", 2, b"k"), 2, 2)
    seeds = {net.miners.hotkey("good"): 11, net.miners.hotkey("echo"): 22}
    before = len(net.miners.requests)
    try:
        outcomes = await client.query_many(
            [net.neuron("good"), net.neuron("echo")], challenge, 10.0, seeds
        )
    finally:
        await client.aclose()
    assert all(o.ok for o in outcomes)
    received = dict(net.miners.requests[before:])
    assert received["good"] == challenge.model_copy(update={"seed": 11})
    assert received["echo"] == challenge.model_copy(update={"seed": 22})


async def test_answers_are_handed_on_as_they_arrive_and_checked_two_at_a_time(net: Net) -> None:
    """A round starts scoring each answer when it arrives (`on_answer`), and at most
    MAX_CONCURRENT_CHECKS answers are decoded for their check at once (each one ≈ 50 MB)."""
    client = MinerClient(net.validator, max_response_bytes=LIMIT, max_audio_seconds=90.0)
    challenge = make_challenge(round_seed("v", 3, b"k"), 2, 2)
    check, running, most = client._check, [0], [0]

    def counted(wav: bytes, keep: Callable[[WavAudio], WavAudio] | None) -> WavAudio:
        running[0] += 1
        most[0] = max(most[0], running[0])
        try:
            time.sleep(0.05)  # long enough for the answers to overlap here
            return check(wav, keep)
        finally:
            running[0] -= 1

    client._check = counted  # type: ignore[method-assign]
    handed: list[tuple[int, QueryOutcome]] = []
    neurons = [net.neuron("good")] * 5 + [net.neuron("error_500")]
    try:
        outcomes = await client.query_many(
            neurons, challenge, 10.0, on_answer=lambda i, o: handed.append((i, o))
        )
    finally:
        await client.aclose()
    assert [o.ok for o in outcomes] == [True] * 5 + [False]
    assert sorted(i for i, _ in handed) == [0, 1, 2, 3, 4]  # never the failed answer
    assert all(outcomes[i] is o for i, o in handed)
    assert 1 <= most[0] <= MAX_CONCURRENT_CHECKS


async def test_a_round_keeps_its_answers_in_its_spool_not_in_memory(
    net: Net, tmp_path: Path
) -> None:
    """With `keep` (a round's spool) a checked answer's bytes go to disk in its checking thread;
    the outcome holds where they are, and they read back as the miner signed them."""
    client = MinerClient(net.validator, max_response_bytes=LIMIT, max_audio_seconds=90.0)
    challenge = make_challenge(round_seed("v", 4, b"k"), 2, 2)
    neurons = [net.neuron("error_500"), net.neuron("good")]
    try:
        with RoundSpool(tmp_path) as spool:
            outcomes = await client.query_many(neurons, challenge, 10.0, keep=spool.keep)
            failed, answer = outcomes
            assert failed.audio is None and not list(spool.folder.glob("0.*"))
            assert isinstance(answer.audio, SpooledWav) and answer.wav is None
            assert answer.audio.wav == b"" and answer.audio.path == str(spool.folder / "1.wav")
            data = answer.audio.read()
            assert len(data) == answer.bytes_read and data[:4] == b"RIFF"
            assert answer.audio.decode().num_samples == answer.audio.num_samples
    finally:
        await client.aclose()
    with pytest.raises(FileNotFoundError):  # the round is over: its answers are gone
        answer.audio.read()
