"""The API from its clients' side: what it holds (as the validator reads it), and a customer's
account and track request, through the API's operator CLI and its public HTTP endpoints."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tuneforge.auth.hotkey import HotkeyAuth, HotkeySigner
from tuneforge.localnet.options import LocalnetError, WaitTimeout

CUSTOMER_CREDITS = 100


def api_counts(api_url: str, validator_wallet: HotkeySigner) -> dict[str, int]:
    """{miner hotkey: scored results the API holds} (GET /scores/export, signed by the
    validator hotkey, as any registered neuron may read it)."""
    path = "/api/v1/scores/export"
    counts: dict[str, int] = {}
    cursor = None
    for _ in range(100):  # 100 pages of 500: far beyond any localnet run
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        response = httpx.get(
            api_url + path, params=params, auth=HotkeyAuth(validator_wallet), timeout=10.0
        )
        if response.status_code != 200:
            raise LocalnetError(f"API {path}: {response.status_code} {response.text[:200]}")
        page = response.json()
        for item in page.get("items") or []:
            hotkey = str(item.get("miner_hotkey"))
            counts[hotkey] = counts.get(hotkey, 0) + 1
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return counts


def published(
    api_url: str, validator_wallet: HotkeySigner, status: dict[str, Any], has_publish_flag: bool
) -> dict[str, Any]:
    """What the validator got into the API, with a note saying why when that is nothing."""
    try:
        by_miner = api_counts(api_url, validator_wallet)
    except (httpx.HTTPError, LocalnetError) as exc:
        return {"count": 0, "by_miner": {}, "note": f"could not read the API: {exc}"}
    count = sum(by_miner.values())
    unsent = int(status.get("outbox_size") or 0)
    note = ""
    if count == 0 and not has_publish_flag:
        note = "the validator has no --api.publish flag yet: publishing is not built"
    elif count == 0 and unsent:
        note = (
            f"the validator queued {unsent} publications in its outbox, but nothing sends "
            "them to the API yet (validator→API publishing is not built)"
        )
    elif count == 0:
        note = "the validator published nothing"
    return {"count": count, "by_miner": by_miner, "outbox_unsent": unsent, "note": note}


def create_customer(tuneforge_cli: Callable[..., str], workdir: Path) -> dict[str, str]:
    """A fresh account with credits and an API key, through the API's operator CLI."""
    account = json.loads(
        tuneforge_cli(
            "api",
            "create-account",
            "--email",
            f"customer-{secrets.token_hex(4)}@localnet.invalid",
            "--plan",
            "pro",
            "--credits",
            str(CUSTOMER_CREDITS),
            "--database-url",
            f"sqlite:///{workdir / 'api.db'}",
            "--json",
        )  # fmt: skip
    )
    key = json.loads(
        tuneforge_cli(
            "api",
            "create-key",
            account["account_id"],
            "--database-url",
            f"sqlite:///{workdir / 'api.db'}",
            "--json",
        )  # fmt: skip
    )
    return {"account_id": account["account_id"], "api_key": key["api_key"]}


def customer_job(
    api_url: str,
    customer: dict[str, str],
    *,
    claims_jobs: bool,
    duration_s: float,
    wait_s: float,
    wait_for: Callable[[str, Callable[[], Any], float], Any],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """As that customer: request a track through the API and wait for it."""
    auth = {"Authorization": f"Bearer {customer['api_key']}"}
    me = httpx.get(f"{api_url}/api/v1/account/me", headers=auth, timeout=10.0)
    if me.status_code != 200:
        raise LocalnetError(f"the fresh API key was refused: {me.status_code} {me.text}")
    facts = {"account_id": customer["account_id"], "credits": me.json().get("credits")}
    if not claims_jobs:
        return {
            "status": "skipped",
            "reason": "the validator cannot claim customer jobs yet (no job/claim flag in "
            "`neurons/validator.py --help`), so a request would never be served",
            **facts,
        }
    say("customer: requesting a track through the API")
    body = {
        "prompt": "Calm lo-fi beat with warm piano and soft drums",
        "genre": "lo-fi",
        "mood": "calm",
        "duration_seconds": duration_s,
    }
    started = time.monotonic()
    accepted = httpx.post(f"{api_url}/api/v1/music/generate", headers=auth, json=body, timeout=10.0)
    if accepted.status_code != 201:
        raise LocalnetError(f"POST /music/generate: {accepted.status_code} {accepted.text[:300]}")
    request_id = accepted.json()["request_id"]
    status_url = f"{api_url}/api/v1/music/status/{request_id}"
    last: dict[str, Any] = {}

    def finished() -> bool:
        nonlocal last
        with contextlib.suppress(httpx.HTTPError, ValueError):
            last = httpx.get(status_url, headers=auth, timeout=10.0).json()
        return last.get("status") in ("completed", "failed")

    try:
        wait_for(f"customer job {request_id}", finished, wait_s)
    except WaitTimeout:
        last = {**last, "error": f"not finished after {wait_s:.0f}s"}
    tracks = []
    for track in last.get("tracks") or []:
        audio = httpx.get(api_url + track["audio_url"], headers=auth, timeout=30.0)
        tracks.append(
            {
                **{k: track.get(k) for k in ("track_id", "miner_hotkey", "score")},
                "audio_url": api_url + track["audio_url"],
                "duration_seconds": track.get("duration_seconds"),
                "audio_bytes": len(audio.content) if audio.status_code == 200 else 0,
            }
        )
    say(f"customer job {request_id}: {last.get('status')}")
    return {
        "request_id": request_id,
        "status": last.get("status", "unknown"),
        "credits_charged": accepted.json().get("credits_charged"),
        "tracks": tracks,
        "error": last.get("error"),
        "wall_s": round(time.monotonic() - started, 2),
        **facts,
    }
