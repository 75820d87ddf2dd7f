"""Hostile values never reach a column or a 500 (issue 11, defects 3, 4, 5), on SQLite and
PostgreSQL: non-finite numbers, out-of-range integers, NUL characters, loose types, huge
cursors; and values stored before these checks still serve as valid JSON."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from bittensor.sp_core import Keypair
from sqlalchemy import update

from tests.helpers.api_server import (
    Neurons,
    ServerThread,
    make_chain,
    make_settings,
    postgres_schema_url,
    running_api,
    signed_request,
    wav_bytes,
)
from tuneforge.api.models import ScoreResult
from tuneforge.auth.hotkey import sign_hotkey_headers

MINER = Keypair.create_from_uri("//HostileMiner").ss58_address
AUDIO = wav_bytes(freq=330)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory) -> Iterator[tuple[ServerThread, Neurons]]:
    tmp = tmp_path_factory.mktemp(f"hostile_{request.param}")
    chain_path, neurons = make_chain(tmp)
    with ExitStack() as stack:
        extra = {}
        if request.param == "postgresql":
            extra["database_url"] = stack.enter_context(postgres_schema_url())
        server = stack.enter_context(running_api(make_settings(tmp, chain_path, **extra)))
        yield server, neurons


@pytest.fixture()
def client(api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api[0].url, timeout=20) as http:
        yield http


def a_round(**result_fields: Any) -> dict[str, Any]:
    result = {
        "track_id": f"trk_{uuid.uuid4().hex[:12]}",
        "miner_uid": 4,
        "miner_hotkey": MINER,
        "final_score": 0.5,
        "composite": 0.5,
        "score_breakdown": {"clap": 0.5},
        "penalties": {"duration_penalty": 1.0},
        "audio_sha256": hashlib.sha256(AUDIO).hexdigest(),
        "duration_seconds": 0.25,
        "sample_rate": 32000,
    }
    result.update(result_fields)
    return {
        "round_id": str(uuid.uuid4()),
        "block": 42,
        "challenge": {"prompt": "hostile", "genre": "noise"},
        "results": [result],
    }


def publish_raw(client: httpx.Client, neurons: Neurons, raw: str) -> httpx.Response:
    return signed_request(client, neurons.validator, "POST", "/api/v1/scores", raw.encode())


def publish(client: httpx.Client, neurons: Neurons, body: dict[str, Any]) -> httpx.Response:
    # json.dumps writes NaN/Infinity literals, exactly what a hostile client can send.
    return publish_raw(client, neurons, json.dumps(body))


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]


@pytest.mark.parametrize(
    "fields",
    [
        {"score_breakdown": {"clap": float("inf")}},
        {"score_breakdown": {"clap": float("nan")}},
        {"penalties": {"fad_penalty": float("-inf")}},
        {"final_score": float("nan")},
        {"generation_ms": float("inf")},
        {"score_breakdown": {"clap\x00": 0.5}},
        {"excluded": {"clap": "model\x00missing"}},
        {"final_score": False},
        {"sample_rate": "32000"},
        {"miner_uid": 4.0},
        {"score_breakdown": {"clap": 1.5}},
    ],
    ids=lambda fields: next(iter(fields)),
)
def test_a_hostile_result_field_is_refused_with_a_detail(client, api, fields) -> None:
    assert_refused(publish(client, api[1], a_round(**fields)))


@pytest.mark.parametrize(
    "challenge",
    [
        {"prompt": "x", "tempo": float("inf")},
        {"prompt": "x", "nested": [{"deep": float("nan")}]},
        {"prompt": "nul \x00 inside"},
        {"prompt": "x", "big": 10**30},
        {"prompt": "x", "deep": json.loads("[" * 40 + "]" * 40)},
    ],
    ids=["inf", "nested-nan", "nul", "huge-int", "too-deep"],
)
def test_a_hostile_challenge_is_refused(client, api, challenge) -> None:
    body = a_round()
    body["challenge"] = challenge
    assert_refused(publish(client, api[1], body))


def test_a_lone_surrogate_is_refused(client, api) -> None:
    raw = json.dumps(a_round()).replace('"hostile"', '"\\ud800"')
    assert_refused(publish_raw(client, api[1], raw))


def test_block_fits_its_column(client, api) -> None:
    big = a_round()
    big["block"] = 2**31 + 5  # overflowed PostgreSQL's int4 column before migration 0002
    assert publish(client, api[1], big).status_code == 201
    for bad in (2**53, 2**63, -1, True, 1.5):
        body = a_round()
        body["block"] = bad
        assert_refused(publish(client, api[1], body))
    exported = signed_request(client, api[1].reader, "GET", "/api/v1/scores/export")
    assert exported.status_code == 200
    assert 2**31 + 5 in [item["block"] for item in exported.json()["items"]]


def test_infinity_cannot_take_the_public_leaderboard_down(client, api) -> None:
    assert_refused(publish(client, api[1], a_round(score_breakdown={"clap": float("inf")})))
    assert client.get("/leaderboard.json").status_code == 200


def test_hostile_values_already_stored_are_served_as_null(client, api) -> None:
    """Rows written before these checks (or by hand) still serve: never a 500."""
    body = a_round(score_breakdown={"clap": 0.5, "melody": 0.25})
    assert publish(client, api[1], body).status_code == 201
    track_id = body["results"][0]["track_id"]
    ctx = api[0].app.state.ctx
    with ctx.db.write() as session:
        session.execute(
            update(ScoreResult)
            .where(ScoreResult.track_id == track_id)
            .values(
                # PostgreSQL's json refuses Infinity, its float8 does not; SQLite takes both.
                score_breakdown={"clap": "not a number", "melody": 0.25},
                penalties={"fad_penalty": [1]},
                composite=float("inf"),
            )
        )
    ctx.leaderboard._cached = None  # recompute now, not after the cache period
    board = client.get("/leaderboard.json")
    assert board.status_code == 200
    mine = [m for m in board.json()["miners"] if m["miner_hotkey"] == MINER]
    assert mine and mine[0]["scorer_means"]["melody"] is not None
    best = signed_request(client, api[1].reader, "GET", f"/api/v1/scores/miners/{MINER}")
    assert best.status_code == 200
    (stored,) = [r for r in best.json()["results"] if r["track_id"] == track_id]
    assert stored["score_breakdown"] == {"clap": None, "melody": 0.25}
    assert stored["penalties"] == {"fad_penalty": None} and stored["composite"] is None


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "text", ["v1:9223372036854775808", "v1:" + "9" * 400, "v1:-5", "v1: 7", "v2:1", "v1:1_000"]
)
def test_an_out_of_range_export_cursor_is_400(client, api, text) -> None:
    response = signed_request(
        client, api[1].reader, "GET", "/api/v1/scores/export", params={"cursor": cursor_of(text)}
    )
    assert_refused(response)


@pytest.mark.parametrize("since", ["0.5", "12345", "0001-01-01T00:00:00+01:00", "9999-99-99"])
def test_since_must_be_an_iso_date_time(client, api, since) -> None:
    response = signed_request(
        client, api[1].reader, "GET", "/api/v1/scores/export", params={"since": since}
    )
    assert_refused(response)


def test_nul_in_a_path_or_query_is_400_not_a_500(client, api) -> None:
    # Signed over the decoded path, as the server sees it, so only the NUL is wrong.
    decoded = "/api/v1/scores/miners/abc\x00def"
    headers = sign_hotkey_headers(api[1].reader, "GET", decoded)
    assert_refused(client.get("/api/v1/scores/miners/abc%00def", headers=headers))
    query = signed_request(
        client, api[1].reader, "GET", "/api/v1/scores/best", params={"genre": "jazz\x00"}
    )
    assert_refused(query)
