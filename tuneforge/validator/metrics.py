"""The validator's Prometheus metrics, in a registry of its own (served on the status port)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import Counter, Gauge, Histogram

from tuneforge.core.metrics import new_registry

OUTBOX_KINDS = ("round_result", "track_audio", "job_audio", "job_result")
# Rounds take seconds (synth) to minutes (MusicGen on many miners).
ROUND_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200)
SCORING_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60, 120, 300)


class ValidatorMetrics:
    """Every series the validator exports; one instance per validator process (or test)."""

    def __init__(self) -> None:
        self.registry = new_registry()
        r = self.registry
        self.rounds = Counter("tuneforge_validator_rounds", "Rounds completed", registry=r)
        self.round_seconds = Histogram(
            "tuneforge_validator_round_seconds",
            "Wall time of a completed round",
            buckets=ROUND_BUCKETS,
            registry=r,
        )
        self.scoring_seconds = Histogram(
            "tuneforge_validator_scoring_seconds",
            "Time the scoring engine took for one round or job",
            ["purpose"],
            buckets=SCORING_BUCKETS,
            registry=r,
        )
        self.queries = Counter(
            "tuneforge_validator_queries",
            "Miner queries by outcome (ok or the failure code)",
            ["purpose", "outcome"],
            registry=r,
        )
        self.check_failures = Counter(
            "tuneforge_validator_check_failures",
            "Scorers/penalties that raised on a clip (the clip then scored 0 / penalty in full)",
            ["check"],
            registry=r,
        )
        self.ema = Gauge(
            "tuneforge_validator_miner_ema", "EMA score per miner", ["uid", "hotkey"], registry=r
        )
        self.weights = Counter(
            "tuneforge_validator_weights_set",
            "Weight-setting attempts by outcome (ok or the error code)",
            ["outcome"],
            registry=r,
        )
        self.version_stale = Gauge(
            "tuneforge_validator_version_stale",
            "1 while this validator's version_key is below the subnet's weights_version "
            "(weights are not set until it is upgraded)",
            registry=r,
        )
        self.outbox_depth = Gauge(
            "tuneforge_validator_outbox_depth", "Unsent publications by kind", ["kind"], registry=r
        )
        self.published = Counter(
            "tuneforge_validator_publications_delivered",
            "Publications the API acknowledged",
            ["kind"],
            registry=r,
        )
        self.dropped = Counter(
            "tuneforge_validator_publications_dropped",
            "Publications given up on, by reason (conflict, refused, outbox_full, ...)",
            ["kind", "reason"],
            registry=r,
        )
        self.jobs = Counter(
            "tuneforge_validator_jobs", "Customer jobs by outcome", ["outcome"], registry=r
        )
        self._ema_labels: set[tuple[str, str]] = set()

    def watch_outbox(self, depth: Callable[[], Mapping[str, int]]) -> None:
        """Read the outbox depth at scrape time (the state is the truth, not a cached count)."""

        def reader(kind: str) -> Callable[[], float]:
            return lambda: float(depth().get(kind, 0))

        for kind in OUTBOX_KINDS:
            self.outbox_depth.labels(kind=kind).set_function(reader(kind))

    def set_emas(self, emas: Mapping[tuple[int, str], float]) -> None:
        """Publish the current EMAs; series of miners no longer tracked are removed."""
        labels = {(str(uid), hotkey) for uid, hotkey in emas}
        for uid_label, hotkey in self._ema_labels - labels:
            self.ema.remove(uid_label, hotkey)
        for (uid, hotkey), value in emas.items():
            self.ema.labels(uid=str(uid), hotkey=hotkey).set(value)
        self._ema_labels = labels
