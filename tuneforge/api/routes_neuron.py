"""Neuron endpoints (hotkey signature): scoring analytics for any registered neuron, and the
validator write endpoints (validator permit)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from tuneforge.api import deps
from tuneforge.api.jobs import JobConflict, JobNotFound, MissingAudio
from tuneforge.api.schemas import ClaimRequest, JobResult, PublishRound
from tuneforge.api.scores import (
    MAX_BEST_LIMIT,
    MAX_EXPORT_LIMIT,
    BadAudio,
    BadCursor,
    ScoresConflict,
    ScoresNotFound,
)
from tuneforge.api.storage import is_sha256, looks_like_wav

router = APIRouter(prefix="/api/v1")

_WAV_BODY = {"content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}}


@router.get("/scores/best", tags=["scores"])
def best(
    request: Request,
    limit: int = Query(20, ge=1, le=MAX_BEST_LIMIT),
    genre: str | None = Query(None, max_length=64),
    _hotkey: str = Depends(deps.neuron),
) -> dict[str, Any]:
    """Best-scored challenge tracks with their full breakdowns."""
    tracks = deps.context(request).scores.best(limit, genre or None)
    return {"tracks": tracks, "base_url": base_url(request)}


@router.get("/scores/miners", tags=["scores"])
def miners(request: Request, _hotkey: str = Depends(deps.neuron)) -> dict[str, Any]:
    """Leaderboard: per miner, tracks scored, mean and EMA final score, mean of each scorer."""
    return {"miners": deps.context(request).scores.miners()}


@router.get("/scores/miners/{hotkey}", tags=["scores"])
def miner(
    hotkey: str,
    request: Request,
    limit: int = Query(50, ge=1, le=MAX_BEST_LIMIT),
    _hotkey: str = Depends(deps.neuron),
) -> dict[str, Any]:
    try:
        results = deps.context(request).scores.miner(hotkey, limit)
    except ScoresNotFound:
        raise HTTPException(404, "No results for this miner") from None
    return {"miner_hotkey": hotkey, "results": results}


@router.get("/scores/export", tags=["scores"])
def export(
    request: Request,
    since: datetime | None = Query(None, description="ISO-8601; results created at or after"),
    cursor: str | None = Query(None, max_length=128, description="opaque, from next_cursor"),
    limit: int = Query(MAX_EXPORT_LIMIT, ge=1, le=MAX_EXPORT_LIMIT),
    _hotkey: str = Depends(deps.neuron),
) -> dict[str, Any]:
    """Every scored track with its breakdown and audio_url, oldest first, cursor-paginated."""
    if since is not None and since.tzinfo is not None:
        since = since.astimezone(UTC).replace(tzinfo=None)
    try:
        items, next_cursor = deps.context(request).scores.export(since, cursor, limit)
    except BadCursor:
        raise HTTPException(400, "Invalid cursor") from None
    return {"items": items, "next_cursor": next_cursor, "base_url": base_url(request)}


@router.post("/scores", tags=["validator"])
def publish(
    body: PublishRound,
    request: Request,
    response: Response,
    hotkey: str = Depends(deps.validator),
) -> dict[str, Any]:
    """Publish one round: 201 when new, 200 with the same ids on a retry, 409 if different."""
    ctx = deps.context(request)
    try:
        created, result = ctx.scores.publish(hotkey, body)
    except ScoresConflict as exc:
        raise HTTPException(409, str(exc)) from None
    # Indexed after the round is stored: a retry indexes nothing twice (track ids are unique).
    ctx.fingerprints.index_tracks(hotkey, "round", [r.model_dump() for r in body.results])
    response.status_code = 201 if created else 200
    return result


@router.put(
    "/scores/audio/{track_id}", tags=["validator"], openapi_extra={"requestBody": _WAV_BODY}
)
async def put_published_audio(
    track_id: str, request: Request, response: Response, hotkey: str = Depends(deps.validator)
) -> dict[str, Any]:
    """Raw WAV of a track this validator published. Its SHA-256 must equal the published
    `audio_sha256`: a mismatch is 409 (same id, different content); a non-WAV body is 400."""
    ctx = deps.context(request)
    data = await request.body()
    try:
        created = await _run(ctx.scores.upload_published_audio, hotkey, track_id, data)
    except ScoresNotFound:
        raise HTTPException(404, "Track not found") from None
    except ScoresConflict as exc:
        raise HTTPException(409, str(exc)) from None
    except BadAudio as exc:
        raise HTTPException(400, str(exc)) from None
    response.status_code = 201 if created else 200
    return {
        "track_id": track_id,
        "audio_sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }


@router.put(
    "/validator/audio/{sha256}", tags=["validator"], openapi_extra={"requestBody": _WAV_BODY}
)
async def put_job_audio(
    sha256: str, request: Request, response: Response, _hotkey: str = Depends(deps.validator)
) -> dict[str, Any]:
    """Step 1 of delivering a customer job: upload each WAV raw, addressed by its SHA-256
    (409 if the body hashes differently, 400 if not a WAV). Step 2 posts the result JSON."""
    ctx = deps.context(request)
    if not is_sha256(sha256):
        raise HTTPException(400, "path must be a lower-case SHA-256 hex digest")
    data = await request.body()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise HTTPException(409, f"body SHA-256 {digest} does not match the path")
    if not looks_like_wav(data):
        raise HTTPException(400, "body is not a RIFF/WAVE file")
    existed = ctx.store.has(sha256)
    await _run(ctx.store.put, data)
    response.status_code = 200 if existed else 201
    return {"audio_sha256": sha256, "bytes": len(data)}


@router.post("/validator/jobs/claim", tags=["validator"])
def claim(
    request: Request, body: ClaimRequest | None = None, hotkey: str = Depends(deps.validator)
) -> dict[str, Any]:
    """Lease up to `max_jobs` queued customer jobs; each carries a MusicGenerationSynapse."""
    ctx = deps.context(request)
    max_jobs = min((body or ClaimRequest()).max_jobs, ctx.settings.max_claim_jobs)
    return {"jobs": ctx.jobs.claim(hotkey, max_jobs)}


@router.post("/validator/jobs/{request_id}/result", tags=["validator"])
def job_result(
    request_id: str, body: JobResult, request: Request, hotkey: str = Depends(deps.validator)
) -> dict[str, Any]:
    """Deliver a leased job. WAVs are not inlined (no base64): each track's audio is first
    uploaded raw with `PUT /validator/audio/{sha256}`, then this JSON references it by
    `audio_sha256` (400 if not uploaded). `error` (or no tracks) fails the job and refunds it."""
    ctx = deps.context(request)
    try:
        answer = ctx.jobs.submit_result(hotkey, request_id, body)
    except JobNotFound:
        raise HTTPException(404, "Request not found") from None
    except JobConflict as exc:
        raise HTTPException(409, str(exc)) from None
    except MissingAudio as exc:
        raise HTTPException(400, str(exc)) from None
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


async def _run(function: Any, *args: Any) -> Any:
    import anyio

    return await anyio.to_thread.run_sync(function, *args)
