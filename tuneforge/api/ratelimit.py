"""Sliding one-minute rate limits: in-process, or in Redis so all workers share one count.

A sliding log (one entry per admitted request inside the last 60 s) gives the exact sliding
window API.md promises; refused requests are not logged, so a client hammering at the limit is
admitted again as soon as its oldest admitted request leaves the window.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Protocol

WINDOW_S = 60.0


@dataclass(frozen=True)
class RateLimitResult:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # unix seconds when the oldest counted request leaves the window
    retry_after: int  # seconds; 0 when allowed

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


def _result(
    allowed: bool, limit: int, count: int, oldest: float | None, now: float
) -> RateLimitResult:
    reset_at = (oldest if oldest is not None else now) + WINDOW_S
    return RateLimitResult(
        allowed=allowed,
        limit=limit,
        remaining=max(0, limit - count),
        reset=math.ceil(reset_at),
        retry_after=0 if allowed else max(1, math.ceil(reset_at - now)),
    )


class RateLimiter(Protocol):
    blocking: bool  # True when a call does network I/O (run it off the event loop)

    def hit(self, key: str, limit: int) -> RateLimitResult:
        """Count one request for `key` if it is under `limit`; say whether it was admitted."""
        ...

    def peek(self, key: str, limit: int) -> RateLimitResult:
        """The current state for `key` without counting a request."""
        ...


class MemoryRateLimiter:
    blocking = False  # microseconds under a lock: call it on the event loop

    def __init__(self, max_keys: int = 100_000) -> None:
        self._log: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self.max_keys = max_keys

    def _window(self, key: str, now: float) -> deque[float]:
        log = self._log.get(key)
        if log is None:
            if len(self._log) >= self.max_keys:
                # Forget idle keys first; they hold no requests inside the window anyway.
                for stale in [k for k, v in self._log.items() if not v or v[-1] <= now - WINDOW_S]:
                    del self._log[stale]
            log = self._log.setdefault(key, deque())
        while log and log[0] <= now - WINDOW_S:
            log.popleft()
        return log

    def hit(self, key: str, limit: int) -> RateLimitResult:
        now = time.time()
        with self._lock:
            log = self._window(key, now)
            allowed = len(log) < limit
            if allowed:
                log.append(now)
            return _result(allowed, limit, len(log), log[0] if log else None, now)

    def peek(self, key: str, limit: int) -> RateLimitResult:
        now = time.time()
        with self._lock:
            log = self._window(key, now)
            return _result(True, limit, len(log), log[0] if log else None, now)


# KEYS[1] = sorted set; ARGV = now_ms, window_ms, limit, member, count(1|0).
# Returns {admitted, count, oldest_ms}. One script = one atomic step across all workers.
_SLIDING_LOG_LUA = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local admitted = 0
if ARGV[5] == '1' and count < limit then
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, window)
  count = count + 1
  admitted = 1
elseif ARGV[5] == '0' then
  admitted = 1
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
local oldest_ms = -1
if oldest[2] then oldest_ms = tonumber(oldest[2]) end
return {admitted, count, oldest_ms}
"""


class RedisRateLimiter:
    blocking = True  # a network round trip: call it from a worker thread

    def __init__(self, url: str, namespace: str = "tuneforge:ratelimit") -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._script = self._client.register_script(_SLIDING_LOG_LUA)
        self.namespace = namespace

    def _run(self, key: str, limit: int, count: bool) -> RateLimitResult:
        now = time.time()
        now_ms = int(now * 1000)
        admitted, total, oldest_ms = self._script(
            keys=[f"{self.namespace}:{key}"],
            args=[now_ms, int(WINDOW_S * 1000), limit, uuid.uuid4().hex, "1" if count else "0"],
        )
        oldest = None if int(oldest_ms) < 0 else int(oldest_ms) / 1000
        return _result(bool(admitted), limit, int(total), oldest, now)

    def hit(self, key: str, limit: int) -> RateLimitResult:
        return self._run(key, limit, True)

    def peek(self, key: str, limit: int) -> RateLimitResult:
        return self._run(key, limit, False)


def rate_limiter_from_url(
    redis_url: str | None, namespace: str = "tuneforge:ratelimit"
) -> RateLimiter:
    if redis_url:
        return RedisRateLimiter(redis_url, namespace=namespace)
    return MemoryRateLimiter()
