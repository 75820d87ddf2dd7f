"""The miner's generation service: admission -> queue -> backend -> WAV -> response signature,
for both the one-shot POST /v1/generate and a reserved slot (docs/decisions.md D33). The HTTP
surface (miner/app.py) only routes requests here and turns the results into responses."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import bittensor as bt
from loguru import logger
from starlette.requests import Request

from tuneforge.auth.btauth import sign_response
from tuneforge.core.audio import AudioError
from tuneforge.core.errors import TuneForgeError
from tuneforge.core.protocol import (
    GENERATE_PATH,
    HEADER_GENERATION_MS,
    HEADER_MODEL,
    HEADER_SAMPLE_RATE,
    HEADER_SLOT,
    HEADER_SPEC_VERSION,
    SPEC_VERSION,
    MusicGenerationSynapse,
    SlotGrant,
)
from tuneforge.generation.base import Backend, GenerationError, GenerationOutOfMemory
from tuneforge.generation.router import RoutedBackend
from tuneforge.miner.admission import Admission, Admitted, Refusal
from tuneforge.miner.metrics import MinerMetrics
from tuneforge.miner.slots import SlotBook, SlotExpired
from tuneforge.miner.wav import encode_pcm16_wav
from tuneforge.miner.work_queue import QueueClosed, QueueFull, WorkQueue, worker_index

if TYPE_CHECKING:
    from loguru import Logger

MAX_SLOT_HEADER_CHARS = 64


@dataclass(frozen=True)
class Generated:
    """One finished generation, ready to send."""

    wav: bytes
    model_id: str  # the backend that made it (a routed miner holds several)
    sample_rate: int
    generation_ms: int
    signature_headers: dict[str, str]


class CallerGone(TuneForgeError):
    """The caller disconnected before its generation finished."""

    status = 499
    code = "caller_gone"


async def _wait_for_disconnect(request: Request) -> None:
    # The body is already read, so the next ASGI message is the disconnect (uvicorn sends it
    # when the connection drops, or after the response when nobody is waiting any more).
    while (await request.receive())["type"] != "http.disconnect":
        pass


T = TypeVar("T")


async def _result_unless_disconnected(request: Request, future: Future[T]) -> T:
    """The job's result; a caller that hangs up cancels a job that has not started yet."""
    waiter = asyncio.wrap_future(future)
    watcher = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        racing: set[asyncio.Future[Any]] = {waiter, watcher}
        await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not waiter.done():
        waiter.cancel()  # propagates to the queued job, which the worker then skips
        raise CallerGone()
    return waiter.result()


class GenerationService:
    """Admission → queue → backend → WAV → response signature, shared by every transport.

    `backends` holds one replica per device; the queue's worker `i` generates with replica `i`.
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        wallet: bt.Wallet,
        admission: Admission,
        queue: WorkQueue,
        metrics: MinerMetrics | None = None,
        slots: SlotBook | None = None,
    ) -> None:
        if len(backends) != queue.workers:
            raise ValueError(f"{len(backends)} model replicas for {queue.workers} workers")
        self.backends = list(backends)
        self.backend = self.backends[0]  # what /v1/info describes: every replica is the same
        self.slots = slots or SlotBook()
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
        backend = self.backends[worker_index()]
        producer = backend.route(synapse) if isinstance(backend, RoutedBackend) else backend
        started = time.perf_counter()
        audio = producer.generate(synapse)
        elapsed_s = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.observe_generation(elapsed_s)
        generation_ms = int(elapsed_s * 1000)
        wav = encode_pcm16_wav(audio)
        signature = sign_response(self._signer, "POST", GENERATE_PATH, wav, caller)
        return Generated(wav, producer.model_id, audio.sample_rate, generation_ms, signature)

    async def reserve(self, request: Request) -> SlotGrant:
        """Queue a reservation; answer once a worker holds it (it then waits for the prompt)."""
        caller, neuron = await self.admission.admit_reserve(request)
        log = logger.bind(caller=caller, uid=neuron.uid)
        try:
            slot = self.slots.open(caller)
        except SlotExpired as exc:
            self.admission.concurrency.release(caller)
            raise Refusal(503, str(exc), {"Retry-After": str(self.queue.retry_after_s)}) from None
        try:
            job = self.queue.submit(neuron.stake, lambda: self._run(self.slots.hold(slot), caller))
        except (QueueFull, QueueClosed) as exc:
            self.slots.close(slot)
            self.admission.concurrency.release(caller)
            retry = exc.retry_after_s if isinstance(exc, QueueFull) else 30
            log.info("reservation refused: {}", exc)
            raise Refusal(503, str(exc), {"Retry-After": str(retry)}) from None
        slot.job = job

        def settle(done: Future[Generated]) -> None:
            # The reservation held the caller's concurrency unit until its job ended; a job that
            # ended before a worker held it (evicted, shut down) tells the waiting reserve why.
            self.admission.concurrency.release(caller)
            self.slots.close(slot)
            failure: BaseException | None = (
                QueueClosed("reservation cancelled") if done.cancelled() else None
            )
            if failure is None and done.exception() is not None:
                failure = done.exception()
            if failure is not None:
                with contextlib.suppress(InvalidStateError):
                    slot.ready.set_exception(failure)

        job.add_done_callback(settle)
        try:
            await _result_unless_disconnected(request, slot.ready)
        except CallerGone:
            job.cancel()  # not started yet: skipped; already holding: released below
            with contextlib.suppress(InvalidStateError):
                slot.prompt.set_exception(SlotExpired("the caller left"))
            raise Refusal(499, "caller disconnected") from None
        except (QueueFull, QueueClosed) as exc:
            retry = exc.retry_after_s if isinstance(exc, QueueFull) else 30
            raise Refusal(503, str(exc), {"Retry-After": str(retry)}) from None
        if await request.is_disconnected():
            # Left just as a worker took the slot: free it now rather than after its lifetime.
            with contextlib.suppress(InvalidStateError):
                slot.prompt.set_exception(SlotExpired("the caller left"))
            raise Refusal(499, "caller disconnected")
        log.debug("slot held for {} s", self.slots.ttl_s)
        return SlotGrant(slot=slot.token, ttl_s=self.slots.ttl_s)

    async def generate(self, request: Request) -> Generated:
        token = request.headers.get(HEADER_SLOT)
        if token is not None:
            return await self._generate_in_slot(request, token[:MAX_SLOT_HEADER_CHARS])
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
            return await self._finish(request, future, synapse, log)
        finally:
            admitted.release()

    async def _generate_in_slot(self, request: Request, token: str) -> Generated:
        """The prompt for a reserved worker: it starts generating the moment this arrives."""
        admitted = await self.admission.admit_generate(request, hold=False)
        slot = self.slots.claim(token, admitted.caller)
        if slot is None or slot.job is None:
            raise Refusal(409, "unknown, expired or foreign slot: reserve again")
        try:
            slot.prompt.set_result(admitted.synapse)
        except InvalidStateError:
            raise Refusal(409, "the slot expired before the prompt arrived") from None
        log = logger.bind(caller=admitted.caller, uid=admitted.neuron.uid)
        return await self._finish(request, slot.job, admitted.synapse, log)

    async def _finish(
        self,
        request: Request,
        future: Future[Generated],
        synapse: MusicGenerationSynapse,
        log: Logger,
    ) -> Generated:
        """The job's result, with every failure mapped to its HTTP refusal."""
        try:
            generated = await _result_unless_disconnected(request, future)
        except CallerGone:
            log.info("caller left before {} was served; job dropped", synapse.challenge_id)
            raise Refusal(499, "caller disconnected") from None
        except QueueFull as exc:
            raise Refusal(503, str(exc), {"Retry-After": str(exc.retry_after_s)}) from None
        except QueueClosed as exc:
            raise Refusal(503, str(exc), {"Retry-After": "30"}) from None
        except SlotExpired as exc:
            raise Refusal(409, f"slot expired: {exc}") from None
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

    def response_headers(self, generated: Generated) -> dict[str, str]:
        return {
            HEADER_MODEL: generated.model_id,
            HEADER_GENERATION_MS: str(generated.generation_ms),
            HEADER_SAMPLE_RATE: str(generated.sample_rate),
            HEADER_SPEC_VERSION: SPEC_VERSION,
            **generated.signature_headers,
        }
