"""A miner uses every device it is given, and the speed score times generation plus transfer —
never the wait behind another validator's request (reserve-then-send, decisions D33/D34)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.miner_server import CountingBackend, make_net, serve_app, signed_headers
from tuneforge.chain.base import Neuron
from tuneforge.core.protocol import HEADER_SLOT, RESERVE_PATH, SlotGrant
from tuneforge.generation.settings import GenerationSettings
from tuneforge.miner.config import MinerSection, MinerSettings
from tuneforge.miner.run import load_backends
from tuneforge.validator.challenges import make_challenge, round_seed
from tuneforge.validator.query import MinerClient, QueryOutcome


class SlowBackend(CountingBackend):
    """Takes `seconds` per generation, and records how many generations overlap."""

    def __init__(self, seconds: float, running: list[int], lock: threading.Lock) -> None:
        super().__init__()
        self.seconds = seconds
        self.running = running  # [now, most at once], shared by the replicas
        self.shared_lock = lock

    def generate(self, request):  # type: ignore[no-untyped-def]
        with self.shared_lock:
            self.running[0] += 1
            self.running[1] = max(self.running[1], self.running[0])
        try:
            time.sleep(self.seconds)
            return super().generate(request)
        finally:
            with self.shared_lock:
                self.running[0] -= 1


def _replicas(count: int, seconds: float) -> tuple[list[SlowBackend], list[int]]:
    running = [0, 0]
    lock = threading.Lock()
    return [SlowBackend(seconds, running, lock) for _ in range(count)], running


async def _ask_together(net, validators, url: str) -> list[QueryOutcome]:  # type: ignore[no-untyped-def]
    neuron = Neuron(0, net.miner_hotkey, "", 0.0, False, url.removeprefix("http://"), 0)
    challenge = make_challenge(round_seed("v", 1, b"k"), 2, 2)
    clients = [MinerClient(v, 8 * 1024 * 1024, 60.0) for v in validators]
    try:
        answers = await asyncio.gather(
            *(c.query_many([neuron], challenge, deadline_s=20.0) for c in clients)
        )
    finally:
        for client in clients:
            await client.aclose()
    return [outcome for [outcome] in answers]


def test_two_devices_generate_two_validators_requests_at_the_same_time(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    validators = [net.add_caller(f"validator{i}") for i in range(2)]
    backends, running = _replicas(2, seconds=1.0)
    with serve_app(net.app(backends)) as url:
        outcomes = asyncio.run(_ask_together(net, validators, url))
    assert all(o.ok and o.slotted for o in outcomes), [o.error for o in outcomes]
    assert running[1] == 2  # both devices worked at once, not one after the other
    assert [b.calls for b in backends] == [1, 1]  # one request each
    assert all(o.wait_ms < 900 for o in outcomes)  # nobody queued behind the other


def test_waiting_behind_another_validator_is_not_counted_as_generation_time(
    tmp_path: Path,
) -> None:
    net = make_net(tmp_path)
    validators = [net.add_caller(f"validator{i}") for i in range(2)]
    backends, running = _replicas(1, seconds=1.0)
    with serve_app(net.app(backends)) as url:
        outcomes = asyncio.run(_ask_together(net, validators, url))
    assert all(o.ok and o.slotted for o in outcomes), [o.error for o in outcomes]
    assert running[1] == 1
    first, second = sorted(outcomes, key=lambda o: o.wait_ms)
    assert second.wait_ms >= 800  # it queued behind the first generation...
    for outcome in outcomes:  # ...yet both are timed as one generation, not two
        assert 900 <= outcome.elapsed_ms < 1_800, outcome.facts()


def test_miner_devices_load_one_replica_each_and_size_the_queue(tmp_path: Path) -> None:
    settings = MinerSettings(miner=MinerSection(devices="cpu, cpu"))
    devices = settings.miner.device_list(settings.generation.device)
    assert devices == ["cpu", "cpu"]
    replicas = load_backends(GenerationSettings(backend="synth"), devices)
    assert len(replicas) == 2 and replicas[0] is not replicas[1]
    assert settings.miner.queue_capacity(len(devices)) == 8
    assert MinerSettings().miner.device_list("auto") == ["auto"]
    with pytest.raises(ValueError):
        MinerSection(devices="cuda:0,gpu7")
    net = make_net(tmp_path)
    validator = net.add_caller("validator")
    with serve_app(net.app(replicas)) as url, httpx.Client(base_url=url, timeout=10) as client:
        headers = signed_headers(validator, net.miner_hotkey, b"", method="GET", path="/v1/info")
        info = client.get("/v1/info", headers=headers).json()
    assert info["devices"] == 2 and info["queue_capacity"] == 10  # 8 waiting + 2 running


def _reserve(client: httpx.Client, wallet, miner: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    body = b'{"duration_seconds": 2.0}'
    headers = signed_headers(wallet, miner, body, path=RESERVE_PATH)
    return client.post(RESERVE_PATH, content=body, headers=headers)


def test_a_slot_is_one_use_bound_to_its_caller_and_expires(tmp_path: Path) -> None:
    from tests.helpers.miner_server import post_generate, synapse_body

    net = make_net(tmp_path)
    owner, other = net.add_caller("owner"), net.add_caller("other")
    backend = CountingBackend()
    with (
        serve_app(net.app([backend], slot_ttl_s=0.5)) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        grant = SlotGrant.model_validate(_reserve(client, owner, net.miner_hotkey).json())
        body = synapse_body()
        stolen = signed_headers(other, net.miner_hotkey, body) | {HEADER_SLOT: grant.slot}
        assert client.post("/v1/generate", content=body, headers=stolen).status_code == 409
        mine = signed_headers(owner, net.miner_hotkey, body) | {HEADER_SLOT: grant.slot}
        assert client.post("/v1/generate", content=body, headers=mine).status_code == 200
        again = signed_headers(owner, net.miner_hotkey, body) | {HEADER_SLOT: grant.slot}
        assert client.post("/v1/generate", content=body, headers=again).status_code == 409
        # A reservation nobody uses frees its worker after the TTL; the miner serves on.
        assert _reserve(client, owner, net.miner_hotkey).status_code == 200
        time.sleep(0.8)
        assert post_generate(client, owner, net.miner_hotkey, body).status_code == 200
    assert backend.calls == 2


def test_a_reservation_abandoned_while_queued_frees_its_caller_and_worker(tmp_path: Path) -> None:
    from tests.helpers.miner_server import post_generate, synapse_body

    net = make_net(tmp_path)
    busy, patient = net.add_caller("busy"), net.add_caller("patient")
    gate = threading.Event()
    backend = CountingBackend(gate=gate)
    with (
        serve_app(net.app([backend], max_concurrent_per_caller=1, slot_ttl_s=1.0)) as url,
        httpx.Client(base_url=url, timeout=20) as client,
    ):
        body = synapse_body()
        holder = threading.Thread(
            target=post_generate, args=(client, busy, net.miner_hotkey, body), daemon=True
        )
        holder.start()
        assert backend.entered.wait(10)  # the only worker is busy
        with (
            httpx.Client(base_url=url, timeout=0.5) as impatient,
            pytest.raises(httpx.ReadTimeout),
        ):
            _reserve(impatient, patient, net.miner_hotkey)  # queued, then hangs up
        gate.set()
        holder.join(10)
        # Its concurrency unit (limit 1) and the worker are freed when the server sees the
        # hang-up, or at the latest when the slot's lifetime ends (a hang-up that races the
        # grant): a new reservation works.
        deadline = time.monotonic() + 5
        while (answer := _reserve(client, patient, net.miner_hotkey)).status_code == 429:
            assert time.monotonic() < deadline, "the abandoned reservation was never released"
            time.sleep(0.1)
        grant = SlotGrant.model_validate(answer.json())
        headers = signed_headers(patient, net.miner_hotkey, body) | {HEADER_SLOT: grant.slot}
        assert client.post("/v1/generate", content=body, headers=headers).status_code == 200
    assert backend.calls == 2
