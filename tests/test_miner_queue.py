"""The miner's work queue: bounded, stake-ordered, and failures that leave the miner serving."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.helpers.miner_server import (
    CountingBackend,
    get_info,
    make_net,
    post_generate,
    serve_app,
    synapse_body,
)
from tuneforge.generation.base import GenerationError, GenerationOutOfMemory
from tuneforge.miner.work_queue import QueueFull, WorkQueue


def _wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


# ---- WorkQueue on its own ----------------------------------------------------------------------


def test_queue_serves_higher_priority_first_then_arrival_order() -> None:
    gate = threading.Event()
    order: list[str] = []
    queue = WorkQueue(capacity=4, workers=1)
    queue.start()
    try:
        blocker = queue.submit(0.0, gate.wait)
        _wait_until(lambda: queue.depth == 1 and not queue._heap)
        futures = [
            queue.submit(priority, lambda name=name: order.append(name))
            for name, priority in [("low", 1.0), ("high", 9.0), ("mid", 5.0), ("high2", 9.0)]
        ]
        gate.set()
        for future in [blocker, *futures]:
            future.result(timeout=5)
    finally:
        queue.stop()
    assert order == ["high", "high2", "mid", "low"]


def test_full_queue_refuses_equal_stake_but_evicts_lowest_for_higher_stake() -> None:
    gate = threading.Event()
    queue = WorkQueue(capacity=1, workers=1, retry_after_s=7)
    queue.start()
    try:
        running = queue.submit(5.0, gate.wait)
        waiting_low = queue.submit(1.0, lambda: "low")
        with pytest.raises(QueueFull) as refused:
            queue.submit(1.0, lambda: "equal")
        assert refused.value.retry_after_s == 7
        waiting_high = queue.submit(3.0, lambda: "high")
        with pytest.raises(QueueFull, match="evicted"):
            waiting_low.result(timeout=5)
        gate.set()
        assert waiting_high.result(timeout=5) == "high"
        assert running.result(timeout=5) is True
    finally:
        queue.stop()


def test_a_failing_job_does_not_stop_the_worker() -> None:
    queue = WorkQueue(capacity=2, workers=1)
    queue.start()
    try:

        def boom() -> None:
            raise GenerationOutOfMemory("CUDA out of memory")

        with pytest.raises(GenerationOutOfMemory):
            queue.submit(1.0, boom).result(timeout=5)
        assert queue.submit(1.0, lambda: 42).result(timeout=5) == 42
        assert queue.depth == 0
    finally:
        queue.stop()


# ---- over HTTP -------------------------------------------------------------------------------


def test_one_worker_queue_of_two_serves_three_of_five_and_refuses_two_with_503(
    tmp_path: Path,
) -> None:
    net = make_net(tmp_path)
    validator = net.add_caller("validator")
    gate = threading.Event()
    backend = CountingBackend(gate=gate)
    app = net.app(backend, queue_size=2, max_concurrent_per_caller=10)
    with (
        serve_app(app) as url,
        httpx.Client(base_url=url, timeout=30) as client,
        ThreadPoolExecutor(5) as pool,
    ):
        futures = [
            pool.submit(post_generate, client, validator, net.miner_hotkey, synapse_body())
            for _ in range(5)
        ]
        _wait_until(lambda: sum(f.done() for f in futures) == 2)
        gate.set()
        responses = [f.result() for f in futures]
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 200, 503, 503]
    for refused in (r for r in responses if r.status_code == 503):
        assert int(refused.headers["Retry-After"]) > 0
        assert "queue is full" in refused.json()["detail"]
    assert backend.calls == 3


def test_higher_stake_callers_are_served_first_when_queued(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    callers = {
        "first": net.add_caller("first", stake=2_000.0),
        "low": net.add_caller("low", stake=1_500.0),
        "high": net.add_caller("high", stake=90_000.0),
    }
    gate = threading.Event()
    backend = CountingBackend(gate=gate)
    app = net.app(backend, queue_size=4)
    with (
        serve_app(app) as url,
        httpx.Client(base_url=url, timeout=30) as client,
        ThreadPoolExecutor(3) as pool,
    ):
        futures = []
        for depth, name in enumerate(["first", "low", "high"], start=1):
            body = synapse_body(prompt=name)
            futures.append(
                pool.submit(post_generate, client, callers[name], net.miner_hotkey, body)
            )
            # Arrival order is fixed: wait until each request is queued before the next.
            _wait_until(
                lambda depth=depth: (
                    get_info(client, callers["first"], net.miner_hotkey).json()["queue_depth"]
                    == depth
                )
            )
        gate.set()
        assert [f.result().status_code for f in futures] == [200, 200, 200]
    assert backend.prompts == ["first", "high", "low"]


def test_out_of_memory_answers_503_and_the_next_request_is_served(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    validator = net.add_caller("validator")
    backend = CountingBackend(failures=[GenerationOutOfMemory("CUDA out of memory")])
    with serve_app(net.app(backend)) as url, httpx.Client(base_url=url, timeout=30) as client:
        oom = post_generate(client, validator, net.miner_hotkey, synapse_body())
        assert oom.status_code == 503
        assert "out of memory" in oom.json()["detail"]
        assert int(oom.headers["Retry-After"]) > 0
        served = post_generate(client, validator, net.miner_hotkey, synapse_body())
        assert served.status_code == 200
    assert backend.calls == 2


def test_generation_error_answers_500_with_its_reason(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    validator = net.add_caller("validator")
    backend = CountingBackend(failures=[GenerationError("decoder produced NaN")])
    with serve_app(net.app(backend)) as url, httpx.Client(base_url=url, timeout=30) as client:
        failed = post_generate(client, validator, net.miner_hotkey, synapse_body())
        assert failed.status_code == 500
        assert "decoder produced NaN" in failed.json()["detail"]
        assert post_generate(client, validator, net.miner_hotkey, synapse_body()).is_success


def test_info_answers_while_a_generation_is_running_and_per_caller_limit_is_429(
    tmp_path: Path,
) -> None:
    net = make_net(tmp_path)
    validator = net.add_caller("validator")
    gate = threading.Event()
    backend = CountingBackend(gate=gate)
    app = net.app(backend, queue_size=4, max_concurrent_per_caller=1)
    with (
        serve_app(app) as url,
        httpx.Client(base_url=url, timeout=30) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        running = pool.submit(post_generate, client, validator, net.miner_hotkey, synapse_body())
        assert backend.entered.wait(10)
        started = time.perf_counter()
        info = get_info(client, validator, net.miner_hotkey)
        assert time.perf_counter() - started < 2.0
        assert info.status_code == 200
        assert info.json()["queue_depth"] == 1
        second = post_generate(client, validator, net.miner_hotkey, synapse_body())
        assert second.status_code == 429
        gate.set()
        assert running.result().status_code == 200
    assert backend.calls == 1


def test_a_queued_job_whose_caller_hung_up_is_never_generated(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    validator = net.add_caller("validator")
    gate = threading.Event()
    backend = CountingBackend(gate=gate)
    app = net.app(backend, queue_size=4)
    with (
        serve_app(app) as url,
        httpx.Client(base_url=url, timeout=30) as client,
        httpx.Client(base_url=url, timeout=0.5) as impatient,
        ThreadPoolExecutor(1) as pool,
    ):
        running = pool.submit(post_generate, client, validator, net.miner_hotkey, synapse_body())
        assert backend.entered.wait(10)
        with pytest.raises(httpx.ReadTimeout):
            post_generate(impatient, validator, net.miner_hotkey, synapse_body(prompt="gone"))
        _wait_until(
            lambda: get_info(client, validator, net.miner_hotkey).json()["queue_depth"] == 1
        )
        gate.set()
        assert running.result().status_code == 200
        after = post_generate(client, validator, net.miner_hotkey, synapse_body(prompt="next"))
        assert after.status_code == 200
    assert backend.prompts == ["calm piano", "next"]


def test_a_body_trickled_in_too_slowly_is_refused_408_without_generation(tmp_path: Path) -> None:
    import socket

    net = make_net(tmp_path)
    backend = CountingBackend()
    app = net.app(backend, request_body_timeout_s=0.3)
    with serve_app(app) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(
                b"POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                b'X-TuneForge-Spec-Version: 1.0\r\n\r\n{"prompt"'
            )
            reply = b""
            deadline = time.monotonic() + 5
            while b"within" not in reply and time.monotonic() < deadline:
                chunk = sock.recv(4096)  # headers and body may come in separate segments
                if not chunk:
                    break
                reply += chunk
    assert reply.startswith(b"HTTP/1.1 408")
    assert b"not received within" in reply
    assert backend.calls == 0
