"""Not measured is not zero (issue 10, item 7): a scorer that did not run is `null` in
`score_breakdown`, with its reason in `excluded`; a validator without its full scorer set says
`degraded`. The API stores and serves all three, its means skip nulls, and the public page
shows "n/a" instead of an empty bar."""

from __future__ import annotations

import hashlib
import json
import re
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
    bearer,
    make_chain,
    make_settings,
    new_customer,
    running_api,
    signed_request,
    wav_bytes,
)
from tests.test_api_leaderboard import chromium, find_chromium
from tuneforge.api.settings import ApiSettings

MINER = Keypair.create_from_uri("//NullScoresMiner").ss58_address
EXCLUDED = {"clap": "CLAP checkpoint not loaded on this validator"}


def result(final: float, breakdown: dict[str, float | None], **extra: Any) -> dict[str, Any]:
    audio = wav_bytes(freq=100 + 500 * final)
    return {
        "track_id": f"trk_{uuid.uuid4().hex[:16]}",
        "miner_uid": 9,
        "miner_hotkey": MINER,
        "final_score": final,
        "composite": final,
        "score_breakdown": breakdown,
        "penalties": {"duration_penalty": 1.0},
        "audio_sha256": hashlib.sha256(audio).hexdigest(),
        "duration_seconds": 0.25,
        "sample_rate": 32000,
        **extra,
    }


def publish(client: httpx.Client, neurons: Neurons, results: list[dict[str, Any]]) -> None:
    body = {
        "round_id": uuid.uuid4().hex,
        "block": 5,
        "challenge": {"prompt": "p"},
        "results": results,
    }
    response = signed_request(
        client, neurons.validator, "POST", "/api/v1/scores", json.dumps(body).encode()
    )
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[tuple[ServerThread, ApiSettings, Neurons]]:
    tmp = tmp_path_factory.mktemp("null_scores")
    chain_path, neurons = make_chain(tmp)
    settings = make_settings(tmp, chain_path, leaderboard_cache_s=0)
    with running_api(settings) as server, httpx.Client(base_url=server.url, timeout=20) as client:
        publish(
            client,
            neurons,
            [
                result(
                    0.6,
                    {"clap": None, "melody": 0.4},
                    excluded=EXCLUDED,
                    degraded=True,
                    penalties={"duration_penalty": 1.0, "fad_penalty": None},
                ),
                result(0.8, {"clap": None, "melody": 0.8}, excluded=EXCLUDED, degraded=True),
            ],
        )
        yield server, settings, neurons


@pytest.fixture()
def client(api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api[0].url, timeout=20) as http:
        yield http


def test_null_excluded_and_degraded_are_served_wherever_results_are(client, api) -> None:
    reader = api[2].reader
    best = signed_request(client, reader, "GET", "/api/v1/scores/best").json()["tracks"]
    export = signed_request(client, reader, "GET", "/api/v1/scores/export").json()["items"]
    mine = signed_request(client, reader, "GET", f"/api/v1/scores/miners/{MINER}").json()
    for rows in (best, export, mine["results"]):
        assert len(rows) == 2
        for row in rows:
            assert row["score_breakdown"]["clap"] is None
            assert row["excluded"] == EXCLUDED and row["degraded"] is True
    penalties = sorted(str(row["penalties"]) for row in export)
    assert penalties == sorted(
        [str({"duration_penalty": 1.0}), str({"duration_penalty": 1.0, "fad_penalty": None})]
    )


def test_means_skip_nulls_and_a_never_measured_scorer_is_null(client, api) -> None:
    (miner,) = signed_request(client, api[2].reader, "GET", "/api/v1/scores/miners").json()[
        "miners"
    ]
    assert miner["scorer_means"] == {"clap": None, "melody": pytest.approx(0.6)}
    board = client.get("/leaderboard.json").json()
    assert board["miners"][0]["scorer_means"] == {"clap": None, "melody": pytest.approx(0.6)}


def test_job_tracks_carry_null_excluded_and_degraded(client, api) -> None:
    validator = api[2].validator
    _, key = new_customer(api[1])
    generated = client.post("/api/v1/music/generate", json={"prompt": "x"}, headers=bearer(key))
    request_id = generated.json()["request_id"]
    claim = json.dumps({"max_jobs": 1}).encode()
    signed_request(client, validator, "POST", "/api/v1/validator/jobs/claim", claim)
    audio = wav_bytes(freq=777)
    digest = hashlib.sha256(audio).hexdigest()
    assert (
        signed_request(client, validator, "PUT", f"/api/v1/validator/audio/{digest}", audio)
    ).status_code == 201
    track = result(0.5, {"clap": None, "melody": 0.5}, excluded=EXCLUDED, degraded=True)
    del track["track_id"]
    track["audio_sha256"] = digest
    path = f"/api/v1/validator/jobs/{request_id}/result"
    delivered = signed_request(
        client, validator, "POST", path, json.dumps({"tracks": [track]}).encode()
    )
    assert delivered.status_code == 200, delivered.text
    status = client.get(f"/api/v1/music/status/{request_id}", headers=bearer(key)).json()
    (served,) = status["tracks"]
    assert served["score_breakdown"] == {"clap": None, "melody": 0.5}
    assert served["excluded"] == EXCLUDED and served["degraded"] is True


@pytest.mark.parametrize(
    "excluded",
    [{f"s{i}": "r" for i in range(33)}, {"clap": "x" * 301}],
    ids=["33-entries", "301-chars"],
)
def test_excluded_is_bounded(client, api, excluded) -> None:
    body = {
        "round_id": uuid.uuid4().hex,
        "block": 5,
        "challenge": {"prompt": "p"},
        "results": [result(0.5, {"clap": None}, excluded=excluded)],
    }
    response = signed_request(
        client, api[2].validator, "POST", "/api/v1/scores", json.dumps(body).encode()
    )
    assert response.status_code == 400


@pytest.mark.slow
def test_the_page_shows_n_a_for_a_null_scorer_not_an_empty_bar(api, tmp_path: Path) -> None:
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium not found: install Debian's `chromium` package to run this test")
    dom = chromium(binary, tmp_path / "profile", "--dump-dom", f"{api[0].url}/leaderboard")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-state="ready"' in html
    assert len(re.findall(r'<rect class="bar"', html)) == 1  # melody only
    clap = re.search(r'<g class="scorer not-measured" data-scorer="clap">(.*?)</g>', html)
    assert clap is not None and "n/a" in clap.group(1) and "<rect" not in clap.group(1)
