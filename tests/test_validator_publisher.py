"""Publishing rounds to the real API through the crash-safe outbox: ordering, outages, SIGKILL,
permanent refusals and the outbox bound."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from loguru import logger

from tests.helpers.api_server import free_port, signed_request
from tests.helpers.metrics_scrape import parse, value
from tests.helpers.miner_server import serve_app
from tests.helpers.state_tools import enqueue, peek
from tests.helpers.validator_api import ApiRows, api_on_port, api_rows, api_settings, wire_api
from tests.helpers.validator_fake_miners import (
    fake_miner_app,
    make_fake_miners,
    register_fake_miners,
)
from tests.helpers.validator_net import ValidatorNet, make_validator_net, synth_miners
from tuneforge.core.audio import decode_wav
from tuneforge.core.metrics import render
from tuneforge.core.publication import ROUND_RESULT, TRACK_AUDIO
from tuneforge.scoring.weights import PENALTIES
from tuneforge.validator.api_client import ApiClient
from tuneforge.validator.metrics import ValidatorMetrics
from tuneforge.validator.publisher import Publisher, backoff_delay, round_group
from tuneforge.validator.state import ValidatorState

REPO = Path(__file__).resolve().parents[1]


async def _drained(state: ValidatorState, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while state.outbox.size():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@dataclass
class Outage:
    net: ValidatorNet
    miner_hotkeys: set[str]
    rows_after_first_round: ApiRows
    queued_during_outage: dict[str, int]
    attempts_during_outage: int
    rows_final: ApiRows
    rounds_completed: int
    metrics: dict[Any, float]
    best: dict[str, Any]
    export: list[dict[str, Any]]
    audio: dict[str, bytes] = field(default_factory=dict)
    rows_after_conflict: ApiRows | None = None


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    """Round 1 with the API up, rounds 2-3 with it stopped, then the API comes back at the same
    address while the background publisher keeps running; finally a conflicting republication."""
    net = make_validator_net(tmp_path_factory.mktemp("publish"))
    api_cfg = api_settings(net)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with synth_miners(net, 2) as wallets:
        settings = net.settings(publish=True, max_rounds=1)
        settings.api.url = url
        loop, state, client = net.build(settings)
        out: dict[str, Any] = {}

        def signed_reads() -> None:
            with httpx.Client(base_url=url, timeout=10) as http:
                best = signed_request(http, net.wallet.hotkey, "GET", "/api/v1/scores/best")
                assert best.status_code == 200, best.text
                export = signed_request(http, net.wallet.hotkey, "GET", "/api/v1/scores/export")
                assert export.status_code == 200, export.text
                out["best"], out["export"] = best.json(), export.json()["items"]
                out["audio"] = {}
                for item in out["export"]:
                    path = item["audio_url"]
                    audio = signed_request(http, net.wallet.hotkey, "GET", path)
                    assert audio.status_code == 200, audio.text
                    out["audio"][item["track_id"]] = audio.content

        async def scenario() -> None:
            wiring = wire_api(net, loop, url)
            stop = asyncio.Event()
            publishing = asyncio.ensure_future(wiring.publisher.run(stop))
            try:
                with api_on_port(api_cfg, port):
                    await loop.run(asyncio.Event())
                    assert await _drained(state, 30), "round 1 was not delivered"
                    out["first"] = api_rows(api_cfg)
                for _ in range(2):  # the API is down for two rounds
                    await loop.run(asyncio.Event())
                await asyncio.sleep(0.6)  # the publisher keeps trying meanwhile
                out["queued"] = state.outbox.depth()
                out["attempts"] = max(i.attempts for i in peek(state, 100, now=time.time() + 99))
                with api_on_port(api_cfg, port):
                    assert await _drained(state, 30), "the outbox did not drain after the outage"
                    await asyncio.sleep(0.3)  # a duplicate send, if any, would land now
                    out["final"] = api_rows(api_cfg)
                    await asyncio.to_thread(signed_reads)
                    # A conflicting republication of round 1 (same id, other content) and its
                    # audio, plus an upload for a track the API never saw.
                    first = out["export"][0]
                    group = round_group(first["round_id"])
                    changed = {
                        "round_id": first["round_id"],
                        "block": first["block"] + 1,
                        "challenge": first["challenge"],
                        "results": [{k: first[k] for k in _RESULT_KEYS}],
                    }
                    enqueue(state, ROUND_RESULT, changed, None, group)
                    enqueue(state, TRACK_AUDIO, {"track_id": first["track_id"]}, b"RIFF", group)
                    enqueue(state, TRACK_AUDIO, {"track_id": "trk_unknown"}, b"RIFFxxxxWAVE")
                    wiring.publisher.wake.set()
                    assert await _drained(state, 30)
                    out["after_conflict"] = api_rows(api_cfg)
            finally:
                stop.set()
                await publishing
                await wiring.api.aclose()
                await client.aclose()
            out["metrics"] = parse(render(loop.metrics.registry).decode())

        asyncio.run(scenario())
        yield Outage(
            net=net,
            miner_hotkeys={w.hotkey.ss58_address for w in wallets},
            rows_after_first_round=out["first"],
            queued_during_outage=out["queued"],
            attempts_during_outage=out["attempts"],
            rows_final=out["final"],
            rounds_completed=state.rounds.completed(),
            metrics=out["metrics"],
            best=out["best"],
            export=out["export"],
            audio=out["audio"],
            rows_after_conflict=out["after_conflict"],
        )
        state.close()


_RESULT_KEYS = (
    "track_id", "miner_uid", "miner_hotkey", "final_score", "composite", "score_breakdown",
    "penalties", "generation_ms", "audio_sha256", "duration_seconds", "sample_rate",
)  # fmt: skip


def test_every_result_reaches_the_api_with_its_breakdown_and_matching_audio(
    outage: Outage,
) -> None:
    assert outage.rounds_completed == 3
    assert len(outage.export) == 6
    assert {i["miner_hotkey"] for i in outage.export} == outage.miner_hotkeys
    assert {i["validator_hotkey"] for i in outage.export} == {outage.net.hotkey}
    for item in outage.export:
        assert len(item["score_breakdown"]) == 16
        # this validator has no neural models: not measured is null, named, and degraded
        assert item["score_breakdown"]["clap"] is None and item["degraded"] is True
        assert "no neural models" in item["excluded"]["clap"]
        assert set(item["penalties"]) == {p.name for p in PENALTIES}
        assert item["audio_available"] is True
        wav = outage.audio[item["track_id"]]
        assert hashlib.sha256(wav).hexdigest() == item["audio_sha256"]
        assert decode_wav(wav).duration_seconds == pytest.approx(item["duration_seconds"])
    best = outage.best["tracks"]
    assert {t["track_id"] for t in best} == {i["track_id"] for i in outage.export}
    assert all(len(t["score_breakdown"]) == 16 for t in best)


def test_an_api_outage_queues_rounds_and_delivers_each_exactly_once_after(outage: Outage) -> None:
    assert outage.rows_after_first_round == ApiRows(1, 2, 2, 2)
    assert outage.queued_during_outage == {"round_result": 2, "track_audio": 4}
    assert outage.attempts_during_outage >= 1  # it was tried, failed and kept for later
    assert outage.rows_final == ApiRows(3, 6, 6, 6)
    m = outage.metrics
    name = "tuneforge_validator_publications_delivered_total"
    assert value(m, name, kind="round_result") == 3
    assert value(m, name, kind="track_audio") == 6


def test_a_conflict_and_a_refusal_are_dropped_with_counts_and_nothing_changes(
    outage: Outage,
) -> None:
    assert outage.rows_after_conflict == outage.rows_final
    m = outage.metrics
    dropped = "tuneforge_validator_publications_dropped_total"
    assert value(m, dropped, kind="round_result", reason="conflict") == 1
    assert value(m, dropped, kind="dependent", reason="conflict") == 1  # its audio upload
    assert value(m, dropped, kind="track_audio", reason="refused") == 1  # 404 unknown track


def test_a_rounds_audio_waits_until_the_round_itself_is_acknowledged(tmp_path: Path) -> None:
    state = ValidatorState(tmp_path / "state.db")
    enqueue(state, ROUND_RESULT, {"round_id": "a"}, None, round_group("a"))
    enqueue(state, TRACK_AUDIO, {"track_id": "t1"}, b"RIFF", round_group("a"))
    enqueue(state, ROUND_RESULT, {"round_id": "b"}, None, round_group("b"))
    heads = state.outbox.peek_sendable(10)
    assert [(i.kind, i.payload) for i in heads] == [
        (ROUND_RESULT, {"round_id": "a"}),
        (ROUND_RESULT, {"round_id": "b"}),
    ]
    state.outbox.retry_later(heads[0].id, 0.0)  # round a failed once: its audio still waits
    assert TRACK_AUDIO not in {i.kind for i in state.outbox.peek_sendable(10, now=time.time() + 1)}
    state.outbox.ack(heads[0].id)
    assert [i.payload for i in state.outbox.peek_sendable(10)] == [
        {"track_id": "t1"},
        {"round_id": "b"},
    ]
    state.close()


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    assert backoff_delay(0, 2.0, 300.0, rand=lambda: 1.0) == 2.0
    assert backoff_delay(0, 2.0, 300.0, rand=lambda: 0.0) == 1.0
    assert backoff_delay(3, 2.0, 300.0, rand=lambda: 1.0) == 16.0
    assert backoff_delay(50, 2.0, 300.0, rand=lambda: 1.0) == 300.0
    spread = {round(backoff_delay(4, 1.0, 300.0), 6) for _ in range(50)}
    assert len(spread) > 1 and all(8.0 <= d <= 16.0 for d in spread)


def test_a_full_outbox_drops_the_oldest_audio_first_and_logs_the_count(tmp_path: Path) -> None:
    state = ValidatorState(tmp_path / "state.db")
    for n in range(5):
        group = round_group(f"r{n}")
        enqueue(state, ROUND_RESULT, {"round_id": f"r{n}"}, None, group)
        enqueue(state, TRACK_AUDIO, {"track_id": f"t{n}"}, bytes(10_000), group)
    metrics = ValidatorMetrics()
    publisher = Publisher(
        state, ApiClient("http://127.0.0.1:9", object()), metrics, max_bytes=32_000
    )
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(str(m)), level="WARNING")
    try:
        assert publisher.trim() == {TRACK_AUDIO: 2}
    finally:
        logger.remove(sink)
    left = peek(state, 100)
    assert [i.payload.get("track_id") for i in left if i.kind == TRACK_AUDIO] == ["t2", "t3", "t4"]
    assert sum(i.kind == ROUND_RESULT for i in left) == 5  # every round result is kept
    assert any("dropped the oldest 2 track_audio" in w for w in warnings)
    samples = parse(render(metrics.registry).decode())
    dropped = "tuneforge_validator_publications_dropped_total"
    assert value(samples, dropped, kind=TRACK_AUDIO, reason="outbox_full") == 2
    # Past the audio, the item cap drops the oldest of any kind.
    assert state.outbox.trim(1 << 30, 4, TRACK_AUDIO) == {TRACK_AUDIO: 3, ROUND_RESULT: 1}
    assert [i.payload["round_id"] for i in peek(state, 100)] == ["r1", "r2", "r3", "r4"]
    state.close()


# -- crash safety: a real validator process, SIGKILLed with unsent publications --------------


def _start(net: ValidatorNet, api_url: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    args = [
        sys.executable, str(REPO / "neurons" / "validator.py"),
        "--network", "localnet",
        "--localnet.path", str(net.chain.path),
        "--wallet.name", "validator",
        "--wallet.path", str(net.tmp_path / "wallets"),
        "--neuron.state_path", str(net.state_path),
        "--neuron.round_interval_s", "0.2",
        "--neuron.min_challenge_seconds", "2",
        "--neuron.max_challenge_seconds", "2",
        "--neuron.timeout", "30",
        "--neuron.timeout_per_second", "0",
        "--api.url", api_url,
        "--api.publish",
        "--api.retry_base_s", "0.1",
        "--api.retry_max_s", "0.5",
        "--logging.level", "INFO",
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)


def _wait_for(predicate: Any, timeout: float, what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"validator exited ({process.returncode}) while waiting: {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _state_counts(path: Path) -> tuple[int, int]:
    state = ValidatorState(path)
    try:
        return state.rounds.completed(), state.outbox.size()
    finally:
        state.close()


@pytest.mark.slow
def test_sigkill_with_unsent_publications_then_restart_delivers_each_once(tmp_path: Path) -> None:
    net = make_validator_net(tmp_path)
    api_cfg = api_settings(net)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    miners = make_fake_miners(tmp_path, ["good"])
    log = tmp_path / "validator.log"
    with serve_app(fake_miner_app(miners)) as miner_url:
        register_fake_miners(net.chain, miners, miner_url.removeprefix("http://"))
        status_port = free_port()
        # The API is down; the status port serves /metrics from the running process.
        process = _start(net, api_url, log, "--neuron.status_port", str(status_port))
        try:
            _wait_for(
                lambda: net.state_path.exists() and _state_counts(net.state_path)[0] >= 2,
                90, "two rounds", process,
            )  # fmt: skip
            with httpx.Client(base_url=f"http://127.0.0.1:{status_port}", timeout=10) as http:
                scraped = parse(http.get("/metrics").text)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
        completed, queued = _state_counts(net.state_path)
        assert queued == 2 * completed  # one round result + one audio upload per round
        assert value(scraped, "tuneforge_validator_rounds_total") >= 2
        assert value(scraped, "tuneforge_validator_outbox_depth", kind="round_result") >= 2
        assert value(scraped, "tuneforge_validator_outbox_depth", kind="track_audio") >= 2

        with api_on_port(api_cfg, port):
            # One more round, then the validator drains its outbox and exits on its own.
            restarted = _start(net, api_url, log, "--neuron.max_rounds", "1")
            try:
                assert restarted.wait(timeout=90) == 0, log.read_text()[-3000:]
            finally:
                if restarted.poll() is None:
                    restarted.kill()
            final_rounds, left = _state_counts(net.state_path)
            rows = api_rows(api_cfg)
    assert (final_rounds, left) == (completed + 1, 0)
    # Every round the validator committed is on the API exactly once, with its audio.
    assert rows == ApiRows(final_rounds, final_rounds, final_rounds, final_rounds)
    assert "dropped" not in log.read_text()  # no send was refused as a conflicting duplicate


def test_5xx_408_429_are_retried_and_other_4xx_drop_the_round_with_its_audio(
    tmp_path: Path,
) -> None:
    """Against a scripted endpoint answering POST /api/v1/scores with the given statuses."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from tests.helpers.wallets import make_wallet

    answers = [503, 408, 429, 201, 400]
    seen: list[str] = []
    app = FastAPI()

    @app.post("/api/v1/scores")
    def scores() -> JSONResponse:
        seen.append("scores")
        status = answers.pop(0)
        return JSONResponse({"detail": f"scripted {status}"}, status_code=status)

    state = ValidatorState(tmp_path / "state.db")
    metrics = ValidatorMetrics()
    with serve_app(app) as url:
        api = ApiClient(url, make_wallet(tmp_path, "v"))
        publisher = Publisher(state, api, metrics, retry_base_s=0.01, retry_max_s=0.02)

        async def scenario() -> list[str]:
            outcomes = []
            try:
                for name in ("a", "b"):
                    enqueue(state, ROUND_RESULT, {"round_id": name}, None, round_group(name))
                    enqueue(state, TRACK_AUDIO, {"track_id": name}, b"RIFF", round_group(name))
                    while state.outbox.size() and len(outcomes) < 10:
                        (head,) = state.outbox.peek_sendable(1, now=time.time() + 1)
                        if head.kind == TRACK_AUDIO:
                            state.outbox.ack(head.id)  # audio is not what this test is about
                            continue
                        outcomes.append(await publisher.deliver(head))
            finally:
                await api.aclose()
            return outcomes

        outcomes = asyncio.run(scenario())
    assert outcomes == ["retry", "retry", "retry", "delivered", "refused"]
    assert state.outbox.size() == 0  # round b was refused: its audio went with it
    samples = parse(render(metrics.registry).decode())
    dropped = "tuneforge_validator_publications_dropped_total"
    assert value(samples, dropped, kind=ROUND_RESULT, reason="refused") == 1
    assert value(samples, dropped, kind="dependent", reason="refused") == 1
    state.close()
