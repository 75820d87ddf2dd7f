"""The one metagraph cache: the same failure rule for every role, and threads by ownership."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from tuneforge.chain.base import Metagraph
from tuneforge.chain.local import LocalChain
from tuneforge.chain.metagraph import MetagraphCache


@pytest.fixture
def chain_path(tmp_path: Path) -> Path:
    path = tmp_path / "chain.sqlite"
    LocalChain.create(path, netuid=7, block_time_s=3600.0).close()  # blocks move only by hand
    with LocalChain(path, netuid=7) as admin:
        admin.register("5Miner", stake=1.0)
    return path


def test_get_reloads_only_once_the_chain_is_max_age_blocks_past_the_snapshot(
    chain_path: Path,
) -> None:
    seen: list[Metagraph] = []
    with LocalChain(chain_path, netuid=7) as chain:
        cache = MetagraphCache(chain, on_refresh=seen.append)
        first = cache.get(max_age_blocks=5)
        chain.advance_blocks(4)
        assert cache.get(max_age_blocks=5) is first and len(seen) == 1
        chain.advance_blocks(1)
        second = cache.get(max_age_blocks=5)
        assert second.block == first.block + 5 and seen == [first, second]
        assert cache.lookup("5Miner") is not None and cache.lookup("5Nobody") is None


def test_refresh_raises_but_the_background_refresher_keeps_the_last_good_snapshot(
    chain_path: Path,
) -> None:
    chain = LocalChain(chain_path, netuid=7)
    cache = MetagraphCache(chain, refresh_s=0.01)
    good = cache.refresh()
    chain.close()  # every later chain call fails
    with pytest.raises(sqlite3.ProgrammingError):  # the closed client
        cache.refresh()
    assert cache.try_refresh() is False
    assert cache.snapshot is good and cache.get() is good
    age = cache.age_s()
    assert age is not None and age >= 0


def test_a_cache_given_a_factory_opens_uses_and_closes_the_chain_on_one_own_thread(
    chain_path: Path,
) -> None:
    threads: set[int] = set()
    opened: list[LocalChain] = []

    class Recording(LocalChain):
        def metagraph(self) -> Metagraph:
            threads.add(threading.get_ident())
            return super().metagraph()

    def factory() -> LocalChain:
        threads.add(threading.get_ident())
        opened.append(Recording(chain_path, netuid=7))
        return opened[0]

    cache = MetagraphCache(factory, refresh_s=60.0)
    assert cache.snapshot is None and not opened  # opened lazily, on the first call
    cache.refresh()
    cache.refresh()
    cache.close()
    assert len(opened) == 1 and len(threads) == 1
    assert threading.get_ident() not in threads
    with pytest.raises(sqlite3.ProgrammingError):  # closed with the cache
        opened[0].metagraph()
