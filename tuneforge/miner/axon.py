"""Publish the miner's ip:port on chain, idempotently and patiently.

The chain rate-limits `serve_axon` per hotkey (ServingRateLimit, 50 blocks by default), so a
quick restart — or `register.sh --ip` followed by a start — must not die on it: an address the
chain already holds is not sent again, and while the chain refuses (rate limit, endpoint down)
the miner keeps serving HTTP and retries in the background with exponential backoff.
"""

from __future__ import annotations

import threading

from loguru import logger

from tuneforge.chain.base import ChainError, ChainErrorCode, ChainView
from tuneforge.chain.rules import format_axon

# Refusals that pass with time; any other (not registered, invalid address) needs the operator.
RETRYABLE = frozenset({ChainErrorCode.RATE_LIMITED, ChainErrorCode.UNAVAILABLE})
STOP_WAIT_S = 2.0


def publish_axon(chain: ChainView, hotkey: str, ip: str, port: int) -> bool:
    """Send ServeAxon unless the chain already lists `ip:port` for `hotkey`; True when sent."""
    wanted = format_axon(ip, port)
    neuron = chain.metagraph().by_hotkey(hotkey)
    if neuron is not None and neuron.axon == wanted:
        logger.info("axon {} is already on chain: not re-published", wanted)
        return False
    chain.serve(ip, port)
    return True


class AxonPublisher:
    """Publishes one address; on a retryable refusal retries in a daemon thread with backoff
    (`first_retry_s`, doubling up to `max_retry_s`) until it is on chain or `stop()`."""

    def __init__(
        self,
        chain: ChainView,
        hotkey: str,
        ip: str,
        port: int,
        first_retry_s: float = 12.0,
        max_retry_s: float = 600.0,
    ) -> None:
        self.chain = chain
        self.hotkey = hotkey
        self.ip = ip
        self.port = port
        self.first_retry_s = first_retry_s
        self.max_retry_s = max_retry_s
        self.published = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Publish now; raise ChainError only for refusals that waiting cannot fix."""
        try:
            publish_axon(self.chain, self.hotkey, self.ip, self.port)
        except ChainError as exc:
            if exc.code not in RETRYABLE:
                raise
            logger.warning(
                "publishing {}:{} refused for now ({}); serving anyway and retrying in the "
                "background from {:g} s",
                self.ip,
                self.port,
                exc,
                self.first_retry_s,
            )
            self._thread = threading.Thread(
                target=self._retry, name="tuneforge-axon-publish", daemon=True
            )
            self._thread.start()
            return
        self.published.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT_S)
            self._thread = None

    def _retry(self) -> None:
        delay = self.first_retry_s
        while not self._stop.wait(delay):
            try:
                publish_axon(self.chain, self.hotkey, self.ip, self.port)
            except ChainError as exc:
                if exc.code not in RETRYABLE:
                    logger.error("publishing {}:{} failed for good: {}", self.ip, self.port, exc)
                    return
                delay = min(delay * 2, self.max_retry_s)
                logger.info("publishing still refused ({}); next try in {:g} s", exc, delay)
                continue
            except Exception:  # an SDK bug must not end the retries silently
                logger.exception("publishing {}:{} crashed; retrying", self.ip, self.port)
                delay = min(delay * 2, self.max_retry_s)
                continue
            logger.info("published {}:{} on netuid {}", self.ip, self.port, self.chain.netuid)
            self.published.set()
            return
