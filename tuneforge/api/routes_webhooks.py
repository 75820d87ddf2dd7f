"""Webhook secret and delivery log (API key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from tuneforge.api import deps, webhooks
from tuneforge.api.accounts import KeyIdentity
from tuneforge.api.openapi import API_KEY_SECURITY, errors
from tuneforge.api.schemas import REQUEST_ID_PATTERN

router = APIRouter(prefix="/api/v1")

_KEYED = {"security": API_KEY_SECURITY}


@router.post(
    "/account/webhook-secret",
    status_code=201,
    tags=["webhooks"],
    responses=errors(401),
    openapi_extra=_KEYED,
)
def webhook_secret(
    request: Request, identity: KeyIdentity = Depends(deps.api_key)
) -> dict[str, Any]:
    """Create (or rotate) the secret that signs your callbacks. Shown once: store it."""
    secret = webhooks.rotate_secret(deps.context(request).db, identity.account_id)
    return {
        "webhook_secret": secret,
        "signature": f"{webhooks.HEADER_SIGNATURE}: v1=hex(HMAC-SHA256(secret, "
        f'"{{{webhooks.HEADER_TIMESTAMP}}}.{{raw body}}"))',
    }


@router.get(
    "/music/webhooks/deliveries", tags=["webhooks"], responses=errors(401), openapi_extra=_KEYED
)
def deliveries(
    request: Request,
    request_id: str | None = Query(default=None, pattern=REQUEST_ID_PATTERN),
    limit: int = Query(default=50, ge=1, le=500),
    identity: KeyIdentity = Depends(deps.api_key),
) -> dict[str, Any]:
    """Your callbacks, newest first: status (pending, delivered, failed), attempts, last error."""
    ctx = deps.context(request)
    return {"deliveries": ctx.webhooks.deliveries(identity.account_id, request_id, limit)}
