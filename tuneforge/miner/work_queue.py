"""A bounded priority queue of generation jobs served by a fixed pool of worker threads.

Worker `i` owns device `i` (its own model replica, see miner/run.py): a job learns which one it
runs on from `worker_index()`, so two devices generate two requests at the same time.

Jobs are ordered by the caller's stake (highest first, then arrival). When every slot is taken a
new job from a caller with strictly more stake than the lowest waiting job evicts that job (its
caller gets 503 and may retry); otherwise the new job is refused with `QueueFull`. The event loop
never runs a job: it awaits the returned future.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from tuneforge.core.errors import TuneForgeError

_worker = threading.local()


def worker_index() -> int:
    """The index of the worker thread running the current job (0 outside a worker)."""
    return int(getattr(_worker, "index", 0))


class QueueFull(TuneForgeError):
    """No slot for this job (or it was evicted by a higher-stake caller); answer 503."""

    status = 503
    code = "queue_full"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueClosed(TuneForgeError):
    """The queue is shutting down and accepts no more jobs."""

    status = 503
    code = "queue_closed"


def _fail(future: Future[Any], exc: Exception) -> None:
    # The caller may have cancelled (hung up) in the meantime; then nobody is waiting.
    with contextlib.suppress(InvalidStateError):
        future.set_exception(exc)


@dataclass(order=True)
class _Job:
    sort_key: tuple[float, int]
    fn: Callable[[], Any] = field(compare=False)
    future: Future[Any] = field(compare=False)
    priority: float = field(compare=False)


class WorkQueue:
    """`capacity` waiting jobs plus one running job per worker.

    A job counts against capacity from submission until it finishes, so whether the fifth of five
    simultaneous requests fits does not depend on how fast a worker picked up the first.
    """

    def __init__(self, capacity: int, workers: int = 1, retry_after_s: int = 5) -> None:
        if capacity < 0 or workers < 1:
            raise ValueError("capacity must be >= 0 and workers >= 1")
        self.capacity = capacity
        self.workers = workers
        self.retry_after_s = retry_after_s
        self._heap: list[_Job] = []
        self._running = 0
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._threads:
                return
            self._closed = False
            for index in range(self.workers):
                thread = threading.Thread(
                    target=self._work, args=(index,), name=f"tuneforge-gen-{index}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Refuse new jobs, fail waiting ones, and wait briefly for running ones."""
        with self._cond:
            self._closed = True
            waiting, self._heap = self._heap, []
            self._cond.notify_all()
        for job in waiting:
            _fail(job.future, QueueClosed("miner is shutting down"))
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads = []

    # -- state -----------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Jobs waiting plus jobs running."""
        with self._cond:
            return len(self._heap) + self._running

    @property
    def running(self) -> int:
        """Jobs a worker is running now."""
        with self._cond:
            return self._running

    @property
    def slots(self) -> int:
        return self.capacity + self.workers

    # -- submission ------------------------------------------------------------------------
    def submit(self, priority: float, fn: Callable[[], Any]) -> Future[Any]:
        """Queue `fn` at `priority` (caller stake); raises QueueFull or QueueClosed."""
        future: Future[Any] = Future()
        job = _Job(sort_key=(-priority, next(self._seq)), fn=fn, future=future, priority=priority)
        evicted: _Job | None = None
        with self._cond:
            if self._closed:
                raise QueueClosed("miner is shutting down")
            if len(self._heap) + self._running >= self.slots:
                lowest = max(self._heap, default=None)  # max sort key = lowest priority, newest
                if lowest is None or lowest.priority >= priority:
                    raise QueueFull(
                        f"generation queue is full ({self.slots} jobs)", self.retry_after_s
                    )
                self._heap.remove(lowest)
                heapq.heapify(self._heap)
                evicted = lowest
            heapq.heappush(self._heap, job)
            self._cond.notify()
        future.add_done_callback(lambda done: self._forget_if_cancelled(job, done))
        if evicted is not None:
            logger.info(
                "queue full: job of stake {:.1f} evicted by stake {:.1f}",
                evicted.priority,
                priority,
            )
            _fail(
                evicted.future,
                QueueFull("evicted from the queue by a higher-stake caller", self.retry_after_s),
            )
        return future

    def _forget_if_cancelled(self, job: _Job, future: Future[Any]) -> None:
        """A job cancelled while waiting (its caller hung up) frees its slot at once."""
        if not future.cancelled():
            return
        with self._cond:
            if job in self._heap:
                self._heap.remove(job)
                heapq.heapify(self._heap)

    # -- workers ---------------------------------------------------------------------------
    def _work(self, index: int) -> None:
        _worker.index = index
        while True:
            with self._cond:
                while not self._heap and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = heapq.heappop(self._heap)
                self._running += 1
            try:
                # A caller that went away cancelled its future: skip the work entirely.
                if job.future.set_running_or_notify_cancel():
                    try:
                        result = job.fn()
                    except Exception as exc:  # handed to the awaiting caller, the worker lives on
                        job.future.set_exception(exc)
                    else:
                        job.future.set_result(result)
            finally:
                with self._cond:
                    self._running -= 1
