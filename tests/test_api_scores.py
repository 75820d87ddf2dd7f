"""Scoring analytics and validator publication over real HTTP with hotkey signatures."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
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
from tuneforge.api.settings import ApiSettings
from tuneforge.auth.hotkey import sign_hotkey_headers
from tuneforge.chain.local import LocalChain

MINER = Keypair.create_from_uri("//ScoresMiner").ss58_address
MINER2 = Keypair.create_from_uri("//ScoresMiner2").ss58_address


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerThread, ApiSettings, Neurons]]:
    tmp = tmp_path_factory.mktemp("api_scores")
    chain_path, neurons = make_chain(tmp)
    settings = make_settings(tmp, chain_path)
    with running_api(settings) as server:
        yield server, settings, neurons


@pytest.fixture()
def client(api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api[0].url, timeout=10) as http:
        yield http


def result(
    track_id: str, final: float, audio: bytes, miner: str = MINER, uid: int = 3
) -> dict[str, Any]:
    return {
        "track_id": track_id,
        "miner_uid": uid,
        "miner_hotkey": miner,
        "final_score": final,
        "composite": min(1.0, final + 0.05),
        "score_breakdown": {"clap": final, "melody": 0.5},
        "penalties": {"duration_penalty": 1.0, "fad_penalty": 0.95},
        "generation_ms": 1234.4,
        "audio_sha256": hashlib.sha256(audio).hexdigest(),
        "duration_seconds": 0.25,
        "sample_rate": 32000,
    }


def round_body(results: list[dict[str, Any]], genre: str = "jazz") -> dict[str, Any]:
    return {
        "round_id": str(uuid.uuid4()),
        "block": 42,
        "challenge": {"prompt": "smooth jazz", "genre": genre, "duration_seconds": 0.25},
        "results": results,
    }


def publish(client: httpx.Client, keypair: Any, body: dict[str, Any]) -> httpx.Response:
    return signed_request(client, keypair, "POST", "/api/v1/scores", json.dumps(body).encode())


def uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def test_publishing_a_round_is_idempotent_and_different_content_is_409(client, api) -> None:
    neurons = api[2]
    audio = wav_bytes(freq=300)
    body = round_body([result(uid("t"), 0.7, audio), result(uid("t"), 0.4, audio, MINER2, 4)])
    first = publish(client, neurons.validator, body)
    assert first.status_code == 201, first.text
    retry = publish(client, neurons.validator, body)
    assert retry.status_code == 200 and retry.json() == first.json()
    assert first.json()["track_ids"] == [r["track_id"] for r in body["results"]]
    changed = json.loads(json.dumps(body))
    changed["results"][0]["final_score"] = 0.1
    conflict = publish(client, neurons.validator, changed)
    assert conflict.status_code == 409 and "different content" in conflict.json()["detail"]
    # the same track id in another round is a conflict too
    other_round = round_body([result(body["results"][0]["track_id"], 0.5, audio)])
    assert publish(client, neurons.validator, other_round).status_code == 409
    # invalid content is 400
    bad = round_body([result(uid("t"), 1.5, audio)])
    assert publish(client, neurons.validator, bad).status_code == 400


def test_simultaneous_identical_publications_are_both_answered_as_success(client, api) -> None:
    from concurrent.futures import ThreadPoolExecutor

    neurons = api[2]
    audio = wav_bytes(freq=320)
    for _ in range(3):  # the race is timing-dependent: try it a few times
        body = round_body([result(uid("t"), 0.6, audio), result(uid("t"), 0.3, audio)])
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(lambda b: publish(client, neurons.validator, b), [body] * 4))
        codes = sorted(answer.status_code for answer in answers)
        assert codes == [200, 200, 200, 201], [a.text for a in answers]
        assert len({json.dumps(a.json(), sort_keys=True) for a in answers}) == 1


def test_a_reader_without_permit_is_refused_on_every_write_endpoint(client, api) -> None:
    reader = api[2].reader
    audio = wav_bytes()
    digest = hashlib.sha256(audio).hexdigest()
    writes = [
        ("POST", "/api/v1/scores", json.dumps(round_body([result(uid("t"), 0.5, audio)])).encode()),
        ("PUT", "/api/v1/scores/audio/trk_x", audio),
        ("PUT", f"/api/v1/validator/audio/{digest}", audio),
        ("POST", "/api/v1/validator/jobs/claim", b'{"max_jobs": 1}'),
        ("POST", "/api/v1/validator/jobs/req_x/result", b'{"tracks": []}'),
    ]
    for method, path, body in writes:
        response = signed_request(client, reader, method, path, body)
        assert response.status_code == 403, (path, response.text)
        assert response.json() == {"detail": "Hotkey has no validator permit"}
    for path in ["/api/v1/scores/best", "/api/v1/scores/miners", "/api/v1/scores/export"]:
        assert signed_request(client, reader, "GET", path).status_code == 200


def test_signature_failures_over_http(client, api) -> None:
    neurons = api[2]
    path = "/api/v1/scores/best"
    headers = sign_hotkey_headers(neurons.reader, "GET", path)
    assert client.get(path, headers=headers).status_code == 200
    replay = client.get(path, headers=headers)
    assert replay.status_code == 401 and replay.json() == {"detail": "Nonce already used"}
    assert replay.headers["X-RateLimit-Limit"].isdigit()
    stale = sign_hotkey_headers(neurons.reader, "GET", path, nonce_ns=time.time_ns() - 400 * 10**9)
    assert client.get(path, headers=stale).status_code == 401
    wrong_path = sign_hotkey_headers(neurons.reader, "GET", "/api/v1/scores/miners")
    assert client.get(path, headers=wrong_path).status_code == 401
    body = json.dumps(round_body([result(uid("t"), 0.5, wav_bytes())])).encode()
    tampered = sign_hotkey_headers(neurons.validator, "POST", "/api/v1/scores", body)
    response = client.post(
        "/api/v1/scores",
        content=body.replace(b"0.5", b"0.9"),
        headers={**tampered, "Content-Type": "application/json"},
    )
    assert response.status_code == 401 and response.json()["detail"] == "Invalid signature"
    stranger = signed_request(client, neurons.stranger, "GET", path)
    assert stranger.status_code == 403
    assert stranger.json() == {"detail": "Hotkey is not registered on the subnet"}
    assert client.get(path).status_code == 401
    # an API key does not open neuron endpoints
    assert client.get(path, headers=bearer("tf_" + "b" * 43)).status_code == 401


def test_a_newly_registered_hotkey_is_admitted_after_the_background_refresh(client, api) -> None:
    newcomer = Keypair.create_from_uri(f"//Newcomer{time.time_ns()}")
    assert signed_request(client, newcomer, "GET", "/api/v1/scores/best").status_code == 403
    chain = LocalChain(api[1].localnet.path)
    chain.register(newcomer.ss58_address)
    chain.close()
    deadline = time.monotonic() + 5
    while signed_request(client, newcomer, "GET", "/api/v1/scores/best").status_code != 200:
        assert time.monotonic() < deadline, "metagraph was not refreshed in the background"
        time.sleep(0.2)


def test_published_audio_upload_checks_the_hash_and_serves_signed_neurons(client, api) -> None:
    neurons = api[2]
    audio = wav_bytes(freq=500)
    track_id = uid("trk")
    assert (
        publish(client, neurons.validator, round_body([result(track_id, 0.6, audio)])).status_code
        == 201
    )
    path = f"/api/v1/scores/audio/{track_id}"
    listen = f"/api/v1/music/audio/{track_id}.wav"
    assert signed_request(client, neurons.reader, "GET", listen).status_code == 404  # not yet
    # Signed over the bytes sent, which are not the published audio: the signature is checked
    # over the published hash before the body is read, so it cannot verify.
    other = wav_bytes(freq=501)
    mismatch = signed_request(client, neurons.validator, "PUT", path, other, "audio/wav")
    assert mismatch.status_code == 401 and "signature" in mismatch.json()["detail"]
    # Signed over the published hash, but other bytes sent: refused once they hash differently.
    headers = sign_hotkey_headers(neurons.validator, "PUT", path, audio)
    swapped = client.put(path, content=other, headers={**headers, "Content-Type": "audio/wav"})
    assert swapped.status_code == 409 and "does not match" in swapped.json()["detail"]
    first = signed_request(client, neurons.validator, "PUT", path, audio, "audio/wav")
    assert first.status_code == 201
    assert first.json()["audio_sha256"] == hashlib.sha256(audio).hexdigest()
    again = signed_request(client, neurons.validator, "PUT", path, audio, "audio/wav")
    assert again.status_code == 200
    unknown = signed_request(client, neurons.validator, "PUT", "/api/v1/scores/audio/nope", audio)
    assert unknown.status_code == 404
    download = signed_request(client, neurons.reader, "GET", listen)
    assert download.status_code == 200 and download.content == audio
    assert download.headers["content-type"] == "audio/wav"
    # customers cannot fetch challenge tracks with an API key
    _, key = new_customer(api[1])
    assert client.get(listen, headers=bearer(key)).status_code == 404


def test_non_wav_upload_with_matching_hash_is_400(client, api) -> None:
    neurons = api[2]
    not_wav = b"not a wav file at all, but hashed honestly" * 2
    track = result(uid("trk"), 0.5, not_wav)
    assert publish(client, neurons.validator, round_body([track])).status_code == 201
    response = signed_request(
        client, neurons.validator, "PUT", f"/api/v1/scores/audio/{track['track_id']}", not_wav
    )
    assert response.status_code == 400


def test_best_leaderboard_miner_and_export(client, api) -> None:
    neurons = api[2]
    audio = wav_bytes(freq=700)
    genre = uid("g")
    tracks = [
        result(uid("t"), score, audio, MINER if i % 2 else MINER2, 3 + i % 2)
        for i, score in enumerate([0.91, 0.92, 0.93, 0.94, 0.95])
    ]
    assert publish(client, neurons.validator, round_body(tracks, genre=genre)).status_code == 201

    best = signed_request(
        client, neurons.reader, "GET", "/api/v1/scores/best", params={"limit": 3, "genre": genre}
    ).json()["tracks"]
    assert [t["final_score"] for t in best] == [0.95, 0.94, 0.93]
    top = best[0]
    assert top["score_breakdown"]["clap"] == 0.95 and top["penalties"]["fad_penalty"] == 0.95
    assert top["composite"] == 1.0 and top["validator_hotkey"] == neurons.validator.ss58_address
    assert top["generation_ms"] == 1234  # whole milliseconds
    assert top["challenge"]["genre"] == genre
    assert top["audio_url"] == f"/api/v1/music/audio/{top['track_id']}.wav"

    miners = signed_request(client, neurons.reader, "GET", "/api/v1/scores/miners").json()["miners"]
    by_hotkey = {m["miner_hotkey"]: m for m in miners}
    assert by_hotkey[MINER]["tracks_scored"] >= 2
    assert set(by_hotkey[MINER]["scorer_means"]) == {"clap", "melody"}
    assert by_hotkey[MINER]["ema_final_score"] is not None and by_hotkey[MINER]["last_seen"]

    one = signed_request(client, neurons.reader, "GET", f"/api/v1/scores/miners/{MINER}")
    assert one.status_code == 200 and all(r["miner_hotkey"] == MINER for r in one.json()["results"])
    nobody = Keypair.create_from_uri("//Nobody").ss58_address
    assert (
        signed_request(client, neurons.reader, "GET", f"/api/v1/scores/miners/{nobody}").status_code
        == 404
    )

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = signed_request(client, neurons.reader, "GET", "/api/v1/scores/export", params=params)
        assert page.status_code == 200
        data = page.json()
        assert len(data["items"]) <= 2
        seen += [item["track_id"] for item in data["items"]]
        pages += 1
        cursor = data["next_cursor"]
        if cursor is None:
            break
        assert not cursor.isdigit()  # opaque
    assert len(seen) == len(set(seen)) and {t["track_id"] for t in tracks} <= set(seen)
    assert pages >= 3
    future = signed_request(
        client,
        neurons.reader,
        "GET",
        "/api/v1/scores/export",
        params={"since": "2999-01-01T00:00:00Z"},
    ).json()
    assert future == {"items": [], "next_cursor": None, "base_url": api[0].url}
    bad = signed_request(
        client, neurons.reader, "GET", "/api/v1/scores/export", params={"cursor": "!!!"}
    )
    assert bad.status_code == 400
    too_many = signed_request(
        client, neurons.reader, "GET", "/api/v1/scores/export", params={"limit": 501}
    )
    assert too_many.status_code == 400
