"""The miner's HTTP surface (DESIGN.md §3): POST /v1/generate → raw signed WAV, GET /v1/info,
and an unauthenticated GET /metrics (Prometheus; client-address allow-list, loopback by default).

The event loop only admits requests and awaits futures; generation, WAV encoding and response
signing run on the work queue's threads, so /v1/info answers while a generation is running.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass

import bittensor as bt
from fastapi import FastAPI
from loguru import logger
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tuneforge import __version__
from tuneforge.audio import AudioError
from tuneforge.auth import sign_response
from tuneforge.chain.base import ChainView
from tuneforge.generation.base import Backend, GenerationError, GenerationOutOfMemory
from tuneforge.generation.router import RoutedBackend
from tuneforge.metrics import METRICS_PATH, ClientAllowList, metrics_endpoint
from tuneforge.miner.admission import Admission, AdmissionPolicy, Admitted, Refusal
from tuneforge.miner.config import MinerSettings
from tuneforge.miner.metagraph_cache import MetagraphCache
from tuneforge.miner.metrics import SERVED, MinerMetrics
from tuneforge.miner.wav import encode_pcm16_wav
from tuneforge.miner.work_queue import QueueClosed, QueueFull, WorkQueue
from tuneforge.nonces import NonceStore, nonce_store_from_url
from tuneforge.protocol import (
    GENERATE_PATH,
    HEADER_GENERATION_MS,
    HEADER_MODEL,
    HEADER_SAMPLE_RATE,
    HEADER_SPEC_VERSION,
    INFO_PATH,
    MAX_DURATION_S,
    SPEC_VERSION,
    MinerInfo,
    MusicGenerationSynapse,
)


@dataclass(frozen=True)
class Generated:
    """One finished generation, ready to send."""

    wav: bytes
    model_id: str  # the backend that made it (a routed miner holds several)
    sample_rate: int
    generation_ms: int
    signature_headers: dict[str, str]


class CallerGone(Exception):
    """The caller disconnected before its generation finished."""


async def _wait_for_disconnect(request: Request) -> None:
    # The body is already read, so the next ASGI message is the disconnect (uvicorn sends it
    # when the connection drops, or after the response when nobody is waiting any more).
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _result_unless_disconnected(request: Request, future: Future[Generated]) -> Generated:
    """The job's result; a caller that hangs up cancels a job that has not started yet."""
    waiter = asyncio.wrap_future(future)
    watcher = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        await asyncio.wait({waiter, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not waiter.done():
        waiter.cancel()  # propagates to the queued job, which the worker then skips
        raise CallerGone()
    return waiter.result()


class GenerationService:
    """Admission → queue → backend → WAV → response signature, shared by every transport."""

    def __init__(
        self,
        backend: Backend,
        wallet: bt.Wallet,
        admission: Admission,
        queue: WorkQueue,
        metrics: MinerMetrics | None = None,
    ) -> None:
        self.backend = backend
        self.metrics = metrics
        self.wallet = wallet
        # bittensor re-reads the key file when handed a Wallet (~1 ms a signature); the
        # unlocked keypair signs in ~0.04 ms and is what `http_auth.sign` uses anyway.
        self._signer = wallet.hotkey
        self.admission = admission
        self.queue = queue
        self.max_duration_s = admission.policy.max_duration_s

    def _run(self, synapse: MusicGenerationSynapse, caller: str) -> Generated:
        """Worker-thread body: everything CPU/GPU-heavy for one request."""
        producer = (
            self.backend.route(synapse) if isinstance(self.backend, RoutedBackend) else self.backend
        )
        started = time.perf_counter()
        audio = producer.generate(synapse)
        elapsed_s = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.observe_generation(elapsed_s)
        generation_ms = int(elapsed_s * 1000)
        wav = encode_pcm16_wav(audio)
        signature = sign_response(self._signer, "POST", GENERATE_PATH, wav, caller)
        return Generated(wav, producer.model_id, audio.sample_rate, generation_ms, signature)

    async def generate(self, request: Request) -> Generated:
        admitted: Admitted = await self.admission.admit_generate(request)
        try:
            synapse = admitted.synapse
            log = logger.bind(caller=admitted.caller, uid=admitted.neuron.uid)
            try:
                future = self.queue.submit(
                    admitted.neuron.stake, lambda: self._run(synapse, admitted.caller)
                )
            except QueueFull as exc:
                log.info("refused {}: {}", synapse.challenge_id, exc)
                raise Refusal(503, str(exc), {"Retry-After": str(exc.retry_after_s)}) from None
            except QueueClosed as exc:
                raise Refusal(503, str(exc), {"Retry-After": "30"}) from None
            try:
                generated = await _result_unless_disconnected(request, future)
            except CallerGone:
                log.info("caller left before {} was served; job dropped", synapse.challenge_id)
                raise Refusal(499, "caller disconnected") from None
            except QueueFull as exc:
                raise Refusal(503, str(exc), {"Retry-After": str(exc.retry_after_s)}) from None
            except QueueClosed as exc:
                raise Refusal(503, str(exc), {"Retry-After": "30"}) from None
            except GenerationOutOfMemory as exc:
                log.warning("out of memory on {}: {}", synapse.challenge_id, exc)
                retry = str(self.queue.retry_after_s)
                raise Refusal(503, f"out of memory: {exc}", {"Retry-After": retry}) from None
            except (GenerationError, AudioError) as exc:
                log.warning("generation failed on {}: {}", synapse.challenge_id, exc)
                raise Refusal(500, f"generation failed: {exc}") from None
            except Exception:
                # A backend bug: log the traceback here, tell the caller nothing internal.
                log.exception("unexpected generation error on {}", synapse.challenge_id)
                raise Refusal(500, "generation failed: internal error") from None
            log.info(
                "served {} ({:.1f} s) in {} ms, {} bytes",
                synapse.challenge_id,
                synapse.duration_seconds,
                generated.generation_ms,
                len(generated.wav),
            )
            return generated
        finally:
            admitted.release()

    def response_headers(self, generated: Generated) -> dict[str, str]:
        return {
            HEADER_MODEL: generated.model_id,
            HEADER_GENERATION_MS: str(generated.generation_ms),
            HEADER_SAMPLE_RATE: str(generated.sample_rate),
            HEADER_SPEC_VERSION: SPEC_VERSION,
            **generated.signature_headers,
        }


def create_app(
    settings: MinerSettings,
    backend: Backend,
    chain: ChainView,
    wallet: bt.Wallet,
    nonce_store: NonceStore | None = None,
) -> FastAPI:
    """The miner app; its lifespan starts/stops the metagraph refresher and the workers."""
    section = settings.miner
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
    queue = WorkQueue(section.queue_size, section.workers, section.retry_after_s)
    metrics = MinerMetrics(backend, queue, metagraph, hotkey)
    service = GenerationService(
        backend, wallet, Admission(policy, nonce_store, metagraph), queue, metrics
    )
    metrics_allow = ClientAllowList.of(section.metrics_allow)  # validated by the settings

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(metagraph.start)  # the first load; a chain read may be slow
        queue.start()
        logger.info(
            "miner {} serving {} ({}), queue {}+{} workers, min stake {:.1f}",
            hotkey,
            backend.model_id,
            backend.name,
            section.queue_size,
            section.workers,
            policy.min_stake,
        )
        try:
            yield
        finally:
            queue.stop()
            metagraph.stop()

    app = FastAPI(
        title="TuneForge miner",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = service
    app.state.metagraph = metagraph
    app.state.metrics = metrics

    @app.exception_handler(Refusal)
    async def _refused(_: Request, exc: Refusal) -> JSONResponse:
        headers = {HEADER_SPEC_VERSION: SPEC_VERSION, **exc.headers}
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

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
        )
        return JSONResponse(body.model_dump(), headers={HEADER_SPEC_VERSION: SPEC_VERSION})

    if section.metrics:
        # Outside admission on purpose (scrapers hold no hotkey); it only reads counters.
        app.add_api_route(
            METRICS_PATH,
            metrics_endpoint(metrics.registry, metrics_allow),
            methods=["GET"],
            include_in_schema=False,
        )

    return app
