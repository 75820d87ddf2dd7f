"""Customer jobs end to end: a customer's request through the real API is claimed by the
validator, served by the best synth miners, scored, delivered and charged, or refunded."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.api_server import bearer, free_port, new_customer
from tests.helpers.metrics_scrape import Samples, parse, value
from tests.helpers.state_tools import fetch_one
from tests.helpers.validator_api import api_on_port, api_settings, wire_api
from tests.helpers.validator_net import ValidatorNet, make_validator_net, synth_miners
from tuneforge.chain.base import Metagraph, Neuron
from tuneforge.core.audio import decode_wav
from tuneforge.core.metrics import render
from tuneforge.core.protocol import CHALLENGE_ID_PATTERN
from tuneforge.scoring.weights import PENALTIES
from tuneforge.validator.challenges import challenge_for_job, job_seed, make_challenge
from tuneforge.validator.jobs import best_miners

JOBS = "tuneforge_validator_jobs_total"


def _generate(client: httpx.Client, api_key: str, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/music/generate", json=body, headers=bearer(api_key))
    assert response.status_code == 201, response.text
    return response.json()


def _status(client: httpx.Client, key: str, request_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/music/status/{request_id}", headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


def _credits(client: httpx.Client, key: str) -> int:
    response = client.get("/api/v1/account/me", headers=bearer(key))
    assert response.status_code == 200, response.text
    return int(response.json()["credits"])


async def _serve_jobs_once(net: ValidatorNet, url: str) -> tuple[int, Samples]:
    """One claim-and-serve pass of an in-process validator, then drain its outbox; checks that
    jobs move no EMA and leave no scoring history."""
    settings = net.settings()
    settings.api.url = url
    settings.api.jobs = True
    loop, state, client = net.build(settings)
    wiring = wire_api(net, loop, url)
    try:
        emas_before = state.miners.emas()
        history = "SELECT (SELECT COUNT(*) FROM embeddings) + (SELECT COUNT(*) FROM fingerprints)"
        history_before = fetch_one(state, history)[0]
        handled = await loop.serve_jobs()
        assert await wiring.publisher.flush(30), "job delivery did not drain"
        assert state.miners.emas() == emas_before
        assert fetch_one(state, history)[0] == history_before
        return handled, parse(render(loop.metrics.registry).decode())
    finally:
        await wiring.api.aclose()
        await client.aclose()
        state.close()


def test_a_customer_job_is_served_by_synth_miners_and_charged(tmp_path: Path) -> None:
    net = make_validator_net(tmp_path)
    settings = api_settings(net)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (
        synth_miners(net, 2) as wallets,
        api_on_port(settings, port),
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        _, key = new_customer(settings, credits=100)
        request = {"prompt": "Calm lo-fi piano with soft drums", "genre": "lo-fi",
                   "duration_seconds": 8, "tempo_bpm": 80, "key": "A minor"}  # fmt: skip
        accepted = _generate(http, key, **request)
        assert accepted["credits_charged"] == 3  # ceil(8 / 3)
        handled, metrics = asyncio.run(_serve_jobs_once(net, url))
        assert handled == 1
        assert value(metrics, JOBS, outcome="served") == 1
        assert value(metrics, "tuneforge_validator_queries_total", purpose="job", outcome="ok") == 2
        status = _status(http, key, accepted["request_id"])
        assert status["status"] == "completed", status
        (track,) = status["tracks"]
        assert track["miner_hotkey"] in {w.hotkey.ss58_address for w in wallets}
        assert len(track["score_breakdown"]) == 16 and set(track["penalties"]) == {
            p.name for p in PENALTIES
        }
        # The best answer by final score; penalties (the copy check between two synth miners
        # with similar output) may zero it, but a track with a positive composite is delivered.
        assert 0 < track["composite"] <= 1 and 0 <= track["score"] <= track["composite"]
        audio = http.get(track["audio_url"], headers=bearer(key))
        assert audio.status_code == 200 and audio.headers["content-type"].startswith("audio/wav")
        clip = decode_wav(audio.content)
        assert clip.duration_seconds == pytest.approx(8.0, abs=0.05)
        assert clip.duration_seconds == pytest.approx(track["duration_seconds"])
        assert _credits(http, key) == 97


def test_variants_are_served_by_distinct_miners_ranked_by_score(tmp_path: Path) -> None:
    net = make_validator_net(tmp_path)
    settings = api_settings(net)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (
        synth_miners(net, 2) as wallets,
        api_on_port(settings, port),
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        _, key = new_customer(settings, credits=100)
        accepted = _generate(http, key, prompt="Bright synth pop", duration_seconds=4, variants=2)
        assert accepted["credits_charged"] == 4  # ceil(4 / 3) x 2 variants
        handled, _ = asyncio.run(_serve_jobs_once(net, url))
        assert handled == 1
        status = _status(http, key, accepted["request_id"])
        assert status["status"] == "completed" and status["variants"] == 2, status
        hotkeys = [t["miner_hotkey"] for t in status["tracks"]]
        assert sorted(hotkeys) == sorted(w.hotkey.ss58_address for w in wallets)
        scores = [t["score"] for t in status["tracks"]]
        assert scores == sorted(scores, reverse=True)


def test_a_job_nobody_can_serve_is_failed_at_once_and_refunded(tmp_path: Path) -> None:
    net = make_validator_net(tmp_path)  # no miners at all
    settings = api_settings(net)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with api_on_port(settings, port), httpx.Client(base_url=url, timeout=10) as http:
        _, key = new_customer(settings, credits=10)
        accepted = _generate(http, key, prompt="Epic orchestral theme", duration_seconds=15)
        assert _credits(http, key) == 5
        handled, metrics = asyncio.run(_serve_jobs_once(net, url))
        assert handled == 1 and value(metrics, JOBS, outcome="no_miners") == 1
        status = _status(http, key, accepted["request_id"])
        assert status["status"] == "failed" and status["refunded"] is True
        assert "no serving miner" in status["error"]
        assert _credits(http, key) == 10


def test_an_unclaimed_job_fails_at_its_deadline_and_is_refunded(tmp_path: Path) -> None:
    net = make_validator_net(tmp_path)
    settings = api_settings(net, job_deadline_s=1.0, sweeper_interval_s=0.2)
    port = free_port()
    with (
        api_on_port(settings, port),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
    ):
        _, key = new_customer(settings, credits=10)
        accepted = _generate(http, key, prompt="Sunny reggae groove", duration_seconds=6)
        assert _credits(http, key) == 8
        deadline = time.monotonic() + 10
        while _status(http, key, accepted["request_id"])["status"] != "failed":
            assert time.monotonic() < deadline, "the API's sweeper never expired the job"
            time.sleep(0.2)
        assert _status(http, key, accepted["request_id"])["refunded"] is True
        assert _credits(http, key) == 10


def test_a_job_looks_like_a_challenge_to_miners() -> None:
    secret = b"s" * 32
    seed = job_seed("5Validator", "req_abc", secret)
    request = {"prompt": "Warm folk song", "genre": "folk", "duration_seconds": 9.0,
               "challenge_id": "ch_" + "0" * 32, "seed": 7, "instruments": ["banjo"]}  # fmt: skip
    job = challenge_for_job(seed, request)
    challenge = make_challenge(seed)
    assert CHALLENGE_ID_PATTERN.match(job.challenge_id)
    # Id and seed come from the validator's seed exactly as for a challenge, never from the API.
    assert (job.challenge_id, job.seed) == (challenge.challenge_id, challenge.seed)
    assert job.model_dump().keys() == challenge.model_dump().keys()
    assert (job.prompt, job.genre, job.instruments) == ("Warm folk song", "folk", ["banjo"])
    assert job_seed("5Validator", "req_abd", secret) != seed


def _neuron(uid: int, axon: str | None = "127.0.0.1:1") -> Neuron:
    return Neuron(uid, f"5Hotkey{uid}", "", 0.0, False, axon, 0)


def test_jobs_go_to_the_best_emas_and_fall_back_to_any_serving_miner() -> None:
    metagraph = Metagraph(
        234, 10, (_neuron(0), _neuron(1), _neuron(2), _neuron(3, axon=None), _neuron(4))
    )
    emas = {(1, "5Hotkey1"): 0.9, (2, "5Hotkey2"): 0.4, (3, "5Hotkey3"): 0.99}
    seed = hashlib.sha256(b"x").digest()
    chosen = best_miners(metagraph, "5Hotkey0", emas, 2, seed)
    assert [n.uid for n in chosen] == [1, 2]  # uid 3 does not serve, uid 0 is ourselves
    fallback = best_miners(metagraph, "5Hotkey0", emas, 3, seed)
    assert [n.uid for n in fallback] == [1, 2, 4]
    assert best_miners(metagraph, "5Hotkey0", {}, 5, seed) != []
