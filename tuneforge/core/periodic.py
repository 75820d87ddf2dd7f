"""One call repeated every few seconds on a daemon thread until stopped: the metagraph cache's
refresher and the miner's public-IP watch (a foundation: both floors use it)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Periodic:
    """Call `tick` every `interval_s` (first after one interval) until `stop()`.

    A daemon thread, so it never holds the process open; `stop()` waits at most `stop_wait_s`
    for a tick in progress.
    """

    def __init__(
        self, name: str, interval_s: float, tick: Callable[[], object], stop_wait_s: float = 5.0
    ) -> None:
        self.name = name
        self.interval_s = interval_s
        self._tick = tick
        self._stop_wait_s = stop_wait_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start ticking; False (and nothing changes) when it already runs."""
        if self._thread is not None:
            return False
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._tick()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._stop_wait_s)
            self._thread = None
