"""Authentication dependencies: API keys for customers, hotkey signatures for neurons.

Each one also charges the caller's rate-limit bucket once it knows who the caller is (by key or
hotkey); a failed authentication is charged to the client address instead, so guessing keys or
signatures is rate limited too.
"""

from __future__ import annotations

from typing import cast

import anyio
from fastapi import HTTPException, Request

from tuneforge.api.accounts import KeyIdentity, authenticate_key
from tuneforge.api.context import ApiContext
from tuneforge.api.middleware import RATELIMIT_SCOPE_KEY, client_key
from tuneforge.api.settings import PLAN_RATE_LIMITS
from tuneforge.hotkey_auth import HEADER_HOTKEY, HotkeyAuthError, verify_hotkey_headers
from tuneforge.nonces import MemoryNonceStore


def context(request: Request) -> ApiContext:
    return cast(ApiContext, request.app.state.ctx)


async def charge(request: Request, key: str, limit: int) -> None:
    ctx = context(request)
    if ctx.limiter.blocking:
        result = await anyio.to_thread.run_sync(ctx.limiter.hit, key, limit)
    else:
        result = ctx.limiter.hit(key, limit)
    request.scope[RATELIMIT_SCOPE_KEY]["result"] = result
    if not result.allowed:
        raise HTTPException(429, f"Rate limit exceeded: {limit} requests per minute")


async def _refuse(request: Request, status: int, detail: str) -> HTTPException:
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


async def _neuron(request: Request, write: bool) -> str:
    ctx = context(request)
    body = await request.body()

    def verify() -> str:
        return verify_hotkey_headers(
            request.headers,
            request.method,
            request.scope["path"],
            body,
            ctx.metagraph.lookup,
            ctx.nonces,
            window_s=ctx.settings.nonce_window_s,
            require_permit=write,
        )

    try:
        # sr25519 verification is ~0.1 ms: only a networked nonce store justifies a thread hop.
        if isinstance(ctx.nonces, MemoryNonceStore):
            hotkey = verify()
        else:
            hotkey = await anyio.to_thread.run_sync(verify)
    except HotkeyAuthError as exc:
        raise await _refuse(request, exc.status, exc.detail) from None
    await charge(request, f"hotkey:{hotkey}", ctx.settings.hotkey_rate_limit_per_minute)
    return hotkey


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
