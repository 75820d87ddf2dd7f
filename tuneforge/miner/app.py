"""The miner's HTTP surface (DESIGN.md §3): POST /v1/generate → raw signed WAV, POST /v1/reserve
(reserve a free worker, then send the prompt to it: docs/decisions.md D33), GET /v1/info, and an
unauthenticated GET /metrics (Prometheus; client-address allow-list, loopback by default).

The event loop only admits requests and awaits futures; generation, WAV encoding and response
signing run on the work queue's threads — one per device, each with its own model replica — so
/v1/info answers while generations run, and two devices serve two validators at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import bittensor as bt
from fastapi import FastAPI
from loguru import logger
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tuneforge import __version__
from tuneforge.auth.nonces import NonceStore, nonce_store_from_url
from tuneforge.chain.base import ChainView
from tuneforge.chain.metagraph import MetagraphCache
from tuneforge.core.errors import TuneForgeError
from tuneforge.core.metrics import METRICS_PATH, ClientAllowList, metrics_endpoint
from tuneforge.core.protocol import (
    GENERATE_PATH,
    HEADER_SPEC_VERSION,
    INFO_PATH,
    MAX_DURATION_S,
    RESERVE_PATH,
    SPEC_VERSION,
    MinerInfo,
)
from tuneforge.generation.base import Backend
from tuneforge.miner.admission import Admission, AdmissionPolicy, Refusal
from tuneforge.miner.config import MinerSettings
from tuneforge.miner.metrics import SERVED, MinerMetrics
from tuneforge.miner.service import GenerationService
from tuneforge.miner.slots import SlotBook
from tuneforge.miner.work_queue import WorkQueue


def create_app(
    settings: MinerSettings,
    backend: Backend | Sequence[Backend],
    chain: ChainView,
    wallet: bt.Wallet,
    nonce_store: NonceStore | None = None,
) -> FastAPI:
    """The miner app; its lifespan starts/stops the metagraph refresher and the workers.

    `backend` is one model replica per device (`--miner.devices`); one worker runs each.
    """
    section = settings.miner
    replicas = list(backend) if isinstance(backend, Sequence) else [backend]
    backend = replicas[0]
    hotkey = wallet.hotkey.ss58_address
    if nonce_store is None:
        nonce_store = nonce_store_from_url(
            section.redis_url or None,
            namespace=f"tuneforge:miner:{hotkey}",
            retention_seconds=max(600.0, 2 * section.request_max_age_s),
        )
    metagraph = MetagraphCache(chain, section.metagraph_refresh_s)
    policy = AdmissionPolicy(
        self_hotkey=hotkey,
        min_stake=settings.effective_min_stake(),
        require_validator_permit=section.require_validator_permit,
        request_max_age_s=section.request_max_age_s,
        max_concurrent_per_caller=section.max_concurrent_per_caller,
        max_duration_s=min(float(backend.max_duration_seconds), MAX_DURATION_S),
        body_timeout_s=section.request_body_timeout_s,
    )
    queue = WorkQueue(section.queue_capacity(len(replicas)), len(replicas), section.retry_after_s)
    metrics = MinerMetrics(backend, queue, metagraph, hotkey)
    service = GenerationService(
        replicas,
        wallet,
        Admission(policy, nonce_store, metagraph),
        queue,
        metrics,
        SlotBook(section.slot_ttl_s),
    )

    app = FastAPI(
        title="TuneForge miner",
        version=__version__,
        lifespan=_lifespan(metagraph, queue, backend, hotkey, policy.min_stake, len(replicas)),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = service
    app.state.metagraph = metagraph
    app.state.metrics = metrics

    @app.exception_handler(TuneForgeError)
    async def _refused(_: Request, exc: TuneForgeError) -> JSONResponse:
        # The one place a domain error becomes HTTP (Refusal is the usual one).
        headers = {HEADER_SPEC_VERSION: SPEC_VERSION, **exc.headers}
        return JSONResponse({"detail": exc.detail_text}, status_code=exc.status, headers=headers)

    _install_routes(app, service, metrics, queue, backend, hotkey)
    if section.metrics:
        # Outside admission on purpose (scrapers hold no hotkey); it only reads counters.
        app.add_api_route(
            METRICS_PATH,
            # validated by the settings
            metrics_endpoint(metrics.registry, ClientAllowList.of(section.metrics_allow)),
            methods=["GET"],
            include_in_schema=False,
        )
    return app


def _lifespan(
    metagraph: MetagraphCache,
    queue: WorkQueue,
    backend: Backend,
    hotkey: str,
    min_stake: float,
    devices: int,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Load the metagraph, then start its refresher and the workers; stop both at exit."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(metagraph.refresh)  # the first load; a chain read may be slow
        metagraph.start()
        queue.start()
        logger.info(
            "miner {} serving {} ({}) on {} device(s), queue {}+{} workers, min stake {:.1f}",
            hotkey,
            backend.model_id,
            backend.name,
            devices,
            queue.capacity,
            queue.workers,
            min_stake,
        )
        try:
            yield
        finally:
            queue.stop()
            metagraph.stop()

    return lifespan


def _install_routes(
    app: FastAPI,
    service: GenerationService,
    metrics: MinerMetrics,
    queue: WorkQueue,
    backend: Backend,
    hotkey: str,
) -> None:
    """POST /v1/generate, POST /v1/reserve and GET /v1/info, each counted in the metrics."""

    @app.post(GENERATE_PATH)
    async def generate(request: Request) -> Response:
        try:
            generated = await service.generate(request)
        except Refusal as exc:
            metrics.count_generate(exc.status)
            raise
        except Exception:
            metrics.count_generate(500)  # a bug: the server answers 500
            raise
        metrics.count_generate(SERVED)
        return Response(
            content=generated.wav,
            media_type="audio/wav",
            headers=service.response_headers(generated),
        )

    @app.post(RESERVE_PATH)
    async def reserve(request: Request) -> JSONResponse:
        try:
            grant = await service.reserve(request)
        except Refusal as exc:
            metrics.count_generate(exc.status)
            raise
        return JSONResponse(grant.model_dump(), headers={HEADER_SPEC_VERSION: SPEC_VERSION})

    @app.get(INFO_PATH)
    async def info(request: Request) -> JSONResponse:
        try:
            await service.admission.admit_info(request)
        except Refusal as exc:
            metrics.count_info(exc.status)
            raise
        metrics.count_info(SERVED)
        body = MinerInfo(
            model_id=backend.model_id,
            backend=backend.name,
            sings=backend.sings,
            version=__version__,
            max_duration_seconds=service.max_duration_s,
            sample_rate=backend.sample_rate,
            queue_depth=queue.depth,
            queue_capacity=queue.slots,
            hotkey=hotkey,
            devices=queue.workers,
        )
        return JSONResponse(body.model_dump(), headers={HEADER_SPEC_VERSION: SPEC_VERSION})
