"""Replay protection: remember each (hotkey, nonce) once for as long as it could still be fresh.

Both stores satisfy `bittensor.http_auth.NonceStore` (`check_and_store(hotkey, nonce) -> bool`),
so they plug into btauth/1 verification and into the API's hotkey-signature check alike. Every
worker of one server must share one store: use Redis when a server runs several workers.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Protocol


class NonceStore(Protocol):
    def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        """True (and remembered) the first time a pair is seen, False on a replay."""
        ...


class MemoryNonceStore:
    """In-process store with expiry and a size cap (oldest entries dropped first).

    Dropping an entry early could only re-admit a nonce older than the cap's turnover, and the
    cap is sized far above any legitimate request rate within the freshness window.
    """

    def __init__(self, retention_seconds: float = 600.0, max_entries: int = 1_000_000) -> None:
        self.retention_seconds = retention_seconds
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, int], float] = OrderedDict()
        self._lock = threading.Lock()

    def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        key = (hotkey_ss58, int(nonce_ns))
        now = time.monotonic()
        with self._lock:
            while self._seen:
                oldest_key, expiry = next(iter(self._seen.items()))
                if expiry > now and len(self._seen) < self.max_entries:
                    break
                del self._seen[oldest_key]
            if key in self._seen:
                return False
            self._seen[key] = now + self.retention_seconds
            return True


class RedisNonceStore:
    """Shared store: one atomic `SET key 1 NX EX retention` per check."""

    def __init__(
        self, url: str, namespace: str = "tuneforge:nonce", retention_seconds: float = 600.0
    ) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.namespace = namespace
        self.retention_seconds = max(1, int(retention_seconds))

    def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        key = f"{self.namespace}:{hotkey_ss58}:{int(nonce_ns)}"
        return bool(self._client.set(key, b"1", nx=True, ex=self.retention_seconds))

    def ping(self) -> bool:
        return bool(self._client.ping())


def nonce_store_from_url(
    redis_url: str | None, namespace: str, retention_seconds: float = 600.0
) -> NonceStore:
    """Redis-backed when a URL is configured, in-process otherwise."""
    if redis_url:
        return RedisNonceStore(redis_url, namespace=namespace, retention_seconds=retention_seconds)
    return MemoryNonceStore(retention_seconds=retention_seconds)
