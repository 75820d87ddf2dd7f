"""The metagraph as the API sees it: a snapshot refreshed in the background, never per request.

Every chain call runs on one dedicated thread, and the chain is opened on that thread when a
factory is given: chain clients (a LocalChain's sqlite connection, a Subtensor websocket) are
not assumed to be usable from several threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from loguru import logger

from tuneforge.chain.base import ChainView, Metagraph, Neuron

ChainSource = ChainView | Callable[[], ChainView]


class MetagraphCache:
    def __init__(self, source: ChainSource, refresh_s: float) -> None:
        self.refresh_s = refresh_s
        self._source = source
        self._chain: ChainView | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chain")
        self._snapshot: Metagraph | None = None
        self._fetched_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _fetch(self) -> Metagraph:
        if self._chain is None:
            source = self._source
            self._chain = source if isinstance(source, ChainView) else source()
        return self._chain.metagraph()

    def refresh(self) -> bool:
        """Fetch a new snapshot; on failure keep serving the previous one."""
        try:
            snapshot = self._executor.submit(self._fetch).result(timeout=60)
        except Exception as exc:  # any chain failure: log it and keep the last good snapshot
            logger.warning("metagraph refresh failed, keeping the previous snapshot: {}", exc)
            return False
        self._snapshot, self._fetched_at = snapshot, time.monotonic()
        return True

    def lookup(self, hotkey: str) -> Neuron | None:
        snapshot = self._snapshot
        return None if snapshot is None else snapshot.by_hotkey(hotkey)

    @property
    def snapshot(self) -> Metagraph | None:
        return self._snapshot

    def age_s(self) -> float | None:
        return None if self._fetched_at is None else time.monotonic() - self._fetched_at

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="metagraph-refresh", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def close(self) -> None:
        self.stop()
        if self._chain is not None:
            self._executor.submit(self._chain.close).result(timeout=10)
        self._executor.shutdown(wait=False)
