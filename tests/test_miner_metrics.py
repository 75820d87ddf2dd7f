"""Miner /metrics scraped over real HTTP: outcomes counted, generation timed, queue visible.

Each test reads the exposition text the way Prometheus would (prometheus-client's own parser)
before and after real signed requests to a uvicorn miner on 127.0.0.1 backed by a LocalChain.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.miner_server import (
    CountingBackend,
    MinerNet,
    get_info,
    make_net,
    post_generate,
    serve_app,
    signed_headers,
    synapse_body,
)
from tuneforge.core.protocol import GENERATE_PATH, HEADER_SPEC_VERSION, MAX_REQUEST_BYTES

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def requests_by_outcome(samples: Samples) -> dict[str, float]:
    return {
        dict(labels)["outcome"]: v
        for (name, labels), v in samples.items()
        if name == "tuneforge_miner_requests_total"
    }


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


@dataclass
class Served:
    net: MinerNet
    backend: CountingBackend
    client: httpx.Client


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    net = make_net(tmp_path_factory.mktemp("miner_metrics"))
    net.add_caller("validator", stake=5_000.0)
    net.add_caller("stranger", registered=False)
    backend = CountingBackend()
    with serve_app(net.app(backend)) as url, httpx.Client(base_url=url, timeout=20) as client:
        yield Served(net, backend, client)


def test_served_and_refused_requests_move_their_outcome_counters(served: Served) -> None:
    s, miner = served, served.net.miner_hotkey
    validator, stranger = s.net.callers["validator"], s.net.callers["stranger"]
    before = scrape(s.client)
    assert set(requests_by_outcome(before)) >= {"served", "401", "403", "413", "422", "503"}

    body = synapse_body(duration_seconds=1.0)
    assert post_generate(s.client, validator, miner, body).status_code == 200
    assert post_generate(s.client, validator, miner, body).status_code == 200
    assert s.client.post(GENERATE_PATH, content=body).status_code == 426  # no spec header
    unsigned = {HEADER_SPEC_VERSION: signed_headers(validator, miner, body)[HEADER_SPEC_VERSION]}
    assert s.client.post(GENERATE_PATH, content=body, headers=unsigned).status_code == 401
    assert post_generate(s.client, stranger, miner, body).status_code == 403
    big = b"x" * (MAX_REQUEST_BYTES + 1)
    assert post_generate(s.client, validator, miner, big).status_code == 413
    too_long = b'{"prompt": "calm piano", "duration_seconds": 10000, "seed": 1}'
    assert post_generate(s.client, validator, miner, too_long).status_code == 422
    assert get_info(s.client, validator, miner).status_code == 200
    assert get_info(s.client, stranger, miner).status_code == 403

    after = scrape(s.client)
    moved = {
        outcome: count - requests_by_outcome(before)[outcome]
        for outcome, count in requests_by_outcome(after).items()
        if count != requests_by_outcome(before)[outcome]
    }
    assert moved == {"served": 2, "426": 1, "401": 1, "403": 1, "413": 1, "422": 1}
    info_served = ("tuneforge_miner_info_requests_total", frozenset({("outcome", "served")}))
    info_refused = ("tuneforge_miner_info_requests_total", frozenset({("outcome", "403")}))
    assert after[info_served] - before.get(info_served, 0.0) == 1
    assert after[info_refused] - before.get(info_refused, 0.0) == 1
    # Only the two generations that ran were timed.
    count = "tuneforge_miner_generation_seconds_count"
    assert value(after, count) - value(before, count) == 2
    assert value(after, "tuneforge_miner_generation_seconds_sum") > value(
        before, "tuneforge_miner_generation_seconds_sum"
    )
    assert value(after, "tuneforge_miner_generation_seconds_bucket", le="+Inf") == value(
        after, count
    )


def test_backend_identity_and_metagraph_age_are_exposed(served: Served) -> None:
    samples = scrape(served.client)
    info = {
        dict(labels)["model"]: dict(labels)
        for (name, labels), _ in samples.items()
        if name == "tuneforge_miner_backend_info"
    }
    assert info["test/passthrough"]["backend"] == "passthrough"
    assert info["test/passthrough"]["hotkey"] == served.net.miner_hotkey
    age = value(samples, "tuneforge_miner_metagraph_age_seconds")
    assert 0.0 <= age < 120.0  # loaded at startup, refreshed every 60 s


def test_queue_gauges_show_running_and_waiting_generations(tmp_path_factory) -> None:
    net = make_net(tmp_path_factory.mktemp("miner_metrics_queue"))
    validator = net.add_caller("validator", stake=5_000.0)
    gate = threading.Event()
    backend = CountingBackend(gate=gate)
    app = net.app(backend, queue_size=1, max_concurrent_per_caller=8)
    miner, body = net.miner_hotkey, synapse_body(duration_seconds=1.0)
    with (
        serve_app(app) as url,
        httpx.Client(base_url=url, timeout=30) as client,
        ThreadPoolExecutor(2) as pool,
    ):
        idle = scrape(client)
        assert value(idle, "tuneforge_miner_queue_depth") == 0
        assert value(idle, "tuneforge_miner_generations_in_flight") == 0
        assert value(idle, "tuneforge_miner_queue_capacity") == 2  # 1 waiting + 1 worker

        def call() -> int:
            with httpx.Client(base_url=url, timeout=30) as own:
                return post_generate(own, validator, miner, body).status_code

        running = pool.submit(call)
        assert backend.entered.wait(10)
        waiting = pool.submit(call)
        wait_until(lambda: value(scrape(client), "tuneforge_miner_queue_depth") == 2)
        busy = scrape(client)
        assert value(busy, "tuneforge_miner_generations_in_flight") == 1
        assert post_generate(client, validator, miner, body).status_code == 503  # queue full
        gate.set()
        assert (running.result(30), waiting.result(30)) == (200, 200)
        done = scrape(client)
    assert value(done, "tuneforge_miner_queue_depth") == 0
    assert value(done, "tuneforge_miner_generations_in_flight") == 0
    assert requests_by_outcome(done)["served"] - requests_by_outcome(idle)["served"] == 2
    assert requests_by_outcome(done)["503"] - requests_by_outcome(idle)["503"] == 1


def test_metrics_are_refused_outside_the_allow_list_and_can_be_switched_off(
    tmp_path_factory,
) -> None:
    net = make_net(tmp_path_factory.mktemp("miner_metrics_off"))
    backend = CountingBackend()
    with (
        serve_app(net.app(backend, metrics_allow=["10.0.0.0/8"])) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        refused = client.get("/metrics")
        assert refused.status_code == 403
        assert "tuneforge_miner" not in refused.text
    with (
        serve_app(net.app(backend, metrics=False)) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        assert client.get("/metrics").status_code == 404


def test_metrics_route_opens_nothing_else(served: Served) -> None:
    body = synapse_body(duration_seconds=1.0)
    calls = served.backend.calls
    assert served.client.post("/metrics", content=body).status_code == 405
    assert served.client.get(f"/metrics{GENERATE_PATH}").status_code == 404
    assert served.backend.calls == calls
