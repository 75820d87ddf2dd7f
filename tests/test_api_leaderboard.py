"""The public leaderboard: /leaderboard.json after real POST /scores rounds, and the HTML page
rendered by a headless Chromium (JS executed, rows and chart drawn, hostile names inert)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bittensor.sp_core import Keypair

from tests.helpers.api_server import (
    Neurons,
    ServerThread,
    make_chain,
    make_settings,
    running_api,
    signed_request,
    wav_bytes,
)
from tuneforge.api.leaderboard import Leaderboard

REPO = Path(__file__).resolve().parents[1]
TOP = Keypair.create_from_uri("//LeaderboardTop").ss58_address
LOW = Keypair.create_from_uri("//LeaderboardLow").ss58_address
# Scorer names are free text published by validators: the page must show this, not run it.
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"


def result(miner: str, uid: int, final: float, breakdown: dict[str, float]) -> dict[str, Any]:
    audio = wav_bytes(freq=200 + 400 * final)
    return {
        "track_id": f"trk_{uuid.uuid4().hex[:16]}",
        "miner_uid": uid,
        "miner_hotkey": miner,
        "final_score": final,
        "composite": final,
        "score_breakdown": breakdown,
        "penalties": {"duration_penalty": 1.0},
        "generation_ms": 900.0,
        "audio_sha256": hashlib.sha256(audio).hexdigest(),
        "duration_seconds": 0.25,
        "sample_rate": 32000,
    }


def publish(client: httpx.Client, neurons: Neurons, results: list[dict[str, Any]]) -> None:
    body = {
        "round_id": uuid.uuid4().hex,
        "block": 100,
        "challenge": {"prompt": "upbeat funk", "genre": "funk", "duration_seconds": 0.25},
        "results": results,
    }
    response = signed_request(
        client, neurons.validator, "POST", "/api/v1/scores", json.dumps(body).encode()
    )
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Neurons]]:
    tmp = tmp_path_factory.mktemp("api_leaderboard")
    chain_path, neurons = make_chain(tmp)
    settings = make_settings(tmp, chain_path, leaderboard_cache_s=0)
    with running_api(settings) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        # Two rounds: TOP scores 0.8 then 0.9, LOW 0.3 then 0.2 (3 scorers, one hostile name).
        publish(
            client,
            neurons,
            [
                result(TOP, 5, 0.8, {"clap": 0.7, "melody": 0.9, HOSTILE: 0.5}),
                result(LOW, 9, 0.3, {"clap": 0.2, "melody": 0.4, HOSTILE: 0.1}),
            ],
        )
        publish(
            client,
            neurons,
            [
                result(TOP, 5, 0.9, {"clap": 0.9, "melody": 0.7, HOSTILE: 0.5}),
                result(LOW, 9, 0.2, {"clap": 0.4, "melody": None, HOSTILE: 0.3}),
            ],
        )
        yield server, neurons


def test_leaderboard_json_is_public_and_aggregates_published_rounds(api) -> None:
    response = httpx.get(f"{api[0].url}/leaderboard.json", timeout=10)  # no credentials at all
    assert response.status_code == 200
    board = response.json()
    assert board["miners_total"] == 2 and board["tracks_total"] == 4
    assert board["scorers"] == sorted(["clap", "melody", HOSTILE])
    top, low = board["miners"]
    assert (top["rank"], top["miner_hotkey"], top["miner_uid"]) == (1, TOP, 5)
    assert (low["rank"], low["miner_hotkey"], low["miner_uid"]) == (2, LOW, 9)
    assert top["tracks_scored"] == low["tracks_scored"] == 2
    assert top["mean_final_score"] == pytest.approx(0.85)
    assert top["ema_final_score"] == pytest.approx(0.1 * 0.9 + 0.9 * 0.8)
    assert top["scorer_means"] == pytest.approx({"clap": 0.8, "melody": 0.8, HOSTILE: 0.5})
    # A missing (None) scorer value is left out of the mean, not counted as zero.
    assert low["scorer_means"] == pytest.approx({"clap": 0.3, "melody": 0.4, HOSTILE: 0.2})
    assert top["last_seen"].endswith("Z")
    # Aggregates only: no audio, hashes, validator keys or challenge text.
    text = response.text
    for private in ("audio", "sha256", "validator", "upbeat funk", "track_id"):
        assert private not in text


def test_leaderboard_is_cached_and_capped_to_the_configured_miner_count(api) -> None:
    ctx = api[0].app.state.ctx
    board = Leaderboard(ctx.scores, ttl_s=3600, max_miners=1)
    first = board.view()
    assert [m["miner_hotkey"] for m in first["miners"]] == [TOP]
    assert first["miners_total"] == 2
    with httpx.Client(base_url=api[0].url, timeout=10) as client:
        newcomer = Keypair.create_from_uri("//LeaderboardNew").ss58_address
        publish(client, api[1], [result(newcomer, 11, 1.0, {"clap": 1.0})])
        fresh = client.get("/leaderboard.json").json()  # the app's own board: cache 0 s
    assert board.view() is first  # within its TTL the cached view is served as is
    assert fresh["miners"][0]["miner_hotkey"] == newcomer and fresh["miners_total"] == 3


def test_page_is_self_contained_with_a_strict_content_security_policy(api) -> None:
    response = httpx.get(f"{api[0].url}/leaderboard", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    # No external resources: every src/href is relative and there are no script/style files.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script src" not in html and "<link" not in html
    assert "innerHTML" not in html and "insertAdjacentHTML" not in html
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "'unsafe-inline'" not in csp
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+'", csp)
    assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=390,844",
        # Lets the page's fetch() of leaderboard.json finish before the DOM/screenshot is taken.
        "--virtual-time-budget=5000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.slow
def test_headless_chromium_renders_rows_and_chart_on_a_phone_sized_window(
    api, tmp_path: Path
) -> None:
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium not found: install Debian's `chromium` package to run this test")
    url = f"{api[0].url}/leaderboard"
    dom = chromium(binary, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-state="ready"' in html  # the script ran and the JSON arrived
    for hotkey in (TOP, LOW):
        assert f'data-hotkey="{hotkey}"' in html
    assert html.index(f'data-hotkey="{TOP}"') < html.index(f'data-hotkey="{LOW}"')
    assert '<svg id="chart"' in html
    # The selected (top) miner was measured on clap only: one bar, and "n/a" (no bar) for the
    # scorers never measured for it.
    assert len(re.findall(r'<rect class="bar"', html)) == 1
    assert html.count('<g class="scorer not-measured"') == 2 and "n/a" in html
    assert 'class="miner-row selected"' in html  # the top miner is selected by default
    # The hostile scorer name is text in the chart, never an element; its handler never ran.
    assert "&lt;img src=x" in html
    assert "<img" not in html
    assert "pwned" not in html.split("</title>")[0]

    artifacts = REPO / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "leaderboard.png"
    shot.unlink(missing_ok=True)
    picture = chromium(binary, tmp_path / "profile-shot", f"--screenshot={shot}", url)
    assert picture.returncode == 0, picture.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (390, 844)
