"""The validator's status view (read from its state) and the optional loopback HTTP endpoint."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loguru import logger
from prometheus_client import CollectorRegistry

from tuneforge.core.metrics import METRICS_PATH, negotiate
from tuneforge.core.protocol import SPEC_VERSION_KEY
from tuneforge.validator.state import StateError, ValidatorState
from tuneforge.validator.weight_rule import DEFAULT_EXPONENT


def status_snapshot(state: ValidatorState) -> dict[str, Any]:
    """Miners (uid, hotkey, EMA, weight last set on chain, last result), rounds, last weights.

    `weight` is what this validator last SET (or committed) for the miner's uid, read from the
    state, never recomputed from today's EMAs: those move after every round, and the chain
    holds the weights of the last successful attempt until the next one.
    """
    rule = state.weights.rule() or {"exponent": DEFAULT_EXPONENT, "top_k": 0}
    last_set = state.weights.last_set() or {}
    weights = {str(uid): float(w) for uid, w in (last_set.get("weights") or {}).items()}
    miners = state.miners.all()
    rows = []
    for miner in miners:
        last = miner.last_result or {}
        rows.append(
            {
                "uid": miner.uid,
                "hotkey": miner.hotkey,
                "ema": miner.ema,
                "weight": weights.get(str(miner.uid), 0.0),
                "rounds_queried": miner.rounds_queried,
                "last_round": miner.last_queried_round,
                "last_final_score": last.get("final_score"),
                "last_composite": last.get("composite"),
                "score_breakdown": last.get("score_breakdown", {}),
                "penalties": last.get("penalties", {}),
                "reasons": last.get("reasons", {}),
                "error": last.get("error"),
                "query": last.get("query", {}),
            }
        )
    last_weights = state.weights.last_outcome() or {}
    return {
        "rounds_completed": state.rounds.completed(),
        "last_round": state.rounds.last(),
        "weight_rule": rule,
        "last_weights": state.weights.last_outcome(),
        "weights_set": last_set or None,
        # Whether the last weight attempt was refused for a version_key below weights_version.
        "version": {
            "version_key": SPEC_VERSION_KEY,
            "weights_version": last_weights.get("weights_version"),
            "stale": last_weights.get("code") == "STALE_VERSION",
        },
        "pending_commit": state.weights.pending_commit(),
        "outbox_size": state.outbox.size(),
        "outbox_by_kind": state.outbox.depth(),
        "miners": rows,
    }


class StatusServer:
    """GET /status (JSON snapshot) and GET /metrics (Prometheus) on 127.0.0.1 only."""

    def __init__(
        self, state_path: Path, port: int, registry: CollectorRegistry | None = None
    ) -> None:
        self.state_path = state_path
        self.port = port
        self.registry = registry
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        state_path = self.state_path
        registry = self.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == METRICS_PATH and registry is not None:
                    body, content_type = negotiate(registry, self.headers.get("Accept", ""))
                    self.send_response(200)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if path not in ("/status", "/"):
                    self._send(404, {"detail": "not found"})
                    return
                # A private read-only connection per request (no migration, no write on a
                # GET); the loop's own connection stays its own.
                try:
                    state = ValidatorState.open_read_only(state_path)
                except StateError as exc:
                    self._send(503, {"detail": str(exc)})
                    return
                try:
                    self._send(200, status_snapshot(state))
                finally:
                    state.close()

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body, default=str).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("status: {}", format % args)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        port = int(self._server.server_address[1])
        logger.info("status endpoint on http://127.0.0.1:{}/status (and /metrics)", port)
        return port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
