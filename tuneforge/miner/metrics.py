"""The miner's Prometheus metrics: what an operator graphs and alerts on (GET /metrics).

Gauges read live state (queue, metagraph cache) through callbacks at scrape time, so a scrape
costs a few lock acquisitions and never touches the chain, the GPU or the disk.
"""

from __future__ import annotations

import math
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from tuneforge import __version__
from tuneforge.chain.metagraph import MetagraphCache
from tuneforge.core.metrics import new_registry
from tuneforge.core.protocol import SPEC_VERSION
from tuneforge.generation.base import Backend
from tuneforge.miner.work_queue import WorkQueue

SERVED: Final = "served"
# Every status admission or generation can answer (see admission.py and app.py), pre-created at
# zero so dashboards and `rate()` see each series from the first scrape. 400: malformed
# Content-Length, 408: body too slow, 499: the caller hung up before its audio was ready.
OUTCOMES: Final = (
    SERVED,
    "400",
    "401",
    "403",
    "408",
    "413",
    "422",
    "426",
    "429",
    "499",
    "500",
    "503",
)
OTHER: Final = "other"  # anything else (e.g. a status added later): bounded label cardinality
# Generation times from a fraction of a second (synth, tiny clips) to several minutes (long
# clips on a large model on CPU); validators' deadlines sit in the tens of seconds.
GENERATION_BUCKETS_S: Final = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0)


def outcome_label(outcome: int | str) -> str:
    """`served`, a known HTTP status as text, or `other`."""
    label = str(outcome)
    return label if label in OUTCOMES else OTHER


class MinerMetrics:
    """One miner app's metrics in its own registry."""

    def __init__(
        self,
        backend: Backend,
        queue: WorkQueue,
        metagraph: MetagraphCache,
        hotkey: str,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry if registry is not None else new_registry()
        r = self.registry
        self.requests = Counter(
            "tuneforge_miner_requests",
            "POST /v1/generate requests by outcome: served, or the HTTP status refused with",
            ["outcome"],
            registry=r,
        )
        self.info_requests = Counter(
            "tuneforge_miner_info_requests",
            "GET /v1/info requests by outcome: served, or the HTTP status refused with",
            ["outcome"],
            registry=r,
        )
        for outcome in OUTCOMES:
            self.requests.labels(outcome=outcome)
        self.generation_seconds = Histogram(
            "tuneforge_miner_generation_seconds",
            "Time the backend took for one successful generation",
            buckets=GENERATION_BUCKETS_S,
            registry=r,
        )
        self.queue_depth = Gauge(
            "tuneforge_miner_queue_depth",
            "Generation jobs waiting or running (as reported by /v1/info)",
            registry=r,
        )
        self.queue_depth.set_function(lambda: float(queue.depth))
        self.queue_capacity = Gauge(
            "tuneforge_miner_queue_capacity",
            "Jobs the miner holds at once (queue slots plus workers); more are refused with 503",
            registry=r,
        )
        self.queue_capacity.set(queue.slots)
        self.in_flight = Gauge(
            "tuneforge_miner_generations_in_flight",
            "Generations a worker is running now",
            registry=r,
        )
        self.in_flight.set_function(lambda: float(queue.running))
        self.metagraph_age = Gauge(
            "tuneforge_miner_metagraph_age_seconds",
            "Seconds since the cached metagraph was last refreshed (NaN before the first load)",
            registry=r,
        )

        def metagraph_age() -> float:
            age = metagraph.age_s()
            return math.nan if age is None else age

        self.metagraph_age.set_function(metagraph_age)
        self.backend_info = Info(
            "tuneforge_miner_backend", "The generation backend this miner serves", registry=r
        )
        self.backend_info.info(
            {
                "backend": backend.name,
                "model": backend.model_id,
                "version": __version__,
                "spec_version": SPEC_VERSION,
                "hotkey": hotkey,
            }
        )

    def count_generate(self, outcome: int | str) -> None:
        self.requests.labels(outcome=outcome_label(outcome)).inc()

    def count_info(self, outcome: int | str) -> None:
        self.info_requests.labels(outcome=outcome_label(outcome)).inc()

    def observe_generation(self, seconds: float) -> None:
        self.generation_seconds.observe(seconds)
