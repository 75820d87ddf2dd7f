"""Deliver the outbox to the API: a background task, exponential backoff with jitter, bounded.

Every publication is written to the outbox (in the state DB, in the transaction that produced
it) before anything is sent, so a crash or an API outage loses nothing; retries are safe because
the API is idempotent on round ids, track ids and audio hashes. Items of one group (a round and
its audio uploads; a job's audio and its result) go strictly in order: a round's audio is only
sent once its `POST /scores` was acknowledged.

Answers: 200/201 delivered; 409 on a round is a permanent conflict; any other 4xx except 408/429
is a permanent refusal (dropped with the reason, counted); 5xx, 408, 429, timeouts and
connection errors are retried later.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable

from loguru import logger

from tuneforge.core.publication import (
    JOB_AUDIO,
    JOB_AUDIO_PATH,
    JOB_RESULT,
    JOB_RESULT_PATH,
    ROUND_RESULT,
    SCORES_PATH,
    TRACK_AUDIO,
    TRACK_AUDIO_PATH,
)
from tuneforge.validator.api_client import ApiAnswer, ApiClient, ApiUnavailable
from tuneforge.validator.config import ApiPublishSettings
from tuneforge.validator.metrics import ValidatorMetrics
from tuneforge.validator.state import OutboxItem, ValidatorState

DELIVERED = "delivered"
RETRY = "retry"
BATCH = 32
IDLE_POLL_S = 5.0


def backoff_delay(
    attempts: int, base_s: float, max_s: float, rand: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with jitter: uniform in [d/2, d], d = min(max, base * 2^attempts).

    Half-jitter keeps a floor (no hammering right after a failure) while spreading validators
    that all lost the API at the same moment.
    """
    delay = min(max_s, base_s * 2.0 ** min(attempts, 30))
    return delay * (0.5 + 0.5 * rand())


def round_group(round_id: str) -> str:
    return f"round:{round_id}"


def job_group(request_id: str) -> str:
    return f"job:{request_id}"


# The defaults are the settings class's: one source for an operator's and a test's publisher.
_DEFAULTS = ApiPublishSettings()


class Publisher:
    """Drains the outbox of one state through one ApiClient."""

    @classmethod
    def from_settings(
        cls,
        state: ValidatorState,
        api: ApiClient,
        metrics: ValidatorMetrics,
        settings: ApiPublishSettings,
    ) -> Publisher:
        return cls(
            state,
            api,
            metrics,
            settings.retry_base_s,
            settings.retry_max_s,
            settings.outbox_max_bytes,
            settings.outbox_max_items,
        )

    def __init__(
        self,
        state: ValidatorState,
        api: ApiClient,
        metrics: ValidatorMetrics,
        retry_base_s: float = _DEFAULTS.retry_base_s,
        retry_max_s: float = _DEFAULTS.retry_max_s,
        max_bytes: int = _DEFAULTS.outbox_max_bytes,
        max_items: int = _DEFAULTS.outbox_max_items,
    ) -> None:
        self.state = state
        self.api = api
        self.metrics = metrics
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.max_bytes = max_bytes
        self.max_items = max_items
        self.wake = asyncio.Event()
        # One sender at a time: two concurrent passes (the background task and a flush) would
        # send the same item twice, and the API answers such a race with 409.
        self._sending = asyncio.Lock()
        self._failures = 0  # consecutive passes that found the API unreachable

    # -- one item ----------------------------------------------------------------------------

    async def _send(self, item: OutboxItem) -> ApiAnswer:
        payload = item.payload
        if item.kind == ROUND_RESULT:
            return await self.api.post_json(SCORES_PATH, payload)
        if item.kind == TRACK_AUDIO:
            path = TRACK_AUDIO_PATH.format(track_id=payload["track_id"])
            return await self.api.request("PUT", path, item.blob or b"", "audio/wav")
        if item.kind == JOB_AUDIO:
            path = JOB_AUDIO_PATH.format(sha256=payload["audio_sha256"])
            return await self.api.request("PUT", path, item.blob or b"", "audio/wav")
        if item.kind == JOB_RESULT:
            path = JOB_RESULT_PATH.format(request_id=payload["request_id"])
            return await self.api.post_json(path, payload["result"])
        raise ValueError(f"unknown outbox kind {item.kind!r}")

    async def deliver(self, item: OutboxItem) -> str:
        """Send one item and settle it in the outbox: "delivered", "retry" or a drop reason."""
        log = logger.bind(outbox=item.id, kind=item.kind)
        try:
            answer = await self._send(item)
        except ApiUnavailable as exc:
            self._retry(item, f"API unavailable: {exc}")
            return RETRY
        except (KeyError, ValueError) as exc:
            # A malformed row (hand-edited file, older format): it can never be sent.
            return self._drop(item, "malformed", str(exc))
        status = answer.status
        if status in (200, 201):
            self.state.outbox.ack(item.id)
            self.metrics.published.labels(kind=item.kind).inc()
            log.debug("delivered {} {} ({})", item.kind, item.id, status)
            return DELIVERED
        if status >= 500 or status in (408, 429):
            self._retry(item, f"HTTP {status}: {answer.detail}")
            return RETRY
        reason = "conflict" if status == 409 else "refused"
        return self._drop(item, reason, f"HTTP {status}: {answer.detail}")

    def _retry(self, item: OutboxItem, why: str) -> None:
        delay = backoff_delay(item.attempts, self.retry_base_s, self.retry_max_s)
        self.state.outbox.retry_later(item.id, delay)
        logger.bind(outbox=item.id, kind=item.kind).info(
            "publication {} not delivered ({}); retry in {:.1f}s", item.id, why, delay
        )

    def _drop(self, item: OutboxItem, reason: str, why: str) -> str:
        """Give up on an item for good; a refused group head takes its whole group with it
        (a round's audio cannot be attached to a round the API refused)."""
        if item.group is not None and item.kind in (ROUND_RESULT, JOB_AUDIO):
            removed = self.state.outbox.drop_group(item.group)
        else:
            self.state.outbox.ack(item.id)
            removed = 1
        self.metrics.dropped.labels(kind=item.kind, reason=reason).inc()
        if removed > 1:
            self.metrics.dropped.labels(kind="dependent", reason=reason).inc(removed - 1)
        logger.warning(
            "publication {} ({}) dropped, {}: {}{}",
            item.id,
            item.kind,
            reason,
            why,
            f" (with {removed - 1} dependent items)" if removed > 1 else "",
        )
        return reason

    # -- the outbox --------------------------------------------------------------------------

    def trim(self) -> dict[str, int]:
        """Enforce the outbox bounds, oldest audio uploads first; logs and counts the drops."""
        dropped = self.state.outbox.trim(self.max_bytes, self.max_items, TRACK_AUDIO)
        for kind, count in dropped.items():
            self.metrics.dropped.labels(kind=kind, reason="outbox_full").inc(count)
        if dropped:
            logger.warning(
                "outbox over its bounds ({} items / {} bytes): dropped the oldest {}",
                self.max_items,
                self.max_bytes,
                ", ".join(f"{n} {kind}" for kind, n in sorted(dropped.items())),
            )
        return dropped

    async def drain_once(self) -> int:
        """One pass over the due items; returns how many were delivered. Stops at the first
        unreachable-API answer: the rest would fail the same way."""
        async with self._sending:
            self.trim()
            delivered = 0
            for item in self.state.outbox.peek_sendable(limit=BATCH):
                outcome = await self.deliver(item)
                if outcome == RETRY:
                    self._failures += 1
                    return delivered
                delivered += outcome == DELIVERED
            self._failures = 0
            return delivered

    def _pause_s(self) -> float:
        if self._failures:
            return backoff_delay(self._failures - 1, self.retry_base_s, self.retry_max_s)
        due = self.state.outbox.next_due_at()
        if due is None:
            return IDLE_POLL_S
        return min(IDLE_POLL_S, max(0.0, due - time.time()))

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: drain, then sleep until something is due, new items arrive (`wake`),
        or the backoff after an outage has passed."""
        logger.info("publishing to {} ({} queued)", self.api.base_url, self.state.outbox.size())
        while not stop.is_set():
            self.wake.clear()
            try:
                delivered = await self.drain_once()
            except Exception:
                # A bug here must not stop rounds; the items stay queued for the next pass.
                logger.exception("publisher pass failed")
                self._failures += 1
                delivered = 0
            if delivered and not self._failures:
                continue  # more may be due right away
            waiters = {asyncio.ensure_future(stop.wait())}
            if not self._failures:  # during an outage only the backoff decides the next try
                waiters.add(asyncio.ensure_future(self.wake.wait()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait(waiters, timeout=self._pause_s(), return_when="FIRST_COMPLETED")
            for waiter in waiters:
                waiter.cancel()

    async def flush(self, timeout_s: float) -> bool:
        """Drain until the outbox is empty (True) or `timeout_s` passed (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self.state.outbox.size():
            if time.monotonic() > deadline:
                return False
            if not await self.drain_once():
                await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        return True
