"""`tuneforge bench api`: throughput and latency of a signed read against the unauthenticated
health check, on a real API process (uvicorn, one worker) over 127.0.0.1.

The ratio says what hotkey verification (sr25519 verify + nonce store + rate limit + DB read)
costs per request relative to the cheapest route.
"""

from __future__ import annotations

import json
import time
from typing import Any

import typer

from tuneforge.core.audio import COMMON_RATE


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _measure(
    base_url: str, path: str, seconds: float, concurrency: int, signer: Any | None
) -> dict[str, Any]:
    import httpx

    from tuneforge.auth.hotkey import sign_hotkey_headers

    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:

        async def worker(stop_at: float) -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                headers = sign_hotkey_headers(signer, "GET", path) if signer else {}
                started = time.perf_counter()
                response = await client.get(path, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1

        import asyncio

        await asyncio.gather(*[worker(time.perf_counter() + 0.3) for _ in range(concurrency)])
        latencies.clear()  # warm-up done: connections open, caches warm
        errors = 0
        started = time.perf_counter()
        await asyncio.gather(*[worker(started + seconds) for _ in range(concurrency)])
        elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
    }


def _seed_scores(base_url: str, validator: Any, count: int = 20) -> None:
    """Publish one round so /scores/best returns real rows."""
    import hashlib
    import uuid

    import httpx

    from tuneforge.auth.hotkey import sign_hotkey_headers

    results = [
        {
            "track_id": f"bench_{uuid.uuid4().hex[:16]}",
            "miner_uid": i,
            "miner_hotkey": validator.ss58_address,
            "final_score": i / count,
            "composite": i / count,
            "score_breakdown": {"clap": 0.5, "melody": 0.4, "musicality": 0.6},
            "penalties": {"duration_penalty": 1.0, "fad_penalty": 1.0},
            "generation_ms": 1000,
            "audio_sha256": hashlib.sha256(str(i).encode()).hexdigest(),
            "duration_seconds": 10.0,
            "sample_rate": COMMON_RATE,
        }
        for i in range(count)
    ]
    body = json.dumps(
        {
            "round_id": str(uuid.uuid4()),
            "block": 1,
            "challenge": {"prompt": "bench"},
            "results": results,
        }
    ).encode()
    headers = sign_hotkey_headers(validator, "POST", "/api/v1/scores", body)
    headers["Content-Type"] = "application/json"
    response = httpx.post(base_url + "/api/v1/scores", content=body, headers=headers, timeout=30)
    response.raise_for_status()


def command(
    seconds: float = typer.Option(5.0, "--seconds", min=0.5, help="measurement per endpoint"),
    concurrency: int = typer.Option(32, "--concurrency", min=1, max=1024),
    json_out: bool = typer.Option(False, "--json", metavar="", help="print one JSON object"),
) -> None:
    """Signed GET /api/v1/scores/best vs GET /api/v1/health at N concurrent clients."""
    import asyncio
    import os
    import secrets
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import httpx
    from bittensor.sp_core import Keypair

    from tuneforge.chain.local import LocalChain
    from tuneforge.core.loopback import free_port

    with tempfile.TemporaryDirectory(prefix="tuneforge-bench-api-") as tmp:
        chain_path = Path(tmp) / "chain.db"
        chain = LocalChain.create(chain_path)
        signer = Keypair.create_from_uri(f"//bench-{secrets.token_hex(8)}")  # temp signer
        chain.register(signer.ss58_address, stake=1000.0, validator_permit=True)
        chain.close()

        port = free_port()
        env = {
            **os.environ,
            # The benchmark measures the server, not the limiter refusing it.
            "TUNEFORGE_HOTKEY_RATE_LIMIT_PER_MINUTE": "100000000",
            "TUNEFORGE_LOGGING__LEVEL": "WARNING",
        }
        log = (Path(tmp) / "api.log").open("wb")
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tuneforge.tools.cli",
                "api",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--database-url",
                f"sqlite:///{tmp}/api.db",
                "--audio-dir",
                f"{tmp}/audio",
                "--network",
                "localnet",
                "--localnet.path",
                str(chain_path),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120  # a loaded host imports slowly
            while True:
                try:
                    if httpx.get(base_url + "/api/v1/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    log.flush()
                    tail = (Path(tmp) / "api.log").read_text(errors="replace")[-2000:]
                    typer.echo(f"error: the API server did not start:\n{tail}", err=True)
                    raise typer.Exit(code=1)
                time.sleep(0.2)
            _seed_scores(base_url, signer)
            health = asyncio.run(_measure(base_url, "/api/v1/health", seconds, concurrency, None))
            signed = asyncio.run(
                _measure(base_url, "/api/v1/scores/best", seconds, concurrency, signer)
            )
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()

    report = {
        "benchmark": "api",
        "concurrency": concurrency,
        "seconds": seconds,
        "workers": 1,
        "health": health,
        "scores_best_signed": signed,
        "rps_ratio_signed_over_health": round(signed["rps"] / health["rps"], 3)
        if health["rps"]
        else None,
        "p50_ratio_signed_over_health": round(signed["p50_ms"] / health["p50_ms"], 3)
        if health["p50_ms"]
        else None,
    }
    if json_out:
        typer.echo(json.dumps(report))
        return
    for name in ("health", "scores_best_signed"):
        r = report[name]
        typer.echo(
            f"{name:20s} {r['rps']:>9.1f} req/s  p50 {r['p50_ms']:.2f} ms  "
            f"p99 {r['p99_ms']:.2f} ms  errors {r['errors']}"
        )
    typer.echo(f"signed/health throughput ratio: {report['rps_ratio_signed_over_health']}")
