"""Customer jobs: claim from the API, ask the best miners, score, deliver the best track(s).

A job reaches miners as an ordinary challenge: the synapse is built by the challenge code path
(same id format, a seed always present, per-miner seeds), only its content comes from the
customer. Answers are scored by the same engine as rounds, but jobs do NOT move EMAs and leave
no scoring history: the customer picks the prompt, so a miner's EMA would come to depend on which
customers it happened to serve, and a customer could flood the diversity/copy history with
prompts of their choosing. Delivery (audio, then the result JSON) goes through the outbox; a job
nobody can serve is reported failed at once so the API refunds the customer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any

from loguru import logger
from pydantic import ValidationError

from tuneforge.chain.base import Metagraph, Neuron
from tuneforge.core.errors import TuneForgeError
from tuneforge.core.protocol import MusicGenerationSynapse, request_deadline_s
from tuneforge.core.publication import (
    JOB_AUDIO,
    JOB_CLAIM_PATH,
    JOB_RESULT,
    job_failure,
    job_result,
)
from tuneforge.scoring.base import ClipScore
from tuneforge.validator.api_client import ApiClient, ApiUnavailable
from tuneforge.validator.challenges import challenge_for_job, job_seed, miner_seed
from tuneforge.validator.config import ValidatorSettings
from tuneforge.validator.publisher import job_group
from tuneforge.validator.query import QueryOutcome
from tuneforge.validator.round import RoundRunner
from tuneforge.validator.state import OutboxEntry
from tuneforge.validator.tracks import answer_track

_REQUEST_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


class BadJob(TuneForgeError):
    """A claimed job that cannot be turned into a challenge (reported failed, refunded)."""

    code = "bad_job"


def best_miners(
    metagraph: Metagraph,
    self_hotkey: str,
    emas: Mapping[tuple[int, str], float],
    k: int,
    seed: bytes,
) -> list[Neuron]:
    """The k serving miners with the highest EMA; miners without one fill the remaining slots
    (any serving miner is better than none). Ties break on a hash of the job seed."""

    def order(neuron: Neuron) -> tuple[float, bytes]:
        tiebreak = hashlib.sha256(seed + neuron.hotkey.encode()).digest()
        return -emas.get((neuron.uid, neuron.hotkey), 0.0), tiebreak

    candidates = [n for n in metagraph.serving() if n.hotkey != self_hotkey]
    return sorted(candidates, key=order)[:k]


def job_variants(job: Mapping[str, Any], default: int) -> int:
    """Tracks the customer asked for (`variants`, 1-16 accepted); APIs that do not send it
    get the operator's `jobs_tracks`."""
    value = job.get("variants")
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 16:
        return value
    return default


class JobWorker:
    """Claims and serves jobs; everything it sends back goes through the runner's state outbox."""

    def __init__(
        self,
        settings: ValidatorSettings,
        hotkey: str,
        runner: RoundRunner,
        api: ApiClient,
        on_enqueued: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.hotkey = hotkey
        self.runner = runner
        self.state = runner.state
        self.metrics = runner.metrics
        self.api = api
        self.on_enqueued = on_enqueued

    async def poll_once(self, metagraph: Metagraph) -> int:
        """Claim up to `jobs_max_claim` jobs and serve each; returns how many were handled."""
        settings = self.settings.api
        try:
            answer = await self.api.post_json(JOB_CLAIM_PATH, {"max_jobs": settings.jobs_max_claim})
        except ApiUnavailable as exc:
            logger.debug("job claim: {}", exc)
            return 0
        if answer.status != 200:
            logger.warning("job claim refused: HTTP {} {}", answer.status, answer.detail)
            return 0
        try:
            jobs = answer.json()["jobs"]
            if not isinstance(jobs, list):
                raise TypeError("jobs is not a list")
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("job claim: unreadable answer ({})", exc)
            return 0
        handled = 0
        for job in jobs[: settings.jobs_max_claim]:
            if not isinstance(job, dict) or not _REQUEST_ID.match(str(job.get("request_id"))):
                logger.warning("job claim: skipping a job without a valid request_id")
                continue
            await self.serve(job, metagraph)
            handled += 1
        return handled

    def _challenge(self, request_id: str, job: Mapping[str, Any]) -> tuple[bytes, Any]:
        seed = job_seed(self.hotkey, request_id, self.runner.secret)
        request = job.get("challenge")
        if not isinstance(request, dict):
            raise BadJob("the job carries no request")
        try:
            return seed, challenge_for_job(seed, request)
        except ValidationError as exc:
            raise BadJob(f"invalid request: {exc.errors()[0].get('msg', 'invalid')}") from None

    async def serve(self, job: Mapping[str, Any], metagraph: Metagraph) -> str:
        """Serve one claimed job; returns the outcome label (also counted in metrics)."""
        request_id = str(job["request_id"])
        log = logger.bind(job=request_id)
        try:
            seed, challenge = self._challenge(request_id, job)
        except BadJob as exc:
            return self._fail(request_id, "invalid", str(exc))
        settings = self.settings
        tracks_wanted = job_variants(job, settings.api.jobs_tracks)
        # Each variant comes from a different miner: ask at least as many as are wanted.
        miners = best_miners(
            metagraph,
            self.hotkey,
            self.state.miners.emas(),
            max(settings.api.jobs_top_k, tracks_wanted),
            seed,
        )
        if not miners:
            return self._fail(request_id, "no_miners", "no serving miner could take the job")
        deadline = request_deadline_s(
            challenge.duration_seconds, settings.neuron.timeout, settings.neuron.timeout_per_second
        )
        log.info(
            "job {}: {:.0f}s asked of {} miners (uids {}), deadline {:.1f}s",
            request_id,
            challenge.duration_seconds,
            len(miners),
            [n.uid for n in miners],
            deadline,
        )
        seeds = {n.hotkey: miner_seed(seed, n.hotkey) for n in miners}
        outcomes = await self.runner.client.query_many(miners, challenge, deadline, seeds)
        try:
            # Jobs leave no trace in the scoring history (see the module docstring): `score`
            # drops the round's memory.
            scores, fingerprints = await self.runner.score(challenge, outcomes, "job")
        except Exception as exc:
            log.exception("job {}: scoring failed", request_id)
            return self._fail(request_id, "error", f"scoring failed: {type(exc).__name__}")
        return self._deliver(request_id, challenge, outcomes, scores, fingerprints, tracks_wanted)

    def _deliver(
        self,
        request_id: str,
        challenge: MusicGenerationSynapse,
        outcomes: list[QueryOutcome],
        scores: list[ClipScore],
        fingerprints: list[str | None],
        tracks_wanted: int,
    ) -> str:
        # Ranked by final score; a clip whose penalties zeroed it (typically the copy check,
        # when two miners' answers resemble each other) still beats a refund if its composite
        # is positive: the customer sees its score and penalties with the track.
        usable = [
            (s, o, f)
            for o, s, f in zip(outcomes, scores, fingerprints, strict=True)
            if o.audio is not None and o.wav is not None and s.composite > 0
        ]
        if not usable:
            errors = "; ".join(f"uid {o.uid}: {o.error or 'scored 0'}" for o in outcomes)
            return self._fail(request_id, "no_audio", f"no miner delivered usable audio ({errors})")
        usable.sort(key=lambda pair: (pair[0].final_score, pair[0].composite), reverse=True)
        best = usable[:tracks_wanted]
        group = job_group(request_id)
        entries: list[OutboxEntry] = []
        tracks = []
        for score, outcome, fingerprint in best:
            track = answer_track(outcome, score, fingerprint)
            tracks.append(track)
            audio = {"request_id": request_id, "audio_sha256": track["audio_sha256"]}
            entries.append((JOB_AUDIO, audio, outcome.wav, group))
        result = {"request_id": request_id, "result": job_result(tracks)}
        entries.append((JOB_RESULT, result, None, group))
        self.state.outbox.enqueue_many(entries)
        self.on_enqueued()
        self.metrics.jobs.labels(outcome="served").inc()
        logger.bind(job=request_id).info(
            "job {} ({}) served: best uid {} final {:.3f}; queued for delivery",
            request_id,
            challenge.challenge_id,
            best[0][1].uid,
            best[0][0].final_score,
        )
        return "served"

    def _fail(self, request_id: str, outcome: str, error: str) -> str:
        """Report the job failed (through the outbox) so the API refunds it without waiting."""
        payload = {"request_id": request_id, "result": job_failure(error)}
        self.state.outbox.enqueue_many([(JOB_RESULT, payload, None, job_group(request_id))])
        self.on_enqueued()
        self.metrics.jobs.labels(outcome=outcome).inc()
        logger.bind(job=request_id).warning("job {} failed ({}): {}", request_id, outcome, error)
        return outcome
