"""Who may make this miner work: the ordered checks of DESIGN.md §3, all before any generation.

Order (first failure wins): spec version 426 → body size 413 → btauth/1 signature, freshness,
receiver and replay 401 → caller registered on the cached metagraph 403 → validator permit and
minimum stake 403 → request JSON 422 → per-caller concurrency 429. Cheap checks come first and
the signature is checked before anything that depends on who the caller claims to be.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from loguru import logger
from pydantic import ValidationError
from starlette.requests import Request

from tuneforge.auth.btauth import AuthFailure, verify_request
from tuneforge.auth.nonces import NonceStore
from tuneforge.chain.base import Neuron
from tuneforge.chain.metagraph import MetagraphCache
from tuneforge.core.errors import TuneForgeError
from tuneforge.core.protocol import (
    HEADER_SPEC_VERSION,
    MAX_DURATION_S,
    MAX_REQUEST_BYTES,
    SPEC_VERSION,
    MusicGenerationSynapse,
    SlotRequest,
    is_compatible,
)

MAX_DETAIL_ERRORS = 5


class Refusal(TuneForgeError):
    """A request refused at admission; becomes `{"detail": ...}` with `status`."""

    code = "refused"

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


@dataclass(frozen=True)
class AdmissionPolicy:
    self_hotkey: str
    min_stake: float = 0.0
    require_validator_permit: bool = True
    request_max_age_s: float = 30.0
    max_concurrent_per_caller: int = 2
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_duration_s: float = MAX_DURATION_S  # the backend's limit may be below the protocol's
    body_timeout_s: float = 10.0  # a body trickled in slower than this holds a connection open


class CallerConcurrency:
    """Counts each caller's requests that are queued or running."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._active: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, hotkey: str) -> None:
        with self._lock:
            active = self._active.get(hotkey, 0)
            if active >= self.limit:
                raise Refusal(
                    429,
                    f"caller already has {active} requests in flight (limit {self.limit})",
                    {"Retry-After": "1"},
                )
            self._active[hotkey] = active + 1

    def release(self, hotkey: str) -> None:
        with self._lock:
            remaining = self._active.get(hotkey, 0) - 1
            if remaining > 0:
                self._active[hotkey] = remaining
            else:
                self._active.pop(hotkey, None)

    def active(self, hotkey: str) -> int:
        with self._lock:
            return self._active.get(hotkey, 0)


@dataclass
class Admitted:
    """An admitted generation request; holds a concurrency slot until `release()`."""

    caller: str
    neuron: Neuron
    synapse: MusicGenerationSynapse
    _concurrency: CallerConcurrency = field(repr=False)
    _released: bool = field(default=False, repr=False)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._concurrency.release(self.caller)


async def read_capped_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed `limit` bytes.

    A declared Content-Length is checked before reading; a chunked body is counted while read.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise Refusal(400, "Content-Length is not an integer") from None
        if size > limit:
            raise Refusal(413, f"request body is {size} bytes, limit is {limit}")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise Refusal(413, f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def check_spec_version(headers: Mapping[str, str]) -> None:
    peer = headers.get(HEADER_SPEC_VERSION)
    if not is_compatible(peer):
        stated = "missing" if peer is None else f"{peer[:16]!r}"
        raise Refusal(
            426,
            f"{HEADER_SPEC_VERSION} is {stated}; this miner speaks protocol {SPEC_VERSION}",
        )


def check_caller(neuron: Neuron | None, caller: str, policy: AdmissionPolicy) -> Neuron:
    """403 unless the caller is registered, has a permit (if required) and enough stake."""
    if neuron is None:
        raise Refusal(403, f"hotkey {caller} is not registered on this subnet")
    if policy.require_validator_permit and not neuron.validator_permit:
        raise Refusal(403, f"hotkey {caller} (uid {neuron.uid}) has no validator permit")
    if neuron.stake < policy.min_stake:
        raise Refusal(
            403,
            f"hotkey {caller} (uid {neuron.uid}) has {neuron.stake:.2f} alpha staked, "
            f"minimum is {policy.min_stake:.2f} alpha",
        )
    return neuron


def parse_synapse(body: bytes, max_duration_s: float = MAX_DURATION_S) -> MusicGenerationSynapse:
    """Validate the request JSON; 422 with the offending fields named."""
    try:
        synapse = MusicGenerationSynapse.model_validate_json(body)
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:MAX_DETAIL_ERRORS]:
            where = ".".join(str(part) for part in error["loc"]) or "body"
            problems.append(f"{where}: {error['msg']}")
        raise Refusal(422, "invalid generation request: " + "; ".join(problems)) from None
    if synapse.duration_seconds > max_duration_s:
        raise Refusal(
            422,
            f"invalid generation request: duration_seconds: this miner generates at most "
            f"{max_duration_s:g} s",
        )
    return synapse


class Admission:
    def __init__(
        self,
        policy: AdmissionPolicy,
        nonce_store: NonceStore,
        metagraph: MetagraphCache,
    ) -> None:
        self.policy = policy
        self.nonce_store = nonce_store
        self.metagraph = metagraph
        self.concurrency = CallerConcurrency(policy.max_concurrent_per_caller)

    async def _authenticate(self, request: Request) -> tuple[str, bytes]:
        check_spec_version(request.headers)
        try:
            async with asyncio.timeout(self.policy.body_timeout_s):
                body = await read_capped_body(request, self.policy.max_request_bytes)
        except TimeoutError:
            raise Refusal(
                408, f"request body not received within {self.policy.body_timeout_s:g} s"
            ) from None
        try:
            # Off the loop: the signature check is CPU work and a Redis nonce store is I/O.
            caller = await asyncio.to_thread(
                verify_request,
                dict(request.headers),
                body,
                request.method,
                request.url.path,
                self.policy.self_hotkey,
                self.nonce_store,
                max_age_s=self.policy.request_max_age_s,
            )
        except AuthFailure as exc:
            raise Refusal(exc.status, exc.reason) from None
        except Exception as exc:  # e.g. Redis unreachable: refuse rather than skip replay checks
            logger.error("request verification unavailable: {}", exc)
            raise Refusal(
                503, "request verification is temporarily unavailable", {"Retry-After": "5"}
            ) from None
        return caller, body

    async def admit_generate(self, request: Request, hold: bool = True) -> Admitted:
        """`hold=False` for a prompt sent to a reserved slot: its reservation already holds
        the caller's concurrency unit."""
        caller, body = await self._authenticate(request)
        neuron = check_caller(self.metagraph.get().by_hotkey(caller), caller, self.policy)
        synapse = parse_synapse(body, self.policy.max_duration_s)
        if not hold:
            return Admitted(caller, neuron, synapse, self.concurrency, _released=True)
        self.concurrency.acquire(caller)
        return Admitted(
            caller=caller, neuron=neuron, synapse=synapse, _concurrency=self.concurrency
        )

    async def admit_reserve(self, request: Request) -> tuple[str, Neuron]:
        """A reservation passes the same checks as a generation and holds a concurrency unit
        (released by the caller of this method when the reserved job ends)."""
        caller, body = await self._authenticate(request)
        neuron = check_caller(self.metagraph.get().by_hotkey(caller), caller, self.policy)
        try:
            wanted = SlotRequest.model_validate_json(body or b"{}")
        except ValidationError:
            raise Refusal(422, 'invalid reservation: expected {"duration_seconds": s}') from None
        if wanted.duration_seconds > self.policy.max_duration_s:
            raise Refusal(422, f"this miner generates at most {self.policy.max_duration_s:g} s")
        self.concurrency.acquire(caller)
        return caller, neuron

    async def admit_info(self, request: Request) -> str:
        """Info is cheap: any registered hotkey with a valid signature may ask."""
        caller, _ = await self._authenticate(request)
        if self.metagraph.get().by_hotkey(caller) is None:
            raise Refusal(403, f"hotkey {caller} is not registered on this subnet")
        return caller
