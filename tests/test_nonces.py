"""Replay stores: in-process and Redis-shared (real Redis, skipped with a reason if absent)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.wallets import make_wallet
from tuneforge.auth.btauth import AuthFailure, sign_request, verify_request
from tuneforge.auth.nonces import MemoryNonceStore, RedisNonceStore, nonce_store_from_url

REDIS_URL = os.environ.get("TUNEFORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_namespace() -> Iterator[str]:
    namespace = f"tuneforge-test:{uuid.uuid4().hex}"
    store = RedisNonceStore(REDIS_URL, namespace=namespace)
    try:
        store.ping()
    except Exception as exc:  # any connection failure means "no Redis here"
        pytest.skip(
            f"Redis not reachable at {REDIS_URL} ({type(exc).__name__}); set "
            "TUNEFORGE_TEST_REDIS_URL to run the shared-store tests"
        )
    yield namespace
    client = store._client
    keys = list(client.scan_iter(f"{namespace}:*"))
    if keys:
        client.delete(*keys)


def test_memory_store_accepts_a_pair_once() -> None:
    store = MemoryNonceStore()
    assert store.check_and_store("5A", 1)
    assert not store.check_and_store("5A", 1)
    assert store.check_and_store("5A", 2)
    assert store.check_and_store("5B", 1)


def test_memory_store_forgets_after_retention() -> None:
    store = MemoryNonceStore(retention_seconds=0.05)
    assert store.check_and_store("5A", 1)
    time.sleep(0.1)
    assert store.check_and_store("5A", 1)


def test_memory_store_size_cap_drops_the_oldest() -> None:
    store = MemoryNonceStore(max_entries=3)
    for nonce in range(4):
        assert store.check_and_store("5A", nonce)
    assert store.check_and_store("5A", 0)  # evicted, so admitted again
    assert not store.check_and_store("5A", 3)


def test_without_url_the_store_is_in_memory() -> None:
    assert isinstance(nonce_store_from_url(None, "ns"), MemoryNonceStore)
    assert isinstance(nonce_store_from_url("", "ns"), MemoryNonceStore)


def test_redis_store_is_shared_between_clients(redis_namespace: str) -> None:
    first = nonce_store_from_url(REDIS_URL, redis_namespace, retention_seconds=60)
    second = RedisNonceStore(REDIS_URL, namespace=redis_namespace, retention_seconds=60)
    assert isinstance(first, RedisNonceStore)
    assert first.check_and_store("5A", 42)
    assert not second.check_and_store("5A", 42)  # another worker sees the replay
    assert second.check_and_store("5A", 43)
    other_namespace = RedisNonceStore(REDIS_URL, namespace=redis_namespace + "-other")
    assert other_namespace.check_and_store("5A", 42)
    other_namespace._client.delete(f"{redis_namespace}-other:5A:42")


def test_redis_store_entries_expire_after_retention(redis_namespace: str) -> None:
    store = RedisNonceStore(REDIS_URL, namespace=redis_namespace, retention_seconds=1)
    assert store.check_and_store("5A", 7)
    ttl = store._client.ttl(f"{redis_namespace}:5A:7")
    assert 0 < ttl <= 1


def test_request_replayed_to_another_worker_is_refused(
    redis_namespace: str, tmp_path: Path
) -> None:
    validator, miner = make_wallet(tmp_path, "v"), make_wallet(tmp_path, "m")
    receiver = miner.hotkey.ss58_address
    headers = sign_request(validator, "GET", "/v1/info", b"", receiver)
    worker_a = RedisNonceStore(REDIS_URL, namespace=redis_namespace)
    worker_b = RedisNonceStore(REDIS_URL, namespace=redis_namespace)
    assert verify_request(headers, b"", "GET", "/v1/info", receiver, worker_a)
    with pytest.raises(AuthFailure) as info:
        verify_request(headers, b"", "GET", "/v1/info", receiver, worker_b)
    assert info.value.kind == "replayed"
