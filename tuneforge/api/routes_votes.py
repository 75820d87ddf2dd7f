"""Votes: customers judge their own tracks (API key); validators read them (hotkey signature)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response

from tuneforge.api import deps
from tuneforge.api.accounts import KeyIdentity
from tuneforge.api.openapi import API_KEY_SECURITY, HOTKEY_SECURITY, errors
from tuneforge.api.schemas import TRACK_ID_PATTERN, CompareRequest, VoteRequest
from tuneforge.api.votes import MAX_FEED_PAGE, VoteOutcome

router = APIRouter(prefix="/api/v1")

_KEYED = {"security": API_KEY_SECURITY}
_SIGNED = {"security": HOTKEY_SECURITY}


def _charge_vote(request: Request, identity: KeyIdentity) -> None:
    """Votes have their own, tighter budget: they steer what the network learns to like."""
    ctx = deps.context(request)
    result = ctx.limiter.hit(f"votes:{identity.account_id}", ctx.settings.votes_per_minute)
    if not result.allowed:
        raise HTTPException(
            429,
            f"Vote limit exceeded: {result.limit} votes per minute",
            headers={"Retry-After": str(result.retry_after)},
        )


# Both vote endpoints: 201 for a new vote, keyed, the same error set.
_VOTE_ROUTE: dict[str, Any] = {
    "status_code": 201,
    "tags": ["votes"],
    "responses": errors(400, 401, 404, 409, 429),
    "openapi_extra": _KEYED,
}


def _answer(outcome: VoteOutcome, response: Response) -> dict[str, Any]:
    # 201 for a new vote, 200 when the same vote was already recorded (idempotent repeat).
    response.status_code = 201 if outcome.created else 200
    return outcome.body


@router.post("/music/tracks/{track_id}/vote", **_VOTE_ROUTE)
def vote(
    body: VoteRequest,
    request: Request,
    response: Response,
    track_id: str = Path(pattern=TRACK_ID_PATTERN),
    identity: KeyIdentity = Depends(deps.api_key),
) -> dict[str, Any]:
    """`up` or `down` on one of your tracks; one vote per track (repeat: 200, other: 409)."""
    _charge_vote(request, identity)
    outcome = deps.context(request).votes.vote(identity.account_id, track_id, body.vote)
    return _answer(outcome, response)


@router.post("/music/compare", **_VOTE_ROUTE)
def compare(
    body: CompareRequest,
    request: Request,
    response: Response,
    identity: KeyIdentity = Depends(deps.api_key),
) -> dict[str, Any]:
    """You prefer `winner` over `loser`, two of your tracks of the same request."""
    _charge_vote(request, identity)
    outcome = deps.context(request).votes.compare(identity.account_id, body.winner, body.loser)
    return _answer(outcome, response)


@router.get("/preferences", tags=["votes"], responses=errors(401, 403), openapi_extra=_SIGNED)
def preferences(
    request: Request,
    cursor: str | None = Query(default=None, pattern=r"^[0-9]{1,18}$"),
    limit: int = Query(default=500, ge=1, le=MAX_FEED_PAGE),
    _hotkey: str = Depends(deps.neuron),
) -> dict[str, Any]:
    """Every customer vote, oldest first, with the tracks' audio URLs (signed neurons may
    download voted tracks); pass `next_cursor` back until it is null."""
    return deps.context(request).votes.feed(int(cursor or 0), limit)
