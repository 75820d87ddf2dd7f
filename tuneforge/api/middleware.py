"""One ASGI guard around the whole app: header and body size caps, per-address rate limits,
rate-limit headers, opaque 500s.

Pure ASGI (not BaseHTTPMiddleware) so it can count streamed body bytes and add headers to every
response, errors included, without buffering responses.

Rate-limit accounting starts here, before any authentication (D13): a request to a public route,
or one without credentials, is counted against its client address up front, whatever headers it
carries; a request with credentials to an authenticated route is refused up front when its
address is exhausted, and then charged to its key or hotkey (or to the address when it fails to
authenticate). A request nobody charged (an unknown route, a malformed body) is charged to the
address on the way out.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
from loguru import logger
from starlette.exceptions import HTTPException

from tuneforge.api.ratelimit import RateLimiter, RateLimitResult
from tuneforge.core.http_limits import MAX_HEADER_BYTES

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

RATELIMIT_SCOPE_KEY = "tuneforge.ratelimit"
# Never counted (monitoring and docs); they still report the caller's anonymous bucket.
# /metrics is guarded by its own client allow-list instead (settings.metrics_allow).
EXEMPT_PATHS = frozenset(
    {"/health", "/api/v1/health", "/docs", "/openapi.json", "/redoc", "/metrics"}
)
# Every route under this prefix authenticates its caller (health is exempt above).
AUTHENTICATED_PREFIX = "/api/v1/"


class BodyTooLarge(HTTPException):
    """An HTTPException, so FastAPI's body parsing passes it through as a 413, not a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"Request body larger than {limit} bytes")


def client_key(scope: Scope) -> str:
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


def has_credentials(scope: Scope) -> bool:
    names = {name for name, _ in scope.get("headers", [])}
    return b"authorization" in names or b"x-validator-hotkey" in names


def header_bytes(scope: Scope) -> int:
    """Bytes of the request line and headers as they came (near enough: separators counted)."""
    line = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + 16
    return line + sum(len(name) + len(value) + 4 for name, value in scope.get("headers", []))


class GuardMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        anonymous_limit: int,
        body_limit: Callable[[str, str], int],
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.anonymous_limit = anonymous_limit
        self.body_limit = body_limit

    async def _call(self, function: Callable[..., RateLimitResult], *args: Any) -> RateLimitResult:
        if self.limiter.blocking:
            return await anyio.to_thread.run_sync(function, *args)
        return function(*args)

    async def _json(self, send: Send, status: int, detail: str, headers: dict[str, str]) -> None:
        body = json.dumps({"detail": detail}).encode()
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    async def _admit(self, scope: Scope, holder: dict[str, Any], send: Send) -> bool:
        """The address's rate limit before anything else; False once it has answered 429."""
        path = scope["path"]
        if has_credentials(scope) and path.startswith(AUTHENTICATED_PREFIX):
            # Charged once authenticated (to the key or hotkey, or to the address on a
            # failure); an address exhausted by failures is refused before trying again.
            result = await self._call(self.limiter.peek, client_key(scope), self.anonymous_limit)
            if result.remaining <= 0:
                result = await self._call(self.limiter.hit, client_key(scope), self.anonymous_limit)
        else:
            result = await self._call(self.limiter.hit, client_key(scope), self.anonymous_limit)
            holder["charged"] = True
        holder["result"] = result
        if not result.allowed:
            await self._json(send, 429, "Rate limit exceeded", result.headers())
            return False
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        holder: dict[str, Any] = {"result": None, "charged": False}
        scope[RATELIMIT_SCOPE_KEY] = holder
        path, method = scope["path"], scope["method"]
        exempt = path in EXEMPT_PATHS

        async def current_limits() -> dict[str, str]:
            if holder["result"] is None:
                holder["result"] = await self._call(
                    self.limiter.peek, client_key(scope), self.anonymous_limit
                )
            return holder["result"].headers()

        if header_bytes(scope) > MAX_HEADER_BYTES:
            await self._json(send, 431, "Request header fields too large", {})
            return

        if not exempt and not await self._admit(scope, holder, send):
            return

        async def charge_address_unless_charged() -> None:
            # Whatever ended the request before authentication (413, a malformed body, an
            # unknown route, a public page with credential-shaped headers) counts per address.
            if not exempt and not holder["charged"]:
                holder["charged"] = True
                await self._call(self.limiter.hit, client_key(scope), self.anonymous_limit)

        limit = self.body_limit(method, path)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await charge_address_unless_charged()
            await self._json(
                send, 413, f"Request body larger than {limit} bytes", await current_limits()
            )
            return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in (await current_limits()).items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
            await charge_address_unless_charged()
        except BodyTooLarge:
            await charge_address_unless_charged()
            if not started:
                await self._json(
                    send, 413, f"Request body larger than {limit} bytes", await current_limits()
                )
        except Exception:
            logger.exception("unhandled error on {} {}", method, path)
            if not started:
                await self._json(send, 500, "Internal server error", await current_limits())
