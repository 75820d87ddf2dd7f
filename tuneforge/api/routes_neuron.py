"""Neuron endpoints (hotkey signature): scoring analytics for any registered neuron, and the
validator write endpoints (validator permit)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import WithJsonSchema

from tuneforge.api import deps
from tuneforge.api.openapi import HOTKEY_SECURITY, WAV_BODY, errors
from tuneforge.api.schemas import (
    CURSOR_PATTERN,
    REQUEST_ID_PATTERN,
    SAFE_TEXT_PATTERN,
    ClaimRequest,
    JobResult,
    PublishRound,
)
from tuneforge.api.scores import (
    MAX_BEST_LIMIT,
    MAX_EXPORT_LIMIT,
)
from tuneforge.api.storage import StagedUpload
from tuneforge.core.publication import (
    API_PREFIX,
    HOTKEY_PATTERN,
    JOB_AUDIO_PATH,
    JOB_CLAIM_PATH,
    JOB_RESULT_PATH,
    SCORES_PATH,
    SHA256_PATTERN,
    TRACK_AUDIO_PATH,
    TRACK_ID_PATTERN,
)

router = APIRouter(prefix=API_PREFIX)

# ISO-8601 / RFC 3339 date-time, as the schema's `format: date-time` means it: a string, never
# a number. Fractions beyond microseconds are accepted and truncated.
_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})?$"
)
_BEYOND_MICROSECONDS = re.compile(r"(\.\d{6})\d+")
_SIGNED = {"security": HOTKEY_SECURITY}


@router.get("/scores/best", tags=["scores"], responses=errors(401, 403), openapi_extra=_SIGNED)
def best(
    request: Request,
    limit: int = Query(20, ge=1, le=MAX_BEST_LIMIT),
    genre: str | None = Query(None, max_length=64, pattern=SAFE_TEXT_PATTERN),
    _hotkey: str = Depends(deps.neuron),
) -> dict[str, Any]:
    """Best-scored challenge tracks with their full breakdowns."""
    tracks = deps.context(request).scores.best(limit, genre or None)
    return {"tracks": tracks, "base_url": base_url(request)}


@router.get("/scores/miners", tags=["scores"], responses=errors(401, 403), openapi_extra=_SIGNED)
def miners(request: Request, _hotkey: str = Depends(deps.neuron)) -> dict[str, Any]:
    """Leaderboard: per miner, tracks scored, mean and EMA final score, mean of each scorer
    (null when that scorer was never measured for the miner)."""
    return {"miners": deps.context(request).scores.miners()}


@router.get(
    "/scores/miners/{hotkey}",
    tags=["scores"],
    responses=errors(401, 403, 404),
    openapi_extra=_SIGNED,
)
def miner(
    request: Request,
    hotkey: str = Path(pattern=HOTKEY_PATTERN),
    limit: int = Query(50, ge=1, le=MAX_BEST_LIMIT),
    _hotkey: str = Depends(deps.neuron),
) -> dict[str, Any]:
    results = deps.context(request).scores.miner(hotkey, limit)
    return {"miner_hotkey": hotkey, "results": results}


def parse_since(value: str | None) -> datetime | None:
    """An ISO-8601 date-time as naive UTC, or 400."""
    if value is None:
        return None
    if not _ISO_DATETIME.match(value):
        raise HTTPException(400, "since: must be an ISO-8601 date-time")
    try:
        text = _BEYOND_MICROSECONDS.sub(r"\1", value).upper().replace("Z", "+00:00")
        since = datetime.fromisoformat(text)
        if since.tzinfo is not None:
            since = since.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise HTTPException(400, "since: not a valid date-time") from None
    return since


@router.get("/scores/export", tags=["scores"], responses=errors(401, 403), openapi_extra=_SIGNED)
def export(
    request: Request,
    since: Annotated[
        str | None,
        WithJsonSchema(
            {
                "anyOf": [
                    {
                        "type": "string",
                        "format": "date-time",
                        "pattern": _ISO_DATETIME.pattern,
                        "maxLength": 40,
                    },
                    {"type": "null"},
                ]
            }
        ),
        Query(max_length=40, description="ISO-8601 date-time; results created at or after"),
    ] = None,
    cursor: str | None = Query(
        None, pattern=CURSOR_PATTERN, max_length=128, description="opaque, from next_cursor"
    ),
    limit: int = Query(MAX_EXPORT_LIMIT, ge=1, le=MAX_EXPORT_LIMIT),
    _hotkey: str = Depends(deps.neuron),
) -> dict[str, Any]:
    """Every scored track with its breakdown and audio_url, oldest first, cursor-paginated."""
    since_at = parse_since(since)
    items, next_cursor = deps.context(request).scores.export(since_at, cursor, limit)
    return {"items": items, "next_cursor": next_cursor, "base_url": base_url(request)}


@router.post(
    SCORES_PATH,
    tags=["validator"],
    status_code=201,
    responses={200: {"description": "A retry of a round already stored: the same ids"}}
    | errors(401, 403, 409),
    openapi_extra=_SIGNED,
)
def publish(
    body: PublishRound,
    request: Request,
    response: Response,
    hotkey: str = Depends(deps.validator),
) -> dict[str, Any]:
    """Publish one round: 201 when new, 200 with the same ids on a retry, 409 if different
    or when a result references a customer's audio."""
    ctx = deps.context(request)
    created, result = ctx.scores.publish(hotkey, body)
    # Indexed after the round is stored: a retry indexes nothing twice (track ids are unique).
    ctx.fingerprints.index_tracks(hotkey, "round", [r.model_dump() for r in body.results])
    response.status_code = 201 if created else 200
    return result


async def receive_wav(request: Request) -> StagedUpload:
    """Stream the body into a staged file (the guard aborts it past the size limit)."""
    upload = StagedUpload(deps.context(request).store)
    try:
        async for chunk in request.stream():
            if chunk:
                await anyio.to_thread.run_sync(upload.write, chunk)
        await anyio.to_thread.run_sync(upload.finish)
    except BaseException:
        upload.discard()
        raise
    return upload


# Both raw-WAV uploads: signed, 201 stored / 200 already stored, the same error set.
_UPLOAD_ROUTE: dict[str, Any] = {
    "tags": ["validator"],
    "status_code": 201,
    "responses": {200: {"description": "Already stored"}, 201: {"description": "Stored"}}
    | errors(401, 403, 404, 409),
    "openapi_extra": {"requestBody": WAV_BODY, **_SIGNED},
}


@router.put(TRACK_AUDIO_PATH, **_UPLOAD_ROUTE)
async def put_published_audio(
    request: Request, response: Response, track_id: str = Path(pattern=TRACK_ID_PATTERN)
) -> dict[str, Any]:
    """Raw WAV of a track this validator published. It must hash to the published
    `audio_sha256`, and the request is signed over that hash: signature, registration and
    permit are checked from the headers before any body byte is read. A body that hashes
    differently is 409; a non-WAV body is 400."""
    ctx = deps.context(request)
    claim = await deps.hotkey_claim(request, write=True)
    expected = await anyio.to_thread.run_sync(ctx.scores.expected_audio, claim.hotkey, track_id)
    hotkey = await deps.signed_by(request, claim, expected)
    upload = await receive_wav(request)
    try:
        created = await anyio.to_thread.run_sync(
            ctx.scores.attach_published_audio, hotkey, track_id, upload
        )
    finally:
        upload.discard()
    response.status_code = 201 if created else 200
    return {"track_id": track_id, "audio_sha256": upload.sha256, "bytes": upload.size}


@router.put(JOB_AUDIO_PATH, **_UPLOAD_ROUTE)
async def put_job_audio(
    request: Request, response: Response, sha256: str = Path(pattern=SHA256_PATTERN)
) -> dict[str, Any]:
    """Step 1 of delivering a customer job: upload each WAV raw, addressed by its SHA-256 and
    signed over it (checked before the body is read). 409 if the body hashes differently, 400
    if not a WAV. Step 2 posts the result JSON, which may reference only audio you uploaded."""
    ctx = deps.context(request)
    claim = await deps.hotkey_claim(request, write=True)
    hotkey = await deps.signed_by(request, claim, sha256)
    upload = await receive_wav(request)
    try:
        if upload.sha256 != sha256:
            raise HTTPException(409, f"body SHA-256 {upload.sha256} does not match the path")
        if not upload.is_wav:
            raise HTTPException(400, "body is not a RIFF/WAVE file")
        existed = await anyio.to_thread.run_sync(ctx.jobs.store_audio, hotkey, upload)
    finally:
        upload.discard()
    response.status_code = 200 if existed else 201
    return {"audio_sha256": sha256, "bytes": upload.size}


@router.post(JOB_CLAIM_PATH, tags=["validator"], responses=errors(401, 403), openapi_extra=_SIGNED)
def claim(
    request: Request, body: ClaimRequest | None = None, hotkey: str = Depends(deps.validator)
) -> dict[str, Any]:
    """Lease up to `max_jobs` queued customer jobs; each carries a MusicGenerationSynapse."""
    ctx = deps.context(request)
    max_jobs = min((body or ClaimRequest()).max_jobs, ctx.settings.max_claim_jobs)
    return {"jobs": ctx.jobs.claim(hotkey, max_jobs)}


@router.post(
    JOB_RESULT_PATH,
    tags=["validator"],
    responses=errors(401, 403, 404, 409),
    openapi_extra=_SIGNED,
)
def job_result(
    body: JobResult,
    request: Request,
    request_id: str = Path(pattern=REQUEST_ID_PATTERN),
    hotkey: str = Depends(deps.validator),
) -> dict[str, Any]:
    """Deliver a leased job. WAVs are not inlined (no base64): each track's audio is first
    uploaded raw with `PUT /validator/audio/{sha256}`, then this JSON references it by
    `audio_sha256` (400 if not uploaded, 403 if uploaded by someone else, 409 if already
    delivered for another job). `error` (or no tracks) fails the job and refunds it."""
    ctx = deps.context(request)
    answer = ctx.jobs.submit_result(hotkey, request_id, body)
    # Customer tracks are music the network paid for too: a later replay of one is a copy.
    if len(answer["track_ids"]) == len(body.tracks):
        tracks = [
            {**t.model_dump(), "track_id": track_id}
            for t, track_id in zip(body.tracks, answer["track_ids"], strict=True)
        ]
        ctx.fingerprints.index_tracks(hotkey, "job", tracks)
    return answer


def base_url(request: Request) -> str:
    """What relative `audio_url`s resolve against: the configured public URL, else this host."""
    configured = deps.context(request).settings.public_base_url
    return (configured or str(request.base_url)).rstrip("/")
