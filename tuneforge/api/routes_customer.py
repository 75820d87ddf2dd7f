"""Customer endpoints (API key): generate, status, audio download, account."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import ValidationError
from sqlalchemy import func, select

from tuneforge.api import deps, webhooks
from tuneforge.api.accounts import KeyIdentity
from tuneforge.api.formats import (
    FILE_PATTERN,
    MEDIA_TYPES,
    audio_file,
    split_file_name,
)
from tuneforge.api.models import JOB_COMPLETED, Account, GenerationRequest, Track, utcnow
from tuneforge.api.openapi import API_KEY_SECURITY, HOTKEY_SECURITY, errors
from tuneforge.api.schemas import REQUEST_ID_PATTERN, GenerateRequest
from tuneforge.api.settings import PLAN_RATE_LIMITS
from tuneforge.api.stored import iso
from tuneforge.api.validation_text import describe_all

router = APIRouter(prefix="/api/v1")


_KEYED = {"security": API_KEY_SECURITY}


IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")


@router.post(
    "/music/generate",
    status_code=201,
    tags=["music"],
    responses=errors(400, 401, 402, 409),
    openapi_extra=_KEYED,
)
def generate(
    body: GenerateRequest,
    request: Request,
    response: Response,
    identity: KeyIdentity = Depends(deps.api_key),
    idempotency_key: str | None = Header(
        default=None,
        max_length=255,
        description="retry-safe: the same key and body within 24 h return the same request "
        "and charge once; the same key with another body is 409",
    ),
) -> dict[str, Any]:
    """Queue a job of `variants` tracks; credits (ceil(duration / 3) per track) are taken now
    and refunded for what is not delivered."""
    ctx = deps.context(request)
    if idempotency_key is not None and not IDEMPOTENCY_KEY_PATTERN.match(idempotency_key):
        raise HTTPException(400, "Idempotency-Key must be 1-255 printable ASCII characters")
    if body.callback_url is not None:
        # The secret first: it is a cheap lookup, the URL check resolves a host name.
        if not webhooks.has_secret(ctx.db, identity.account_id):
            raise HTTPException(
                400,
                "callback_url needs a webhook secret first: POST /api/v1/account/webhook-secret",
            )
        webhooks.check_callback(body.callback_url, ctx.settings.webhook_allow_private)
    try:
        accepted = ctx.jobs.accept(identity, body, idempotency_key)
    except ValidationError as exc:
        raise HTTPException(400, describe_all(exc.errors())) from None
    if accepted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return {
        "request_id": accepted.request_id,
        "status": accepted.status,
        "credits_charged": accepted.credits_charged,
        "credits_remaining": accepted.credits_remaining,
    }


@router.get(
    "/music/status/{request_id}", tags=["music"], responses=errors(401, 404), openapi_extra=_KEYED
)
def status(
    request: Request,
    request_id: str = Path(pattern=REQUEST_ID_PATTERN),
    identity: KeyIdentity = Depends(deps.api_key),
) -> dict[str, Any]:
    return deps.context(request).jobs.status(identity.account_id, request_id)


@router.get(
    "/music/audio/{track_file}",
    tags=["music"],
    response_class=Response,
    responses={
        200: {
            "description": "The audio (Range requests answered with 206)",
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in MEDIA_TYPES.values()
            },
        },
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
    }
    | errors(401, 403, 404, 415),
    openapi_extra={"security": API_KEY_SECURITY + HOTKEY_SECURITY},
)
def audio(
    request: Request,
    track_file: str = Path(pattern=FILE_PATTERN, description="`{track_id}.wav`, `.flac` or `.mp3`"),
    format: Literal["wav", "flac", "mp3"] | None = Query(
        default=None, description="overrides the extension"
    ),
    caller: KeyIdentity | str = Depends(deps.key_or_neuron),
) -> Response:
    """The owner's own tracks (API key), or challenge and voted tracks (signed neurons);
    other formats are converted on first request and cached."""
    ctx = deps.context(request)
    track_id, extension = split_file_name(track_file)
    fmt = format or extension
    if isinstance(caller, KeyIdentity):
        digest = ctx.jobs.owned_track_audio(caller.account_id, track_id)
    else:
        digest = ctx.scores.challenge_audio(track_id) or ctx.votes.voted_track_audio(track_id)
    if digest is None:
        raise HTTPException(404, "Track not found")
    etag = f'"{digest}.{fmt}"'
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers={"ETag": etag})
    path = audio_file(ctx.store, digest, fmt)  # AudioStoreError 404, FormatUnavailable 415
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[fmt],
        headers={"ETag": etag, "Cache-Control": "private, max-age=86400"},
    )


@router.get("/account/me", tags=["account"], responses=errors(401), openapi_extra=_KEYED)
def account_me(request: Request, identity: KeyIdentity = Depends(deps.api_key)) -> dict[str, Any]:
    """The account, its plan limit and this month's usage (computed from its jobs)."""
    ctx = deps.context(request)
    month_start = utcnow().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    with ctx.db.read() as session:
        account = session.get(Account, identity.account_id)
        if account is None:
            raise HTTPException(404, "Account not found")
        requests_this_month = session.scalar(
            select(func.count()).where(
                GenerationRequest.account_id == account.id,
                GenerationRequest.created_at >= month_start,
            )
        )
        tracks, seconds = session.execute(
            select(func.count(Track.id), func.coalesce(func.sum(Track.duration_seconds), 0.0))
            .join(GenerationRequest, GenerationRequest.id == Track.request_id)
            .where(
                GenerationRequest.account_id == account.id,
                GenerationRequest.status == JOB_COMPLETED,
            )
        ).one()
    created: datetime = account.created_at
    return {
        "account_id": account.id,
        "email": account.email,
        "plan": account.plan,
        "credits": account.credits,
        "rate_limit_per_minute": PLAN_RATE_LIMITS.get(account.plan, 60),
        "created_at": iso(created),
        "usage": {
            "requests_this_month": int(requests_this_month or 0),
            "tracks_generated": int(tracks or 0),
            "seconds_generated": float(seconds or 0.0),
        },
    }
