"""The real TuneForge API beside a validator under test: on a fixed port (so it can be stopped
and started again at the same address), its row counts, and the validator's API wiring."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from tests.helpers.api_server import ServerThread, make_settings
from tests.helpers.validator_net import ValidatorNet
from tuneforge.api.app import create_app
from tuneforge.api.settings import ApiSettings
from tuneforge.core.http_limits import uvicorn_limits
from tuneforge.validator.api_client import ApiClient
from tuneforge.validator.jobs import JobWorker
from tuneforge.validator.loop import ValidatorLoop
from tuneforge.validator.publisher import Publisher


class ServerOnPort(ServerThread):
    """ServerThread bound to a chosen port (a restarted API keeps its URL)."""

    def __init__(self, app: Any, port: int) -> None:
        self.port = port
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **uvicorn_limits()
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.app = app


def api_settings(net: ValidatorNet, **overrides: Any) -> ApiSettings:
    """API settings on the validator's LocalChain (its hotkey holds a validator permit)."""
    root = net.tmp_path / "api"
    root.mkdir(exist_ok=True)
    return make_settings(root, net.chain.path, **overrides)


@contextmanager
def api_on_port(settings: ApiSettings, port: int) -> Iterator[ServerOnPort]:
    with ServerOnPort(create_app(settings), port) as server:
        yield server


@dataclass(frozen=True)
class ApiRows:
    rounds: int
    results: int
    with_audio: int
    distinct_tracks: int


def api_rows(settings: ApiSettings) -> ApiRows:
    """Row counts straight from the API's SQLite database."""
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    db = sqlite3.connect(str(path))
    try:
        rounds = db.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
        results, with_audio, distinct = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(audio_present), 0), COUNT(DISTINCT track_id) "
            "FROM score_results"
        ).fetchone()
    finally:
        db.close()
    return ApiRows(int(rounds), int(results), int(with_audio), int(distinct))


@dataclass
class ApiWiring:
    api: ApiClient
    publisher: Publisher
    jobs: JobWorker


def wire_api(
    net: ValidatorNet,
    loop: ValidatorLoop,
    url: str,
    retry_base_s: float = 0.05,
    retry_max_s: float = 0.5,
    max_bytes: int = 1 << 30,
    max_items: int = 100_000,
) -> ApiWiring:
    """Publisher and job worker wired into `loop` as `run()` wires them (must be called inside
    a running event loop: the publisher owns an asyncio.Event)."""
    api = ApiClient(url, net.wallet, timeout_s=10.0)
    publisher = Publisher(
        loop.state, api, loop.metrics, retry_base_s, retry_max_s, max_bytes, max_items
    )
    jobs = JobWorker(loop.settings, net.hotkey, loop.runner, api, on_enqueued=publisher.wake.set)
    loop.jobs = jobs
    loop.on_round = publisher.wake.set
    loop.metrics.watch_outbox(loop.state.outbox.depth)
    return ApiWiring(api, publisher, jobs)
