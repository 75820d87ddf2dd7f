"""Two API instances sharing one Redis share nonce replay protection and rate limits."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bittensor.sp_core import Keypair

from tests.helpers.api_server import ServerThread, make_chain, make_settings
from tuneforge.api.app import create_app
from tuneforge.auth.hotkey import sign_hotkey_headers
from tuneforge.chain.local import LocalChain

REDIS_URL = os.environ.get("TUNEFORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PATH = "/api/v1/scores/best"


@pytest.fixture()
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")
    return REDIS_URL


@pytest.fixture()
def two_instances(tmp_path: Path, redis_url: str) -> Iterator[tuple[str, str, Path]]:
    chain_path, _ = make_chain(tmp_path)
    settings = make_settings(
        tmp_path, chain_path, redis_url=redis_url, hotkey_rate_limit_per_minute=4
    )
    with ServerThread(create_app(settings)) as first, ServerThread(create_app(settings)) as second:
        yield first.url, second.url, chain_path


def fresh_neuron(chain_path: Path) -> Keypair:
    """A hotkey never used before, so counts left in Redis by earlier runs cannot interfere."""
    keypair = Keypair.create_from_uri(f"//RedisNeuron{time.time_ns()}")
    chain = LocalChain(chain_path)
    chain.register(keypair.ss58_address)
    chain.close()
    return keypair


def wait_until_known(url: str, neurons: int) -> None:
    """Wait for the background metagraph refresh (health reports the neuron count)."""
    deadline = time.monotonic() + 5
    while httpx.get(url + "/api/v1/health").json()["neurons"] != neurons:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_nonce_used_on_one_instance_is_refused_on_the_other(two_instances) -> None:
    first, second, chain_path = two_instances
    neuron = fresh_neuron(chain_path)
    wait_until_known(first, 3)
    wait_until_known(second, 3)
    headers = sign_hotkey_headers(neuron, "GET", PATH)
    assert httpx.get(first + PATH, headers=headers).status_code == 200
    replay = httpx.get(second + PATH, headers=headers)
    assert replay.status_code == 401 and replay.json() == {"detail": "Nonce already used"}


def test_the_hotkey_rate_limit_is_shared_across_instances(two_instances) -> None:
    first, second, chain_path = two_instances
    neuron = fresh_neuron(chain_path)
    wait_until_known(first, 3)
    wait_until_known(second, 3)
    remaining = []
    for url in (first, second, first, second):
        response = httpx.get(url + PATH, headers=sign_hotkey_headers(neuron, "GET", PATH))
        assert response.status_code == 200
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
    assert remaining == [3, 2, 1, 0]
    for url in (first, second):
        limited = httpx.get(url + PATH, headers=sign_hotkey_headers(neuron, "GET", PATH))
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["X-RateLimit-Limit"] == "4"
