"""What the API exposes at `/metrics`: HTTP traffic (process-local) and business totals read from
the database at scrape time.

HTTP counters live in this worker's memory. Credits, jobs and published scores are read from the
database on each scrape instead of being counted in memory, so every worker of a multi-worker
deployment reports the same exact totals, and they survive restarts (jobs and results are never
deleted, so the sums only grow and are valid Prometheus counters).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from starlette.routing import BaseRoute, Match

from tuneforge.api.middleware import ASGIApp, Message, Receive, Scope, Send
from tuneforge.api.models import (
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_PROCESSING,
    JOB_QUEUED,
    GenerationRequest,
    Round,
    ScoreResult,
    Track,
)

if TYPE_CHECKING:
    from tuneforge.api.context import ApiContext

PREFIX = "tuneforge_api"
UNMATCHED_ROUTE = "<unmatched>"  # 404s: never the raw path, which an attacker chooses freely
KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
JOB_STATUSES = (JOB_QUEUED, JOB_PROCESSING, JOB_COMPLETED, JOB_FAILED)
# Request latency buckets (seconds): sub-millisecond reads up to slow WAV uploads.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "OTHER"


class ApiMetrics:
    """The API's registry and its process-local HTTP metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests by route template, method and status class",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "Time from request start until the handler returned",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.rate_limited = Counter(
            f"{PREFIX}_rate_limited",
            "Requests refused with 429 by route template",
            ["route"],
            registry=registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method_label(method)
        self.requests.labels(route, method, status_class(status)).inc()
        self.latency.labels(route, method).observe(seconds)
        if status == 429:
            self.rate_limited.labels(route).inc()


def route_template(scope: Scope, routes: list[BaseRoute]) -> str:
    """The matched route's template (`/api/v1/music/status/{request_id}`), never the raw path.

    FastAPI leaves the matched route in `scope["route"]`; requests answered before routing (429
    and 413 from the guard) are matched here against `routes`, the app's leaf routes.
    """
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    partial = None
    for candidate in routes:
        match, _ = candidate.matches(scope)
        if match == Match.FULL:
            return str(getattr(candidate, "path", UNMATCHED_ROUTE))
        if match == Match.PARTIAL and partial is None:
            partial = str(getattr(candidate, "path", UNMATCHED_ROUTE))
    return partial or UNMATCHED_ROUTE


def leaf_routes(routes: Iterable[BaseRoute]) -> list[BaseRoute]:
    """Routes that carry their own full path template (app routes and those of APIRouters
    included without an extra prefix); router wrappers without a `path` are skipped."""
    return [route for route in routes if isinstance(getattr(route, "path", None), str)]


class MetricsMiddleware:
    """Outermost ASGI layer: times every HTTP request and counts it by route template."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, routes: list[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app dies before answering

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.observe(
                route_template(scope, self.routes),
                scope["method"],
                status,
                time.perf_counter() - started,
            )


class DatabaseCollector(Collector):
    """Business totals read from the API database on every scrape (exact across workers)."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def describe(self) -> Iterator[Metric]:
        # Empty: describing would run the queries at registration time.
        return iter(())

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(f"{PREFIX}_database_up", "1 when the last scrape read the database")
        try:
            families = self._families()
        except Exception as exc:  # any driver error: report the outage, keep the scrape alive
            logger.warning("metrics: database unreachable: {}", exc)
            up.add_metric([], 0.0)
            yield up
        else:
            up.add_metric([], 1.0)
            yield up
            yield from families
        yield from self._metagraph()

    def _families(self) -> list[Metric]:
        with self.ctx.db.read() as session:
            by_status = dict(
                session.execute(
                    select(GenerationRequest.status, func.count()).group_by(
                        GenerationRequest.status
                    )
                ).all()
            )
            charged, refunded = session.execute(
                select(
                    func.coalesce(func.sum(GenerationRequest.credits_charged), 0),
                    func.coalesce(
                        func.sum(
                            case(
                                (
                                    GenerationRequest.refunded.is_(True),
                                    GenerationRequest.credits_charged,
                                ),
                                else_=0,
                            )
                        ),
                        0,
                    ),
                )
            ).one()
            results = session.scalar(select(func.count()).select_from(ScoreResult)) or 0
            rounds = session.scalar(select(func.count()).select_from(Round)) or 0
            delivered = session.scalar(select(func.count()).select_from(Track)) or 0

        jobs = GaugeMetricFamily(f"{PREFIX}_jobs", "Customer jobs by status", labels=["status"])
        for name in JOB_STATUSES:
            jobs.add_metric([name], float(by_status.get(name, 0)))
        queue = GaugeMetricFamily(f"{PREFIX}_queue_depth", "Customer jobs waiting for a validator")
        queue.add_metric([], float(by_status.get(JOB_QUEUED, 0)))
        return [
            jobs,
            queue,
            _counter("credits_charged", "Credits taken when jobs were accepted", charged),
            _counter("credits_refunded", "Credits given back for failed or expired jobs", refunded),
            _counter("scores_published", "Challenge tracks published by validators", results),
            _counter("rounds_published", "Validator rounds published", rounds),
            _counter("tracks_delivered", "Customer tracks delivered by validators", delivered),
        ]

    def _metagraph(self) -> Iterator[Metric]:
        age = self.ctx.metagraph.age_s()
        snapshot = self.ctx.metagraph.snapshot
        if age is not None:
            gauge = GaugeMetricFamily(
                f"{PREFIX}_metagraph_age_seconds", "Seconds since the metagraph was refreshed"
            )
            gauge.add_metric([], float(age))
            yield gauge
        if snapshot is not None:
            gauge = GaugeMetricFamily(f"{PREFIX}_metagraph_neurons", "Neurons on the metagraph")
            gauge.add_metric([], float(len(snapshot.neurons)))
            yield gauge


def _counter(name: str, documentation: str, value: Any) -> CounterMetricFamily:
    family = CounterMetricFamily(f"{PREFIX}_{name}", documentation)
    family.add_metric([], float(value or 0))
    return family
