"""The miner's view of the metagraph: loaded once, refreshed by a background thread.

Admission reads the cached snapshot on every request and never touches the chain itself, so a
slow or unreachable chain endpoint cannot stall request handling (or be amplified by callers).
"""

from __future__ import annotations

import threading
import time

from loguru import logger

from tuneforge.chain.base import ChainError, ChainView, Metagraph


class MetagraphCache:
    def __init__(self, chain: ChainView, refresh_s: float = 60.0) -> None:
        self.chain = chain
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._snapshot: Metagraph | None = None
        self._refreshed_at: float | None = None  # time.monotonic() of the last good refresh
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> Metagraph:
        """Fetch a fresh snapshot now (raises the chain's error on failure)."""
        snapshot = self.chain.metagraph()
        with self._lock:
            self._snapshot = snapshot
            self._refreshed_at = time.monotonic()
        logger.debug(
            "metagraph refreshed at block {}: {} neurons", snapshot.block, len(snapshot.neurons)
        )
        return snapshot

    def age_s(self) -> float | None:
        """Seconds since the last successful refresh; None before the first one."""
        with self._lock:
            refreshed_at = self._refreshed_at
        return None if refreshed_at is None else time.monotonic() - refreshed_at

    def get(self) -> Metagraph:
        """The latest snapshot (loading it once if nothing is cached yet)."""
        with self._lock:
            snapshot = self._snapshot
        return snapshot if snapshot is not None else self.refresh()

    def start(self) -> None:
        """Load now, then refresh every `refresh_s` in a daemon thread until `stop()`."""
        if self._thread is not None:
            return
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="tuneforge-metagraph", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self.refresh()
            except ChainError as exc:
                logger.warning("metagraph refresh refused, keeping the cached one: {}", exc)
            except Exception as exc:  # any SDK/transport failure must not kill the refresher
                # Keep serving with the last good snapshot; the chain may be back next time.
                logger.warning("metagraph refresh failed, keeping the cached one: {}", exc)
