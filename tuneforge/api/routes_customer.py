"""Customer endpoints (API key): generate, status, audio download, account."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from pydantic import ValidationError
from sqlalchemy import func, select

from tuneforge.api import deps
from tuneforge.api.accounts import KeyIdentity
from tuneforge.api.jobs import InsufficientCredits, JobNotFound, iso
from tuneforge.api.models import JOB_COMPLETED, Account, GenerationRequest, Track, utcnow
from tuneforge.api.openapi import API_KEY_SECURITY, HOTKEY_SECURITY, errors
from tuneforge.api.schemas import REQUEST_ID_PATTERN, TRACK_ID_PATTERN, GenerateRequest
from tuneforge.api.settings import PLAN_RATE_LIMITS
from tuneforge.api.storage import AudioStoreError
from tuneforge.api.validation_text import describe_all

router = APIRouter(prefix="/api/v1")


_KEYED = {"security": API_KEY_SECURITY}


@router.post(
    "/music/generate",
    status_code=201,
    tags=["music"],
    responses=errors(401, 402),
    openapi_extra=_KEYED,
)
def generate(
    body: GenerateRequest,
    request: Request,
    identity: KeyIdentity = Depends(deps.api_key),
) -> dict[str, Any]:
    """Queue one track; its credits (ceil(duration / 3)) are taken now and refunded on failure."""
    ctx = deps.context(request)
    try:
        accepted = ctx.jobs.accept(identity, body)
    except InsufficientCredits as exc:
        raise HTTPException(402, str(exc)) from None
    except ValidationError as exc:
        raise HTTPException(400, describe_all(exc.errors())) from None
    return {
        "request_id": accepted.request_id,
        "status": "queued",
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
    try:
        return deps.context(request).jobs.status(identity.account_id, request_id)
    except JobNotFound:
        raise HTTPException(404, "Request not found") from None


@router.get(
    "/music/audio/{track_id}.wav",
    tags=["music"],
    response_class=Response,
    responses={
        200: {
            "description": "The WAV bytes",
            "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
        }
    }
    | errors(401, 403, 404),
    openapi_extra={"security": API_KEY_SECURITY + HOTKEY_SECURITY},
)
def audio(
    request: Request,
    track_id: str = Path(pattern=TRACK_ID_PATTERN),
    caller: KeyIdentity | str = Depends(deps.key_or_neuron),
) -> Response:
    """WAV bytes: the owner's own tracks (API key), or challenge tracks (signed neurons)."""
    ctx = deps.context(request)
    if isinstance(caller, KeyIdentity):
        digest = ctx.jobs.owned_track_audio(caller.account_id, track_id)
    else:
        digest = ctx.scores.challenge_audio(track_id)
    if digest is None:
        raise HTTPException(404, "Track not found")
    try:
        data = ctx.store.get(digest)
    except AudioStoreError:
        raise HTTPException(404, "Track audio not available") from None
    return Response(content=data, media_type="audio/wav")


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
