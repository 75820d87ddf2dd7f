"""The one metagraph cache every role reads: a snapshot refreshed on demand or in the background.

Request handlers (miner admission, API auth) read the cached snapshot and never touch the chain,
so a slow or unreachable endpoint cannot stall them. Failure semantics are the same everywhere:
`refresh()` raises the chain's error, and the background refresher logs it and keeps serving the
last good snapshot (the chain may be back next time).

Thread rule: a cache given a *factory* owns the chain it opens and makes every chain call on one
dedicated thread (chain clients — a LocalChain's sqlite connection, a Subtensor websocket — are
not assumed to be usable from several threads). A cache given a `ChainView` calls it on the
calling thread: whoever passed the view owns its threading.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from loguru import logger

from tuneforge.chain.base import ChainView, Metagraph, Neuron
from tuneforge.core.periodic import Periodic

ChainSource = ChainView | Callable[[], ChainView]
T = TypeVar("T")

# Bound on one chain call made on the owned thread: a hung websocket must not hang the caller.
CHAIN_CALL_TIMEOUT_S = 60.0
CLOSE_TIMEOUT_S = 10.0


class MetagraphCache:
    def __init__(
        self,
        source: ChainSource,
        refresh_s: float = 60.0,
        on_refresh: Callable[[Metagraph], None] | None = None,
    ) -> None:
        self.refresh_s = refresh_s
        self._on_refresh = on_refresh
        self._owned = not isinstance(source, ChainView)
        self._factory = source if not isinstance(source, ChainView) else None
        self._chain: ChainView | None = source if isinstance(source, ChainView) else None
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="chain") if self._owned else None
        )
        self._lock = threading.Lock()
        self._snapshot: Metagraph | None = None
        self._refreshed_at: float | None = None  # time.monotonic() of the last good refresh
        self._refresher = Periodic("tuneforge-metagraph", refresh_s, self.try_refresh)

    # -- chain calls ------------------------------------------------------------------------

    def _call(self, fn: Callable[[ChainView], T]) -> T:
        if self._executor is None:
            assert self._chain is not None
            return fn(self._chain)
        return self._executor.submit(self._on_owned_thread, fn).result(CHAIN_CALL_TIMEOUT_S)

    def _on_owned_thread(self, fn: Callable[[ChainView], T]) -> T:
        if self._chain is None:
            assert self._factory is not None
            self._chain = self._factory()  # opened on the thread that will use it
        return fn(self._chain)

    # -- reads ------------------------------------------------------------------------------

    def refresh(self) -> Metagraph:
        """Fetch a fresh snapshot now (raises the chain's error on failure)."""
        snapshot = self._call(lambda chain: chain.metagraph())
        with self._lock:
            self._snapshot = snapshot
            self._refreshed_at = time.monotonic()
        logger.debug(
            "metagraph refreshed at block {}: {} neurons", snapshot.block, len(snapshot.neurons)
        )
        if self._on_refresh is not None:
            self._on_refresh(snapshot)
        return snapshot

    def try_refresh(self) -> bool:
        """Refresh, or log the failure and keep the last good snapshot; whether it worked."""
        try:
            self.refresh()
        except Exception as exc:  # any SDK/transport failure: the last snapshot stays valid
            logger.warning("metagraph refresh failed, keeping the cached one: {}", exc)
            return False
        return True

    def get(self, max_age_blocks: int | None = None) -> Metagraph:
        """The cached snapshot, loaded if there is none yet and, with `max_age_blocks`, reloaded
        once the chain is that many blocks past it (raises the chain's error on failure)."""
        snapshot = self.snapshot
        if snapshot is None:
            return self.refresh()
        if max_age_blocks is not None:
            block = self._call(lambda chain: chain.block)
            if block - snapshot.block >= max_age_blocks:
                return self.refresh()
        return snapshot

    @property
    def snapshot(self) -> Metagraph | None:
        """The last good snapshot, None before the first one; never calls the chain."""
        with self._lock:
            return self._snapshot

    def lookup(self, hotkey: str) -> Neuron | None:
        """The hotkey's neuron on the cached snapshot (None when unknown or nothing loaded)."""
        snapshot = self.snapshot
        return None if snapshot is None else snapshot.by_hotkey(hotkey)

    def age_s(self) -> float | None:
        """Seconds since the last successful refresh; None before the first one."""
        with self._lock:
            refreshed_at = self._refreshed_at
        return None if refreshed_at is None else time.monotonic() - refreshed_at

    # -- background refresher ---------------------------------------------------------------

    def start(self) -> None:
        """Refresh every `refresh_s` in a daemon thread until `stop()`."""
        self._refresher.start()

    def stop(self) -> None:
        self._refresher.stop()

    def close(self) -> None:
        """Stop refreshing; a chain the cache opened itself is closed on its own thread."""
        self.stop()
        if self._executor is None:
            return
        if self._chain is not None:
            self._executor.submit(self._chain.close).result(timeout=CLOSE_TIMEOUT_S)
        self._executor.shutdown(wait=False)
