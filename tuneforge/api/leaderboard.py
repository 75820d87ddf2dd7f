"""The public leaderboard: `/leaderboard` (an HTML page, no auth) and `/leaderboard.json`.

The `/scores/*` endpoints need hotkey signatures, so the page reads this public JSON instead:
aggregates only (per miner: scores, counts, scorer means, last seen), never audio or keys.
The JSON is cached for a few seconds because anyone may call it and it reads every result.
The page is one self-contained file (CSS and JS inline, no CDN) with a CSP that allows exactly
its own inline style and script (by hash) and same-origin fetches.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from tuneforge.api import deps
from tuneforge.api.models import utcnow
from tuneforge.api.scores import ScoreService

router = APIRouter(tags=["leaderboard"])

_STATIC = "tuneforge.api.static"


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@dataclass(frozen=True)
class LeaderboardPage:
    html: str
    headers: dict[str, str]

    @classmethod
    def load(cls) -> LeaderboardPage:
        """Assemble the page from the packaged template, stylesheet and script."""
        files = resources.files(_STATIC)
        template = files.joinpath("leaderboard.html").read_text(encoding="utf-8")
        style = files.joinpath("leaderboard.css").read_text(encoding="utf-8")
        script = files.joinpath("leaderboard.js").read_text(encoding="utf-8")
        html = template.replace("/*STYLE*/", style, 1).replace("/*SCRIPT*/", script, 1)
        csp = (
            "default-src 'none'; "
            f"style-src {_csp_hash(style)}; script-src {_csp_hash(script)}; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'"
        )
        headers = {
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "public, max-age=60",
        }
        return cls(html, headers)


class Leaderboard:
    """The public aggregate view over published results, recomputed at most every `ttl_s`."""

    def __init__(self, scores: ScoreService, ttl_s: float, max_miners: int) -> None:
        self.scores = scores
        self.ttl_s = ttl_s
        self.max_miners = max_miners
        self._lock = threading.Lock()
        self._cached: dict[str, Any] | None = None
        self._cached_at = 0.0

    def view(self) -> dict[str, Any]:
        # One computation at a time: concurrent callers wait for it instead of repeating it.
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached_at >= self.ttl_s:
                self._cached = self._compute()
                self._cached_at = now
            return self._cached

    def _compute(self) -> dict[str, Any]:
        miners = self.scores.miners()
        scorers = sorted({name for miner in miners for name in miner["scorer_means"]})
        shown = [
            {
                "rank": rank,
                "miner_uid": miner["miner_uid"],
                "miner_hotkey": miner["miner_hotkey"],
                "ema_final_score": miner["ema_final_score"],
                "mean_final_score": miner["mean_final_score"],
                "tracks_scored": miner["tracks_scored"],
                "last_seen": miner["last_seen"],
                "scorer_means": miner["scorer_means"],
            }
            for rank, miner in enumerate(miners[: self.max_miners], start=1)
        ]
        return {
            "generated_at": utcnow().isoformat() + "Z",
            "miners_total": len(miners),
            "tracks_total": sum(miner["tracks_scored"] for miner in miners),
            "scorers": scorers,
            "miners": shown,
        }


_page: LeaderboardPage | None = None


def page() -> LeaderboardPage:
    global _page
    if _page is None:
        _page = LeaderboardPage.load()
    return _page


@router.get("/leaderboard", response_class=HTMLResponse)
def leaderboard_page() -> HTMLResponse:
    """The public leaderboard page; it renders /leaderboard.json in the browser."""
    current = page()
    return HTMLResponse(current.html, headers=current.headers)


@router.get("/leaderboard.json")
def leaderboard_json(request: Request) -> JSONResponse:
    """Per-miner aggregates, best EMA first: final scores, tracks scored, scorer means."""
    ttl = deps.context(request).settings.leaderboard_cache_s
    return JSONResponse(
        deps.context(request).leaderboard.view(),
        headers={"Cache-Control": f"public, max-age={int(ttl)}"},
    )
