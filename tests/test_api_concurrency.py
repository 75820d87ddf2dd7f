"""Credits never go below zero: 200 concurrent generations against credits for exactly 10,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.api_server import (
    bearer,
    make_chain,
    make_settings,
    new_customer,
    postgres_schema_url,
    running_api,
)
from tuneforge.api.settings import ApiSettings

REQUESTS = 200
AFFORDABLE = 10


async def _burst(base_url: str, key: str) -> Counter[int]:
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        responses = await asyncio.gather(
            *[
                client.post(
                    "/api/v1/music/generate",
                    json={"prompt": f"track {i}", "duration_seconds": 15},
                    headers=bearer(key),
                )
                for i in range(REQUESTS)
            ]
        )
    for response in responses:
        if response.status_code == 402:
            assert response.json() == {
                "detail": "Insufficient credits. You need 5 credits but have 0 remaining."
            }
    return Counter(r.status_code for r in responses)


def _run_burst(settings: ApiSettings) -> None:
    with running_api(settings) as server:
        # premier: 1,000/min, so the rate limit is not what refuses anyone
        _, key = new_customer(settings, plan="premier", credits=5 * AFFORDABLE)
        counts = asyncio.run(_burst(server.url, key))
        assert counts == Counter({201: AFFORDABLE, 402: REQUESTS - AFFORDABLE})
        me = httpx.get(f"{server.url}/api/v1/account/me", headers=bearer(key)).json()
        assert me["credits"] == 0
        assert me["usage"]["requests_this_month"] == AFFORDABLE


@pytest.mark.slow
def test_concurrent_generations_never_overdraw_credits_on_sqlite(tmp_path: Path) -> None:
    chain_path, _ = make_chain(tmp_path)
    _run_burst(make_settings(tmp_path, chain_path))


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    with postgres_schema_url() as url:
        yield url


@pytest.mark.slow
def test_concurrent_generations_never_overdraw_credits_on_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    chain_path, _ = make_chain(tmp_path)
    _run_burst(make_settings(tmp_path, chain_path, database_url=postgres_url))
