"""`tuneforge bench transport`: what the miner's transport costs per request.

Starts a real miner app (LocalChain test double, temp wallets, uvicorn on 127.0.0.1) whose
backend returns a fixed 15 s 44.1 kHz stereo clip instantly, so every millisecond measured is
transport: signing, admission, WAV encoding, response signing, HTTP and the client's checks.
The same clip is also fetched base64-encoded inside a JSON body (an endpoint that exists only in
this benchmark) and decoded client-side, which is how the subnet we replace shipped audio.
"""

from __future__ import annotations

import base64
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from tuneforge.core.loopback import serve_in_thread

BASE64_PATH = "/bench/generate-base64"
CLIP_SECONDS = 15.0
CLIP_RATE = 44_100
TARGET_MEDIAN_MS = 30.0
TARGET_SPEEDUP = 2.5


class _FixedClipBackend:
    """Pass-through backend: the same 15 s 44.1 kHz stereo clip for every request."""

    name = "passthrough"
    model_id = "bench/fixed-clip"
    sings = False
    sample_rate = CLIP_RATE
    max_duration_seconds = 60.0

    def __init__(self) -> None:
        import numpy as np

        from tuneforge.core.audio import Audio

        rng = np.random.default_rng(0)
        t = np.arange(int(CLIP_SECONDS * CLIP_RATE), dtype=np.float32) / CLIP_RATE
        left = 0.3 * np.sin(2 * np.pi * 220.0 * t) + 0.05 * rng.standard_normal(t.size)
        right = 0.3 * np.sin(2 * np.pi * 330.0 * t) + 0.05 * rng.standard_normal(t.size)
        self.clip = Audio(np.stack([left, right]).astype(np.float32), CLIP_RATE)

    def generate(self, request: Any) -> Any:
        return self.clip


def _add_base64_endpoint(app: Any) -> None:
    """The comparison transport: same admission, queue and signature, audio as base64 JSON."""
    from starlette.responses import JSONResponse

    service = app.state.service

    # A plain Starlette route: FastAPI would try to resolve the (string) annotations here.
    async def generate_base64(request: Any) -> JSONResponse:
        generated = await service.generate(request)
        payload = {
            "audio_b64": base64.b64encode(generated.wav).decode("ascii"),
            "sample_rate": generated.sample_rate,
            "generation_ms": generated.generation_ms,
        }
        return JSONResponse(payload, headers=service.response_headers(generated))

    app.add_route(BASE64_PATH, generate_base64, methods=["POST"])


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def measure(requests: int = 50, warmup: int = 3) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-ready result."""
    import httpx
    from loguru import logger

    from tuneforge.auth.btauth import sign_request, verify_response
    from tuneforge.chain.local import LocalChain
    from tuneforge.core.protocol import GENERATE_PATH, HEADER_SPEC_VERSION, SPEC_VERSION
    from tuneforge.core.protocol import MusicGenerationSynapse as Synapse
    from tuneforge.core.wallets import create_wallet
    from tuneforge.miner.app import create_app
    from tuneforge.miner.config import MinerSection, MinerSettings

    logger.disable("tuneforge")  # per-request INFO lines would be measured too
    try:
        with tempfile.TemporaryDirectory(prefix="tuneforge-bench-") as tmp:
            root = Path(tmp)
            chain = LocalChain.create(root / "chain.db")
            miner = create_wallet("miner", "default", str(root / "wallets"))
            validator = create_wallet("validator", "default", str(root / "wallets"))
            miner_hotkey = miner.hotkey.ss58_address
            me = validator.hotkey.ss58_address
            chain.register(miner_hotkey)
            chain.register(me, stake=10_000.0, validator_permit=True)
            settings = MinerSettings(
                network="localnet",
                miner=MinerSection(min_stake=0.0, max_concurrent_per_caller=4),
            )
            view = LocalChain(chain.path, chain.netuid, hotkey=miner_hotkey)
            app = create_app(settings, _FixedClipBackend(), view, miner)
            _add_base64_endpoint(app)
            body = Synapse(prompt="bench", duration_seconds=CLIP_SECONDS, seed=1)
            raw_body = body.model_dump_json().encode()

            signer = validator.hotkey  # a keypair signs without re-reading the key file

            def headers_for(path: str) -> dict[str, str]:
                headers = sign_request(signer, "POST", path, raw_body, miner_hotkey)
                headers[HEADER_SPEC_VERSION] = SPEC_VERSION
                headers["Content-Type"] = "application/json"
                return headers

            with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:

                def raw_round_trip() -> int:
                    response = client.post(
                        GENERATE_PATH, content=raw_body, headers=headers_for(GENERATE_PATH)
                    )
                    response.raise_for_status()
                    wav = response.content
                    verify_response(response.headers, wav, "POST", GENERATE_PATH, miner_hotkey, me)
                    return len(wav)

                def base64_round_trip() -> int:
                    response = client.post(
                        BASE64_PATH, content=raw_body, headers=headers_for(BASE64_PATH)
                    )
                    response.raise_for_status()
                    wav = base64.b64decode(json.loads(response.content)["audio_b64"])
                    verify_response(response.headers, wav, "POST", GENERATE_PATH, miner_hotkey, me)
                    return len(response.content)

                sizes: dict[str, int] = {}
                timings: dict[str, list[float]] = {"raw": [], "base64": []}
                trips: dict[str, Callable[[], int]] = {
                    "raw": raw_round_trip,
                    "base64": base64_round_trip,
                }
                for index in range(warmup + requests):
                    # Interleaved so drift (thermal, other load) hits both transports alike.
                    for name, trip in trips.items():
                        started = time.perf_counter()
                        sizes[name] = trip()
                        elapsed_ms = (time.perf_counter() - started) * 1000
                        if index >= warmup:
                            timings[name].append(elapsed_ms)
    finally:
        logger.enable("tuneforge")
    median = statistics.median(timings["raw"])
    base64_median = statistics.median(timings["base64"])
    speedup = base64_median / median
    return {
        "requests": requests,
        "clip": f"{CLIP_SECONDS:g} s, {CLIP_RATE} Hz, stereo, 16-bit",
        "payload_bytes": sizes["raw"],
        "median_ms": round(median, 2),
        "p95_ms": round(_percentile(timings["raw"], 0.95), 2),
        "base64_json_payload_bytes": sizes["base64"],
        "base64_json_median_ms": round(base64_median, 2),
        "base64_json_p95_ms": round(_percentile(timings["base64"], 0.95), 2),
        "speedup": round(speedup, 2),
        "target_median_ms": TARGET_MEDIAN_MS,
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": median <= TARGET_MEDIAN_MS and speedup >= TARGET_SPEEDUP,
    }


def command(
    requests: int = typer.Option(50, "--requests", min=1, max=10_000, help="timed requests each"),
    json_out: bool = typer.Option(False, "--json", metavar="", help="print one JSON object"),
) -> None:
    """Round-trip overhead of signed requests returning raw WAV vs base64-in-JSON."""
    result = measure(requests=requests)
    if json_out:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"raw WAV      : median {result['median_ms']} ms, p95 {result['p95_ms']} ms, "
        f"{result['payload_bytes']} bytes"
    )
    typer.echo(
        f"base64 JSON  : median {result['base64_json_median_ms']} ms, "
        f"p95 {result['base64_json_p95_ms']} ms, {result['base64_json_payload_bytes']} bytes"
    )
    verdict = "meets" if result["meets_target"] else "misses"
    typer.echo(
        f"speedup {result['speedup']}x; {verdict} the target (median <= {TARGET_MEDIAN_MS:g} ms, "
        f">= {TARGET_SPEEDUP:g}x)"
    )
