"""Customer endpoints over real HTTP: generation, credits, status, account, errors, limits."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.api_server import (
    ServerThread,
    bearer,
    make_chain,
    make_settings,
    new_customer,
    running_api,
)
from tuneforge.api.settings import ApiSettings

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, ApiSettings]]:
    tmp = tmp_path_factory.mktemp("api_customer")
    chain_path, _ = make_chain(tmp)
    settings = make_settings(tmp, chain_path)
    with running_api(settings) as server:
        yield server, settings


@pytest.fixture()
def client(api: tuple[ServerThread, ApiSettings]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api[0].url, timeout=10) as http:
        yield http


def assert_rate_headers(response: httpx.Response) -> None:
    for name in RATE_HEADERS:
        assert response.headers[name].isdigit(), (name, response.status_code)


def test_generate_returns_201_and_charges_ceil_duration_over_three(client, api) -> None:
    _, key = new_customer(api[1], credits=100)
    response = client.post(
        "/api/v1/music/generate",
        json={
            "prompt": "Chill lo-fi hip hop beat with vinyl crackle",
            "genre": "lo-fi",
            "mood": "calm",
            "duration_seconds": 15,
            "tempo_bpm": 85,
            "key": "A minor",
            "instruments": ["piano", "drums"],
            "vocals": False,
            "lyrics": None,
            "seed": None,
        },
        headers=bearer(key),
    )
    assert response.status_code == 201
    body = response.json()
    assert body["request_id"].startswith("req_") and body["status"] == "queued"
    assert (body["credits_charged"], body["credits_remaining"]) == (5, 95)
    assert_rate_headers(response)
    for duration, cost in [(16, 6), (1, 1), (60, 20)]:
        r = client.post(
            "/api/v1/music/generate",
            json={"prompt": "x", "duration_seconds": duration},
            headers=bearer(key),
        )
        assert r.json()["credits_charged"] == cost


def test_insufficient_credits_is_402_with_the_exact_text(client, api) -> None:
    account_id, key = new_customer(api[1], credits=2)
    response = client.post("/api/v1/music/generate", json={"prompt": "x"}, headers=bearer(key))
    assert response.status_code == 402
    assert response.json() == {
        "detail": "Insufficient credits. You need 5 credits but have 2 remaining."
    }
    assert_rate_headers(response)
    me = client.get("/api/v1/account/me", headers=bearer(key)).json()
    assert me["credits"] == 2 and me["account_id"] == account_id


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"prompt": ""},
        {"prompt": "x" * 501},
        {"prompt": "x", "duration_seconds": 61},
        {"prompt": "x", "duration_seconds": 0.5},
        {"prompt": "x", "tempo_bpm": 300},
        {"prompt": "x", "key": "H minor"},
        {"prompt": "x", "unknown": 1},
    ],
)
def test_invalid_generation_bodies_are_400_and_charge_nothing(client, api, body) -> None:
    _, key = new_customer(api[1], credits=10)
    response = client.post("/api/v1/music/generate", json=body, headers=bearer(key))
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["detail"], str)
    assert client.get("/api/v1/account/me", headers=bearer(key)).json()["credits"] == 10


def test_missing_invalid_and_revoked_keys_are_401_with_rate_headers(client, api) -> None:
    from tuneforge.api.accounts import list_accounts, revoke_key
    from tuneforge.api.db import Database

    for headers in [{}, bearer("tf_" + "a" * 43), {"Authorization": "Basic abc"}]:
        response = client.get("/api/v1/account/me", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"detail": "Missing or invalid API key"}
        assert_rate_headers(response)
    account_id, key = new_customer(api[1])
    assert client.get("/api/v1/account/me", headers=bearer(key)).status_code == 200
    db = Database.open(api[1].database_url)
    (account,) = [a for a in list_accounts(db) if a["account_id"] == account_id]
    revoke_key(db, account["keys"][0]["key_id"])
    db.dispose()
    assert client.get("/api/v1/account/me", headers=bearer(key)).status_code == 401


def test_status_of_own_job_and_404_for_unknown_or_other_accounts(client, api) -> None:
    _, key = new_customer(api[1])
    _, other_key = new_customer(api[1])
    request_id = client.post(
        "/api/v1/music/generate", json={"prompt": "x"}, headers=bearer(key)
    ).json()["request_id"]
    status = client.get(f"/api/v1/music/status/{request_id}", headers=bearer(key))
    assert status.status_code == 200
    body = status.json()
    assert body["status"] == "queued" and body["tracks"] == [] and body["error"] is None
    assert body["created_at"].endswith("Z") and body["completed_at"] is None
    for path in [f"/api/v1/music/status/{request_id}", "/api/v1/music/status/req_nope"]:
        response = client.get(path, headers=bearer(other_key))
        assert response.status_code == 404
        assert_rate_headers(response)
    assert client.get("/api/v1/music/audio/trk_nope.wav", headers=bearer(key)).status_code == 404


def test_account_me_reports_plan_limit_and_usage(client, api) -> None:
    _, key = new_customer(api[1], plan="premier", credits=30)
    client.post(
        "/api/v1/music/generate", json={"prompt": "x", "duration_seconds": 6}, headers=bearer(key)
    )
    me = client.get("/api/v1/account/me", headers=bearer(key)).json()
    assert me["plan"] == "premier" and me["rate_limit_per_minute"] == 1000
    assert me["credits"] == 28
    assert me["usage"] == {
        "requests_this_month": 1,
        "tracks_generated": 0,
        "seconds_generated": 0.0,
    }
    assert set(me) >= {"account_id", "email", "created_at"}


def test_free_plan_is_limited_to_60_per_minute_with_429_and_retry_after(client, api) -> None:
    _, key = new_customer(api[1], plan="free")
    remaining = []
    for _ in range(60):
        response = client.get("/api/v1/account/me", headers=bearer(key))
        assert response.status_code == 200
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
    assert remaining[0] == 59 and remaining[-1] == 0
    assert response.headers["X-RateLimit-Limit"] == "60"
    limited = client.get("/api/v1/account/me", headers=bearer(key))
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert_rate_headers(limited)
    assert limited.json()["detail"].startswith("Rate limit exceeded")
    # another key of another account is not affected
    _, other = new_customer(api[1], plan="free")
    assert client.get("/api/v1/account/me", headers=bearer(other)).status_code == 200


def test_oversized_bodies_are_413_by_content_length_and_by_streamed_count(client, api) -> None:
    _, key = new_customer(api[1])
    big = b'{"prompt": "' + b"x" * (70 * 1024) + b'"}'
    response = client.post(
        "/api/v1/music/generate",
        content=big,
        headers={**bearer(key), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]
    assert_rate_headers(response)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count
        for _ in range(80):
            yield b"x" * 1024

    streamed = client.post(
        "/api/v1/music/generate",
        content=chunks(),
        headers={**bearer(key), "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413


def test_unknown_route_is_json_404_with_rate_headers(client) -> None:
    response = client.get("/api/v1/nope")
    assert response.status_code == 404 and response.json() == {"detail": "Not Found"}
    assert_rate_headers(response)


def test_internal_errors_are_opaque_json_500(tmp_path: Path) -> None:
    chain_path, _ = make_chain(tmp_path)
    settings = make_settings(tmp_path, chain_path)
    with running_api(settings) as server, httpx.Client(base_url=server.url) as http:
        _, key = new_customer(settings)
        # Break the database under the running server: a real failure, not a mock.
        conn = sqlite3.connect(tmp_path / "api.db")
        conn.execute("DROP TABLE tracks")
        conn.commit()
        conn.close()
        response = http.get("/api/v1/account/me", headers=bearer(key))
        assert response.status_code == 500
        assert response.json() == {"detail": "Internal server error"}
        assert "Traceback" not in response.text and "tracks" not in response.text
        assert_rate_headers(response)


def test_health_needs_no_auth_and_reports_db_metagraph_and_queue(client, api) -> None:
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] is True
    assert body["neurons"] == 2 and body["metagraph_age_s"] >= 0
    assert isinstance(body["queue_depth"], int)
    assert_rate_headers(response)
    assert client.get("/openapi.json").status_code == 200
