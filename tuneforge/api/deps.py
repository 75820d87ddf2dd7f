"""Authentication dependencies: API keys for customers, hotkey signatures for neurons.

Each one also charges the caller's rate-limit bucket once it knows who the caller is (by key or
hotkey); a failed authentication is charged to the client address instead, so guessing keys or
signatures is rate limited too (the guard refuses an exhausted address before authentication).
Hotkey checks that need only headers (format, freshness, registration, permit) run before any
body byte is read; the signature is checked over the body's hash once it is in (bounded).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

import anyio
from fastapi import HTTPException, Request

from tuneforge.api.accounts import KeyIdentity, authenticate_key
from tuneforge.api.context import ApiContext
from tuneforge.api.middleware import RATELIMIT_SCOPE_KEY, client_key
from tuneforge.api.settings import PLAN_RATE_LIMITS
from tuneforge.auth.hotkey import (
    HEADER_HOTKEY,
    HotkeyAuthError,
    HotkeyClaim,
    body_hash,
    check_hotkey_headers,
    verify_hotkey_signature,
)
from tuneforge.auth.nonces import MemoryNonceStore

T = TypeVar("T")


def context(request: Request) -> ApiContext:
    return cast(ApiContext, request.app.state.ctx)


async def charge(request: Request, key: str, limit: int) -> None:
    ctx = context(request)
    if ctx.limiter.blocking:
        result = await anyio.to_thread.run_sync(ctx.limiter.hit, key, limit)
    else:
        result = ctx.limiter.hit(key, limit)
    holder = request.scope[RATELIMIT_SCOPE_KEY]
    holder["result"] = result
    holder["charged"] = True
    if not result.allowed:
        raise HTTPException(429, f"Rate limit exceeded: {limit} requests per minute")


async def _refuse(request: Request, status: int, detail: str) -> HTTPException:
    if not request.scope[RATELIMIT_SCOPE_KEY].get("charged"):
        await charge(
            request,
            client_key(request.scope),
            context(request).settings.anonymous_rate_limit_per_minute,
        )
    return HTTPException(status, detail)


async def api_key(request: Request) -> KeyIdentity:
    """The calling API key (`Authorization: Bearer tf_…`), or 401."""
    ctx = context(request)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    identity = None
    if scheme.lower() == "bearer" and token.strip():
        identity = await anyio.to_thread.run_sync(authenticate_key, ctx.db, token.strip())
    if identity is None:
        raise await _refuse(request, 401, "Missing or invalid API key")
    await charge(request, f"key:{identity.key_id}", PLAN_RATE_LIMITS.get(identity.plan, 60))
    return identity


async def _off_loop(request: Request, function: Callable[[], T]) -> T:
    # sr25519 verification is ~0.1 ms: only a networked nonce store justifies a thread hop.
    if isinstance(context(request).nonces, MemoryNonceStore):
        return function()
    return await anyio.to_thread.run_sync(function)


async def hotkey_claim(request: Request, write: bool) -> HotkeyClaim:
    """The headers' claim, checked without reading the body (401/403 otherwise)."""
    ctx = context(request)
    try:
        return check_hotkey_headers(
            request.headers,
            ctx.metagraph.lookup,
            window_s=ctx.settings.nonce_window_s,
            require_permit=write,
        )
    except HotkeyAuthError as exc:
        raise await _refuse(request, exc.status, exc.detail) from None


async def signed_by(request: Request, claim: HotkeyClaim, digest: str) -> str:
    """Verify the claim's signature over `digest` and charge the hotkey's bucket."""
    ctx = context(request)

    def verify() -> str:
        return verify_hotkey_signature(
            claim, request.method, request.scope["path"], digest, ctx.nonces
        )

    try:
        hotkey = await _off_loop(request, verify)
    except HotkeyAuthError as exc:
        raise await _refuse(request, exc.status, exc.detail) from None
    await charge(request, f"hotkey:{hotkey}", ctx.settings.hotkey_rate_limit_per_minute)
    return hotkey


async def _neuron(request: Request, write: bool) -> str:
    claim = await hotkey_claim(request, write)
    body = await request.body()  # bounded by the guard's per-route body limit
    return await signed_by(request, claim, body_hash(body))


async def neuron(request: Request) -> str:
    """A registered neuron's hotkey (reads), or 401/403."""
    return await _neuron(request, write=False)


async def validator(request: Request) -> str:
    """A registered hotkey with a validator permit (writes), or 401/403."""
    return await _neuron(request, write=True)


async def key_or_neuron(request: Request) -> KeyIdentity | str:
    """Either credential: an API key when one is sent, else a hotkey signature."""
    if HEADER_HOTKEY.lower() in request.headers and "authorization" not in request.headers:
        return await neuron(request)
    return await api_key(request)
