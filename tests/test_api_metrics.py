"""The API's /metrics over real HTTP: traffic by route template, credits, jobs, scores, 429s."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers.api_server import (
    Neurons,
    ServerThread,
    bearer,
    make_chain,
    make_settings,
    new_customer,
    running_api,
    signed_request,
    wav_bytes,
)
from tests.helpers.metrics_scrape import label_values, parse, scrape, value
from tuneforge.api.db import Database
from tuneforge.api.metrics import DatabaseCollector
from tuneforge.api.settings import ApiSettings
from tuneforge.core.metrics import new_registry, render

P = "tuneforge_api"
STATUS_ROUTE = "/api/v1/music/status/{request_id}"


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerThread, ApiSettings, Neurons]]:
    tmp = tmp_path_factory.mktemp("api_metrics")
    chain_path, neurons = make_chain(tmp)
    with running_api(make_settings(tmp, chain_path)) as server:
        yield server, make_settings(tmp, chain_path), neurons


@pytest.fixture()
def client(api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api[0].url, timeout=10) as http:
        yield http


def generate(client: httpx.Client, key: str, seconds: float) -> httpx.Response:
    return client.post(
        "/api/v1/music/generate",
        json={"prompt": "a calm piano piece", "duration_seconds": seconds},
        headers=bearer(key),
    )


def test_credits_counter_moves_by_the_amount_charged_and_refunds_are_counted(client, api) -> None:
    _, key = new_customer(api[1], credits=100)
    before = scrape(client)
    first = generate(client, key, 15)  # 5 credits
    second = generate(client, key, 7)  # ceil(7 / 3) = 3 credits
    assert first.status_code == second.status_code == 201
    middle = scrape(client)
    charged = value(middle, f"{P}_credits_charged_total") - value(
        before, f"{P}_credits_charged_total"
    )
    assert charged == 5 + 3
    assert value(middle, f"{P}_jobs", status="queued") >= 2
    assert value(middle, f"{P}_queue_depth") == value(middle, f"{P}_jobs", status="queued")

    # A validator claims both jobs and fails them: both are refunded in full.
    claim = json.dumps({"max_jobs": 16}).encode()
    jobs = signed_request(client, api[2].validator, "POST", "/api/v1/validator/jobs/claim", claim)
    assert jobs.status_code == 200
    for job in jobs.json()["jobs"]:
        path = f"/api/v1/validator/jobs/{job['request_id']}/result"
        body = json.dumps({"error": "miner timed out"}).encode()
        assert signed_request(client, api[2].validator, "POST", path, body).status_code == 200
    after = scrape(client)
    refunded = value(after, f"{P}_credits_refunded_total") - value(
        before, f"{P}_credits_refunded_total"
    )
    assert refunded == 5 + 3
    assert value(after, f"{P}_jobs", status="failed") >= 2
    assert value(after, f"{P}_jobs", status="queued") == 0


def test_requests_are_labelled_by_route_template_never_by_raw_path(client, api) -> None:
    _, key = new_customer(api[1], credits=10)
    before = scrape(client)
    ids = [f"req_{uuid.uuid4().hex}" for _ in range(3)]
    for request_id in ids:
        response = client.get(f"/api/v1/music/status/{request_id}", headers=bearer(key))
        assert response.status_code == 404
    assert client.get(f"/no/such/{ids[0]}").status_code == 404
    after = scrape(client)

    requests = f"{P}_http_requests_total"
    moved = value(after, requests, route=STATUS_ROUTE, method="GET", status="4xx") - value(
        before, requests, route=STATUS_ROUTE, method="GET", status="4xx"
    )
    assert moved == 3
    unmatched = value(after, requests, route="<unmatched>", method="GET", status="4xx")
    assert unmatched >= 1
    routes = label_values(after, requests, "route")
    assert not any(request_id in route for route in routes for request_id in ids)
    assert "/api/v1/music/generate" in routes or STATUS_ROUTE in routes
    assert all(status.endswith("xx") for status in label_values(after, requests, "status"))


def test_latency_histogram_and_published_scores_count_tracks(client, api) -> None:
    before = scrape(client)
    audio = wav_bytes()
    results: list[dict[str, Any]] = [
        {
            "track_id": f"trk_{uuid.uuid4().hex[:12]}",
            "miner_uid": uid,
            "miner_hotkey": f"5Miner{uid}",
            "final_score": 0.5,
            "composite": 0.5,
            "score_breakdown": {"clap": 0.5},
            "penalties": {},
            "audio_sha256": hashlib.sha256(audio).hexdigest(),
            "duration_seconds": 0.25,
            "sample_rate": 32000,
        }
        for uid in (1, 2)
    ]
    body = {"round_id": uuid.uuid4().hex, "block": 7, "challenge": {}, "results": results}
    published = signed_request(
        client, api[2].validator, "POST", "/api/v1/scores", json.dumps(body).encode()
    )
    assert published.status_code == 201
    after = scrape(client)
    assert (
        value(after, f"{P}_scores_published_total") - value(before, f"{P}_scores_published_total")
        == 2
    )
    assert (
        value(after, f"{P}_rounds_published_total") - value(before, f"{P}_rounds_published_total")
        == 1
    )
    count = f"{P}_http_request_duration_seconds_count"
    route = {"route": "/api/v1/scores", "method": "POST"}
    assert value(after, count, **route) - value(before, count, **route) == 1
    assert value(after, f"{P}_http_request_duration_seconds_sum", **route) > 0
    assert value(after, f"{P}_database_up") == 1
    assert value(after, f"{P}_metagraph_neurons") == 2


@pytest.fixture(scope="module")
def strict_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """An API allowing 3 anonymous requests a minute whose /metrics is for 10.0.0.0/8 only."""
    tmp = tmp_path_factory.mktemp("api_metrics_strict")
    chain_path, _ = make_chain(tmp)
    settings = make_settings(
        tmp, chain_path, anonymous_rate_limit_per_minute=3, metrics_allow=["10.0.0.0/8"]
    )
    with running_api(settings) as server:
        yield server


def test_rate_limited_requests_are_counted_and_metrics_refuse_other_addresses(
    strict_api,
) -> None:
    with httpx.Client(base_url=strict_api.url, timeout=10) as client:
        statuses = [client.get("/leaderboard.json").status_code for _ in range(5)]
        refused = client.get("/metrics")
    assert statuses == [200, 200, 200, 429, 429]
    assert refused.status_code == 403 and "not available" in refused.json()["detail"]
    # The same registry, read in-process, saw the two 429s under the route template.
    ctx = strict_api.app.state.ctx
    samples = parse(render(ctx.metrics.registry).decode())
    assert value(samples, f"{P}_rate_limited_total", route="/leaderboard.json") == 2
    assert (
        value(samples, f"{P}_http_requests_total", route="/metrics", method="GET", status="4xx")
        == 1
    )


def test_an_unreachable_database_is_reported_without_breaking_the_scrape(api) -> None:
    ctx = api[0].app.state.ctx
    # Port 1 on loopback refuses at once: the same context, but its database is gone.
    gone = Database.open("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    try:
        registry = new_registry()
        registry.register(DatabaseCollector(dataclasses.replace(ctx, db=gone)))
        samples = parse(render(registry).decode())
    finally:
        gone.dispose()
    assert value(samples, f"{P}_database_up") == 0
    assert (f"{P}_credits_charged_total", frozenset()) not in samples
    assert value(samples, f"{P}_metagraph_neurons") == 2  # the rest of the scrape still answers
