"""The reserve step is hostile input like any answer: a miner cannot hang, crash or flood the
validator through it, and a miner without it is still asked the one-shot way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import bittensor as bt
import pytest
from bittensor.http_auth import HEADER_HOTKEY, HEADER_RECEIVER
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.helpers.miner_server import serve_app
from tests.helpers.validator_fake_miners import tone_wav
from tests.helpers.wallets import make_wallet
from tuneforge.auth.btauth import sign_response
from tuneforge.chain.base import Neuron
from tuneforge.core.protocol import GENERATE_PATH, HEADER_SLOT, RESERVE_PATH
from tuneforge.validator.challenges import make_challenge, round_seed
from tuneforge.validator.query import MinerClient, QueryOutcome

# behaviour -> expected failure code (None: a valid answer)
BEHAVIOURS: dict[str, str | None] = {
    "no_reserve": None,  # an old miner: 404 on /v1/reserve
    "slotted": None,
    "reserve_hangs": "timeout",
    "reserve_garbage": "bad_slot",
    "reserve_flood": "bad_slot",
    "reserve_busy": "http_status",
    "slot_refused": "http_status",
}
SLOT = "ab" * 16


async def _endless() -> AsyncIterator[bytes]:
    while True:
        yield b"{" * 65_536
        await asyncio.sleep(0)


def _app(wallets: dict[str, bt.Wallet], seen: list[tuple[str, str | None]]) -> FastAPI:
    app = FastAPI()

    def behaviour(request: Request) -> str:
        receiver = request.headers.get(HEADER_RECEIVER, "")
        return next(b for b, w in wallets.items() if w.hotkey.ss58_address == receiver)

    @app.post(RESERVE_PATH)
    async def reserve(request: Request) -> Response:
        kind = behaviour(request)
        if kind == "no_reserve":
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        if kind == "reserve_hangs":
            await asyncio.sleep(3.0)
        if kind == "reserve_garbage":
            return Response(b"<html>hello</html>", media_type="text/html")
        if kind == "reserve_flood":
            return StreamingResponse(_endless(), media_type="application/json")
        if kind == "reserve_busy":
            return JSONResponse({"detail": "queue full"}, status_code=503)
        return JSONResponse({"slot": SLOT, "ttl_s": 10.0})

    @app.post(GENERATE_PATH)
    async def generate(request: Request) -> Response:
        kind = behaviour(request)
        slot = request.headers.get(HEADER_SLOT)
        seen.append((kind, slot))
        if kind == "slot_refused":
            return JSONResponse({"detail": "unknown slot"}, status_code=409)
        wav = tone_wav(2.0)
        caller = request.headers.get(HEADER_HOTKEY, "")
        headers = sign_response(wallets[kind], "POST", GENERATE_PATH, wav, caller)
        return Response(wav, media_type="audio/wav", headers=headers)

    return app


@pytest.fixture(scope="module")
def miners(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    tmp_path: Path = tmp_path_factory.mktemp("slots")
    wallets = {b: make_wallet(tmp_path, f"slot-{b}") for b in BEHAVIOURS}
    seen: list[tuple[str, str | None]] = []
    with serve_app(_app(wallets, seen)) as url:
        yield wallets, seen, url.removeprefix("http://"), make_wallet(tmp_path, "validator")


async def _ask(miners: tuple, kind: str) -> QueryOutcome:
    wallets, _, axon, validator = miners
    neuron = Neuron(0, wallets[kind].hotkey.ss58_address, "", 0.0, False, axon, 0)
    client = MinerClient(validator, max_response_bytes=8 * 1024 * 1024, max_audio_seconds=60.0)
    try:
        challenge = make_challenge(round_seed("v", 1, b"k"), 2, 2)
        [outcome] = await client.query_many([neuron], challenge, deadline_s=1.5)
    finally:
        await client.aclose()
    return outcome


@pytest.mark.parametrize("kind", list(BEHAVIOURS))
async def test_each_reserve_behaviour_ends_in_one_outcome(miners: tuple, kind: str) -> None:
    outcome = await _ask(miners, kind)
    assert outcome.code == BEHAVIOURS[kind], outcome.facts()
    if kind == "reserve_hangs":
        assert outcome.wait_ms < 2_500  # bounded by the deadline, not by the miner
    if kind == "no_reserve":
        assert outcome.ok and not outcome.slotted
        assert (kind, None) in miners[1]  # asked the one-shot way, without a slot
    if kind == "slotted":
        assert outcome.ok and outcome.slotted and (kind, SLOT) in miners[1]
