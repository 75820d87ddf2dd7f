"""What returning customers use, over the real API on SQLite and PostgreSQL: variants, votes and
the validators' preference feed, Idempotency-Key, signed webhooks with retries, audio formats."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import soundfile as sf

from tests.helpers.api_server import (
    Neurons,
    ServerThread,
    bearer,
    make_chain,
    make_settings,
    new_customer,
    postgres_schema_url,
    running_api,
    signed_request,
)
from tests.helpers.customer_jobs import complete
from tuneforge.api import webhooks
from tuneforge.api.settings import ApiSettings


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory) -> Iterator[tuple[ServerThread, ApiSettings, Neurons]]:
    tmp = tmp_path_factory.mktemp(f"returning_{request.param}")
    chain_path, neurons = make_chain(tmp)
    with ExitStack() as stack:
        extra: dict[str, Any] = {}
        if request.param == "postgresql":
            extra["database_url"] = stack.enter_context(postgres_schema_url())
        settings = make_settings(
            tmp,
            chain_path,
            # A loopback receiver is only reachable with the localnet/test setting on.
            webhook_allow_private=True,
            webhook_retry_base_s=0.2,
            webhook_poll_s=0.1,
            **extra,
        )
        yield stack.enter_context(running_api(settings)), settings, neurons


@pytest.fixture()
def client(api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api[0].url, timeout=20) as http:
        yield http


def generate(client: httpx.Client, key: str, **fields: Any) -> httpx.Response:
    body = {"prompt": "a calm piano piece", "duration_seconds": 3, **fields}
    return client.post("/api/v1/music/generate", json=body, headers=bearer(key))


def status(client: httpx.Client, key: str, request_id: str) -> dict[str, Any]:
    return client.get(f"/api/v1/music/status/{request_id}", headers=bearer(key)).json()


def credits(client: httpx.Client, key: str) -> int:
    return client.get("/api/v1/account/me", headers=bearer(key)).json()["credits"]


def test_variants_charge_per_track_rank_by_score_and_refund_what_was_not_delivered(
    client, api
) -> None:
    _, key = new_customer(api[1], credits=10)
    accepted = generate(client, key, variants=3)
    assert accepted.status_code == 201 and accepted.json()["credits_charged"] == 3
    assert generate(client, key, variants=5).status_code == 400
    request_id = accepted.json()["request_id"]
    complete(client, api[2].validator, request_id, [0.4, 0.9])
    body = status(client, key, request_id)
    assert body["variants"] == 3 and body["status"] == "completed"
    assert [t["score"] for t in body["tracks"]] == [0.9, 0.4]  # best first
    assert body["credits_refunded"] == 1  # one variant missing: one track's credits back
    assert credits(client, key) == 10 - 3 + 1


def test_votes_are_owner_only_idempotent_and_feed_the_validators(client, api) -> None:
    validator, reader = api[2].validator, api[2].reader
    _, key = new_customer(api[1], credits=20)
    _, stranger = new_customer(api[1], credits=20)
    first = generate(client, key, variants=2).json()["request_id"]
    other = generate(client, key).json()["request_id"]
    a, b = complete(client, validator, first, [0.5, 0.6])
    (c,) = complete(client, validator, other, [0.7])

    up = client.post(f"/api/v1/music/tracks/{a}/vote", json={"vote": "up"}, headers=bearer(key))
    assert up.status_code == 201 and up.json()["vote"] == "up"
    again = client.post(f"/api/v1/music/tracks/{a}/vote", json={"vote": "up"}, headers=bearer(key))
    assert again.status_code == 200 and again.json()["vote_id"] == up.json()["vote_id"]
    changed = client.post(
        f"/api/v1/music/tracks/{a}/vote", json={"vote": "down"}, headers=bearer(key)
    )
    assert changed.status_code == 409
    foreign = client.post(
        f"/api/v1/music/tracks/{a}/vote", json={"vote": "up"}, headers=bearer(stranger)
    )
    assert foreign.status_code == 404
    bad = client.post(f"/api/v1/music/tracks/{a}/vote", json={"vote": "meh"}, headers=bearer(key))
    assert bad.status_code == 400

    pair = {"winner": b, "loser": a}
    won = client.post("/api/v1/music/compare", json=pair, headers=bearer(key))
    assert won.status_code == 201 and won.json()["winner"] == b
    repeat = client.post("/api/v1/music/compare", json=pair, headers=bearer(key))
    assert repeat.status_code == 200 and repeat.json()["vote_id"] == won.json()["vote_id"]
    flipped = client.post(
        "/api/v1/music/compare", json={"winner": a, "loser": b}, headers=bearer(key)
    )
    assert flipped.status_code == 409
    assert (
        client.post("/api/v1/music/compare", json=pair, headers=bearer(stranger)).status_code == 404
    )
    across = client.post(
        "/api/v1/music/compare", json={"winner": a, "loser": c}, headers=bearer(key)
    )
    assert across.status_code == 400

    assert client.get("/api/v1/preferences").status_code == 401
    feed = signed_request(client, reader, "GET", "/api/v1/preferences", params={"limit": 1000})
    assert feed.status_code == 200
    mine = [p for p in feed.json()["preferences"] if p["request_id"] == first]
    assert [p["kind"] for p in mine] == ["up", "compare"]
    assert mine[1]["winner"]["track_id"] == b and mine[1]["loser"]["track_id"] == a
    assert mine[0]["voter"] == mine[1]["voter"] and "acc_" not in json.dumps(mine)
    # Validators embed the audio themselves: a voted track downloads with a signature...
    url = mine[1]["winner"]["audio_url"]
    audio = signed_request(client, reader, "GET", url)
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
    # ... a track nobody voted on does not.
    assert signed_request(client, reader, "GET", f"/api/v1/music/audio/{c}.wav").status_code == 404


def test_votes_are_rate_limited_per_account(api) -> None:
    with httpx.Client(base_url=api[0].url, timeout=20) as client:
        _, key = new_customer(api[1], credits=5)
        limit = api[1].votes_per_minute
        codes = [
            client.post(
                "/api/v1/music/tracks/trk_nope/vote", json={"vote": "up"}, headers=bearer(key)
            ).status_code
            for _ in range(limit + 1)
        ]
    assert codes[:limit] == [404] * limit and codes[-1] == 429


def test_an_idempotency_key_replays_the_same_body_and_refuses_another(client, api) -> None:
    _, key = new_customer(api[1], credits=20)
    headers = {**bearer(key), "Idempotency-Key": "order-1234"}
    body = {"prompt": "a calm piano piece", "duration_seconds": 3}
    first = client.post("/api/v1/music/generate", json=body, headers=headers)
    second = client.post("/api/v1/music/generate", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json()["request_id"] == first.json()["request_id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert credits(client, key) == 19
    other = client.post(
        "/api/v1/music/generate", json={**body, "prompt": "loud techno"}, headers=headers
    )
    assert other.status_code == 409
    _, someone = new_customer(api[1], credits=20)
    theirs = client.post(
        "/api/v1/music/generate",
        json=body,
        headers={**bearer(someone), "Idempotency-Key": "order-1234"},
    )
    assert theirs.status_code == 201 and theirs.json()["request_id"] != first.json()["request_id"]


async def _same_key_burst(base_url: str, key: str, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    headers = {**bearer(key), "Idempotency-Key": "burst-1"}
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
        return await asyncio.gather(
            *[
                client.post(
                    "/api/v1/music/generate",
                    json={"prompt": "the same track", "duration_seconds": 15},
                    headers=headers,
                )
                for _ in range(n)
            ]
        )


def test_200_concurrent_generates_with_one_idempotency_key_charge_once(client, api) -> None:
    # premier: 1,000/min, so the rate limit refuses nobody; credits for one job and a bit.
    _, key = new_customer(api[1], plan="premier", credits=7)
    responses = asyncio.run(_same_key_burst(api[0].url, key, 200))
    assert {r.status_code for r in responses} == {201}, {r.status_code for r in responses}
    assert len({r.json()["request_id"] for r in responses}) == 1
    assert credits(client, key) == 2
    me = client.get("/api/v1/account/me", headers=bearer(key)).json()
    assert me["usage"]["requests_this_month"] == 1


class _Receiver:
    """A webhook endpoint on loopback: answers 500 to the first POST, then 200."""

    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.seen.append((dict(self.headers), body))
                self.send_response(500 if len(receiver.seen) == 1 else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/tuneforge"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_a_loopback_receiver_verifies_the_signature_and_sees_the_retry_after_a_500(
    client, api
) -> None:
    _, key = new_customer(api[1], credits=20)
    receiver = _Receiver()
    try:
        no_secret = generate(client, key, callback_url=receiver.url)
        assert no_secret.status_code == 400 and "webhook-secret" in no_secret.json()["detail"]
        made = client.post("/api/v1/account/webhook-secret", headers=bearer(key))
        assert made.status_code == 201
        secret = made.json()["webhook_secret"]
        request_id = generate(client, key, callback_url=receiver.url).json()["request_id"]
        complete(client, api[2].validator, request_id, [0.8])
        deadline = time.monotonic() + 20
        while len(receiver.seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        receiver.close()
    assert len(receiver.seen) == 2
    for headers, body in receiver.seen:
        assert webhooks.verify(secret, headers, body)
        assert not webhooks.verify(secret, headers, body + b" ")
        assert headers[webhooks.HEADER_EVENT] == "job.completed"
        sent = json.loads(body)
        assert sent["request_id"] == request_id and sent["status"] == "completed"
        assert sent["tracks"][0]["score"] == 0.8
    log = client.get(
        "/api/v1/music/webhooks/deliveries", params={"request_id": request_id}, headers=bearer(key)
    ).json()["deliveries"]
    assert len(log) == 1
    assert log[0]["status"] == "delivered" and log[0]["attempts"] == 2
    assert log[0]["last_status_code"] == 200 and log[0]["url"] == receiver.url


def test_audio_downloads_as_wav_flac_and_mp3_of_the_same_duration(client, api) -> None:
    _, key = new_customer(api[1], credits=20)
    request_id = generate(client, key).json()["request_id"]
    (track_id,) = complete(client, api[2].validator, request_id, [0.8], seconds=2.0)
    wav = client.get(f"/api/v1/music/audio/{track_id}.wav", headers=bearer(key))
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    reference = sf.info(io.BytesIO(wav.content)).duration
    for fmt, media in [("flac", "audio/flac"), ("mp3", "audio/mpeg")]:
        for url, params in [(f"{track_id}.{fmt}", {}), (f"{track_id}.wav", {"format": fmt})]:
            got = client.get(f"/api/v1/music/audio/{url}", params=params, headers=bearer(key))
            assert got.status_code == 200 and got.headers["content-type"] == media
            assert int(got.headers["content-length"]) == len(got.content)
            data, rate = sf.read(io.BytesIO(got.content))
            # MP3 frames pad the ends by a few ms at most; FLAC is exact.
            assert abs(len(data) / rate - reference) < (0.06 if fmt == "mp3" else 1e-6)
    flac_url = f"/api/v1/music/audio/{track_id}.flac"
    first = client.get(flac_url, headers=bearer(key))
    etag = first.headers["etag"]
    cached = client.get(flac_url, headers={**bearer(key), "If-None-Match": etag})
    assert cached.status_code == 304
    part = client.get(flac_url, headers={**bearer(key), "Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == first.content[:100]
    assert part.headers["content-length"] == "100"
    _, stranger = new_customer(api[1])
    assert client.get(flac_url, headers=bearer(stranger)).status_code == 404
    assert client.get(f"/api/v1/music/audio/{track_id}.ogg", headers=bearer(key)).status_code in (
        400,
        404,
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # not https
        "https://127.0.0.1/hook",  # loopback
        "https://10.1.2.3/hook",  # private
        "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
        "https://[::1]/hook",
        "https://user:pw@example.com/hook",
        "https://localhost/hook",
    ],
)
def test_callbacks_to_private_or_plain_http_targets_are_refused(url: str) -> None:
    with pytest.raises(webhooks.BadCallback):
        webhooks.resolve_callback(url, allow_private=False)


def test_a_callback_to_a_private_address_is_refused_by_the_api_with_the_setting_off(
    tmp_path,
) -> None:
    chain_path, neurons = make_chain(tmp_path)
    settings = make_settings(tmp_path, chain_path)
    assert settings.webhook_allow_private is False
    with running_api(settings) as server, httpx.Client(base_url=server.url, timeout=20) as client:
        _, key = new_customer(settings, credits=20)
        client.post("/api/v1/account/webhook-secret", headers=bearer(key))
        for url in ("http://127.0.0.1:9/hook", "https://127.0.0.1/hook", "https://10.0.0.7/x"):
            refused = generate(client, key, callback_url=url)
            assert refused.status_code == 400, url
        assert credits(client, key) == 20


def test_a_queued_callback_is_checked_again_at_send_time_and_backs_off(tmp_path) -> None:
    """A URL that passed at accept but resolves privately when sent (DNS rebinding, or a
    setting turned off since) is not contacted: the attempt fails and is retried later."""
    from datetime import timedelta

    from tuneforge.api.accounts import create_account
    from tuneforge.api.db import Database, upgrade
    from tuneforge.api.models import JOB_FAILED, GenerationRequest, WebhookDelivery, utcnow

    receiver = _Receiver()
    db = Database.open(f"sqlite:///{tmp_path / 'api.db'}")
    try:
        upgrade(db)
        account = create_account(db, "hooks@example.com", "free", 0)
        webhooks.rotate_secret(db, account.id)
        now = utcnow()
        with db.write() as session:
            session.add(
                GenerationRequest(
                    id="req_rebound",
                    account_id=account.id,
                    api_key_id="key_x",
                    status=JOB_FAILED,
                    challenge={},
                    duration_seconds=3.0,
                    credits_charged=1,
                    refunded=True,
                    created_at=now,
                    updated_at=now,
                    deadline_at=now,
                    attempts=0,
                    variants=1,
                    credits_refunded=0,
                    callback_url=receiver.url,
                )  # fmt: skip
            )
            session.flush()
            webhooks.enqueue(session, "req_rebound", JOB_FAILED, now)
        policy = webhooks.WebhookPolicy(False, 2.0, 3, 10.0, 3600.0)
        sender = webhooks.WebhookSender(db, policy)
        assert sender.run_once(now) == 1
        (row,) = sender.deliveries(account.id, "req_rebound", 10)
        assert row["status"] == "pending" and row["attempts"] == 1
        assert row["last_error"].startswith("callback_url") and receiver.seen == []
        with db.read() as session:
            due = session.get(WebhookDelivery, row["delivery_id"]).next_attempt_at
        assert due >= now + timedelta(seconds=9)  # retried after the base backoff, not at once
        assert sender.run_once(now) == 0
    finally:
        receiver.close()
        db.dispose()
    assert [webhooks.backoff_s(n, policy) for n in (1, 2, 3)] == [10.0, 20.0, 40.0]
