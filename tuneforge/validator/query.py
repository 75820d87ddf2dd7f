"""Ask miners for audio: signed request, deadline, capped streaming read, signed answer, decode.

Every answer is hostile until proven otherwise. Each query ends in exactly one `QueryOutcome`:
audio, or a failure code plus a human-readable reason. No retries inside a round: a miner that
fails gets its zero, the round goes on.

Reserve-then-send (docs/decisions.md D33): the validator first reserves a free worker with a
signed request that carries no prompt, then sends the challenge to that slot and times only
that second exchange (generation plus transfer) — time queued behind other validators is not
counted, and a miner cannot make the timed part shorter than real because it learns the prompt
only when the clock starts. A miner without the endpoint (404/405) is asked the old one-shot
way, and then the whole time counts. Each phase has its own `deadline_s`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
from bittensor.http_auth import HEADER_HOTKEY, HEADER_SIGNATURE
from loguru import logger

from tuneforge.auth.btauth import AuthFailure, BtAuth, SigningKey, verify_response
from tuneforge.chain.base import Neuron
from tuneforge.core.audio import AudioError, WavAudio
from tuneforge.core.protocol import (
    GENERATE_PATH,
    HEADER_GENERATION_MS,
    HEADER_MODEL,
    HEADER_SLOT,
    HEADER_SPEC_VERSION,
    MAX_SLOT_GRANT_BYTES,
    RESERVE_PATH,
    SPEC_VERSION,
    MusicGenerationSynapse,
    SlotGrant,
    SlotRequest,
)
from tuneforge.validator.failures import (
    BAD_ENCODING,
    BAD_SIGNATURE,
    BAD_SLOT,
    CONNECT_ERROR,
    HTTP_STATUS,
    MISSING_SIGNATURE,
    NO_AXON,
    TIMEOUT,
    TOO_LARGE,
    WRONG_SIGNER,
    classify_audio_error,
)

# Statuses that mean "this miner has no /v1/reserve": ask it the one-shot way.
_NO_RESERVE = frozenset({404, 405})

_MAX_HEADER_CHARS = 128

# Answers checked at once. Checking decodes the whole answer (≈ 50 MB of float64/float32 arrays
# for 30 s of stereo at 32 kHz) in a thread; 64 answers arriving together then held ~200 MB of
# such arrays at once in the validator on two cores, where two threads check as fast.
MAX_CONCURRENT_CHECKS = 2

# Where a checked answer goes instead of staying in memory: (its index in the round, the
# checked answer) -> the answer as it is kept (a round spools it to disk: validator/spool.py).
Keeper = Callable[[int, WavAudio], WavAudio]


@dataclass
class QueryOutcome:
    """One miner's answer to one challenge."""

    uid: int
    hotkey: str
    # The checked answer, kept encoded until it is scored (its bytes are `wav`, or in the
    # round's spool when the round keeps them there: `WavAudio.read`).
    audio: WavAudio | None = None
    wav: bytes | None = None  # the raw signed bytes (published with the result), if held here
    # sha256 of those bytes, taken once as the answer was checked: publication names the audio
    # by it without reading a spooled answer back to hash it
    audio_sha256: str | None = None
    code: str | None = None  # None on success, else one of the failure codes above
    reason: str | None = None
    status: int | None = None
    bytes_read: int = 0
    # The timed exchange: prompt sent -> last byte (with a slot), or the whole one-shot query.
    elapsed_ms: float = 0.0
    wait_ms: float = 0.0  # waiting for a slot (not counted as generation time)
    slotted: bool = False
    generation_ms: float | None = None
    model: str | None = None

    @property
    def ok(self) -> bool:
        return self.audio is not None

    @property
    def error(self) -> str | None:
        """ "code: reason" for a failure (what the scoring engine records), None on success."""
        return None if self.ok else f"{self.code}: {self.reason}"

    def facts(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "reason": self.reason,
            "status": self.status,
            "bytes_read": self.bytes_read,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "wait_ms": round(self.wait_ms, 1),
            "slotted": self.slotted,
            "generation_ms": self.generation_ms,
            "model": self.model,
        }


class _Failure(Exception):
    def __init__(self, code: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.status = status


def _clean_header(value: str | None) -> str | None:
    if value is None:
        return None
    value = "".join(ch for ch in value if ch.isprintable())
    return value[:_MAX_HEADER_CHARS]


def _generation_ms(headers: Mapping[str, str]) -> float | None:
    """The miner's self-reported generation time, if it is a sane number (it is only a hint)."""
    raw = headers.get(HEADER_GENERATION_MS)
    try:
        value = float(raw) if raw is not None and len(raw) <= 20 else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) and 0 <= value <= 3_600_000 else None


def _duration_of(body: bytes) -> float:
    """The requested duration of a synapse body we built ourselves (for the reservation)."""
    return float(json.loads(body)["duration_seconds"])


def axon_url(axon: str) -> str:
    return f"http://{axon}"


class MinerClient:
    """Queries miners over ONE shared httpx.AsyncClient (connection reuse, bounded pool)."""

    def __init__(
        self,
        wallet: SigningKey,
        max_response_bytes: int,
        max_audio_seconds: float,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.wallet = wallet
        self.hotkey: str = wallet.hotkey.ss58_address
        self.max_response_bytes = int(max_response_bytes)
        self.max_audio_seconds = float(max_audio_seconds)
        self._checks = asyncio.Semaphore(MAX_CONCURRENT_CHECKS)
        self._client = client or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            follow_redirects=False,
            trust_env=False,  # never route miner traffic through an environment proxy
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def query_many(
        self,
        neurons: list[Neuron],
        challenge: MusicGenerationSynapse,
        deadline_s: float,
        seeds: Mapping[str, int] | None = None,
        on_answer: Callable[[int, QueryOutcome], None] | None = None,
        keep: Keeper | None = None,
    ) -> list[QueryOutcome]:
        """Query every neuron concurrently (each with its seed from `seeds`, by hotkey, when
        given); outcomes come back in the same order. `on_answer(index, outcome)` is called on
        the event loop as each checked answer arrives (a round starts scoring it then).
        `keep(index, answer)`: where each checked answer goes (in its checking thread); the
        outcome then holds what it returns and no `wav` of its own."""
        seeds = seeds or {}

        def body(neuron: Neuron) -> bytes:
            seed = seeds.get(neuron.hotkey, challenge.seed)
            return challenge.model_copy(update={"seed": seed}).model_dump_json().encode()

        async def one(index: int, neuron: Neuron) -> QueryOutcome:
            kept = None if keep is None else partial(keep, index)
            outcome = await self.query(neuron, body(neuron), deadline_s, kept)
            if on_answer is not None and outcome.ok:
                on_answer(index, outcome)
            return outcome

        return list(await asyncio.gather(*(one(i, n) for i, n in enumerate(neurons))))

    async def query(
        self,
        neuron: Neuron,
        body: bytes,
        deadline_s: float,
        keep: Callable[[WavAudio], WavAudio] | None = None,
    ) -> QueryOutcome:
        outcome = QueryOutcome(uid=neuron.uid, hotkey=neuron.hotkey)
        started = time.perf_counter()
        timed_from = started
        answered: float | None = None
        log = logger.bind(uid=neuron.uid, hotkey=neuron.hotkey)
        try:
            if not neuron.axon:
                raise _Failure(NO_AXON, "miner serves no axon")
            async with asyncio.timeout(deadline_s):
                slot = await self._reserve(neuron, _duration_of(body), deadline_s)
            timed_from = time.perf_counter()
            outcome.wait_ms = (timed_from - started) * 1000.0
            outcome.slotted = slot is not None
            async with asyncio.timeout(deadline_s):
                await self._exchange(neuron, body, outcome, deadline_s, slot)
            answered = time.perf_counter()
            # Decoding up to 32 MiB is CPU work: keep it off the event loop. Only the facts stay;
            # the samples are decoded again where the clip is scored. Timing ended above: a
            # wait for a checking thread is not the miner's time.
            async with self._checks:
                outcome.audio, outcome.audio_sha256 = await asyncio.to_thread(
                    self._check, outcome.wav or b"", keep
                )
            if keep is not None:
                outcome.wav = None  # kept where `keep` put it; this copy would last the round
        except (TimeoutError, httpx.TimeoutException):
            outcome.code, outcome.reason = TIMEOUT, f"no complete answer within {deadline_s:.1f} s"
        except _Failure as failure:
            outcome.code, outcome.reason = failure.code, failure.reason
            outcome.status = failure.status if failure.status is not None else outcome.status
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            outcome.code, outcome.reason = CONNECT_ERROR, f"{type(exc).__name__}: {exc}"[:300]
        finally:
            end = answered if answered is not None else time.perf_counter()
            outcome.elapsed_ms = (end - timed_from) * 1000.0
        if outcome.ok:
            log.debug("answer in {:.0f} ms, {} bytes", outcome.elapsed_ms, outcome.bytes_read)
        else:
            outcome.wav = None
            log.info("uid {} failed: {} ({})", neuron.uid, outcome.code, outcome.reason)
        return outcome

    async def _reserve(self, neuron: Neuron, duration_s: float, deadline_s: float) -> str | None:
        """A slot token once a worker is free; None when the miner has no /v1/reserve."""
        body = SlotRequest(duration_seconds=duration_s).model_dump_json().encode()
        scratch = QueryOutcome(uid=neuron.uid, hotkey=neuron.hotkey)
        async with self._signed_post(neuron, RESERVE_PATH, body, deadline_s) as response:
            if response.status_code in _NO_RESERVE:
                return None
            answer = await self._read_capped(response, scratch, MAX_SLOT_GRANT_BYTES, fail=False)
            if response.status_code != 200:
                text = answer.decode("utf-8", "replace").strip()[:200]
                raise _Failure(
                    HTTP_STATUS,
                    f"reserve: HTTP {response.status_code}: {text}",
                    response.status_code,
                )
        if scratch.bytes_read > MAX_SLOT_GRANT_BYTES:
            raise _Failure(BAD_SLOT, f"slot grant exceeds {MAX_SLOT_GRANT_BYTES} bytes")
        try:
            return SlotGrant.model_validate_json(answer).slot
        except ValueError:
            raise _Failure(BAD_SLOT, "reserve answered 200 without a valid slot token") from None

    def _signed_post(
        self, neuron: Neuron, path: str, body: bytes, deadline_s: float, slot: str | None = None
    ) -> AbstractAsyncContextManager[httpx.Response]:
        """A btauth/1-signed streaming POST of a JSON body to one of the miner's paths."""
        headers = {
            HEADER_SPEC_VERSION: SPEC_VERSION,
            "Content-Type": "application/json",
            "Accept-Encoding": "identity",
        }
        if slot is not None:
            headers[HEADER_SLOT] = slot
        # httpx's own per-phase timeouts must not be shorter than the round's deadline: a miner
        # may legitimately send nothing until its generation is done.
        timeout = httpx.Timeout(deadline_s, connect=min(5.0, deadline_s))
        return self._client.stream(
            "POST",
            axon_url(neuron.axon or "") + path,
            content=body,
            headers=headers,
            timeout=timeout,
            auth=BtAuth(self.wallet, neuron.hotkey),
        )

    async def _exchange(
        self,
        neuron: Neuron,
        body: bytes,
        outcome: QueryOutcome,
        deadline_s: float,
        slot: str | None = None,
    ) -> None:
        async with self._signed_post(neuron, GENERATE_PATH, body, deadline_s, slot) as response:
            outcome.status = response.status_code
            outcome.model = _clean_header(response.headers.get(HEADER_MODEL))
            outcome.generation_ms = _generation_ms(response.headers)
            if response.status_code != 200:
                detail = await self._read_capped(response, outcome, limit=2048, fail=False)
                text = detail.decode("utf-8", "replace").strip()[:200]
                raise _Failure(
                    HTTP_STATUS, f"HTTP {response.status_code}: {text}", response.status_code
                )
            encoding = response.headers.get("Content-Encoding", "identity").lower()
            if encoding not in ("", "identity"):
                # A compressed body could expand far beyond the byte cap once decoded.
                raise _Failure(BAD_ENCODING, f"Content-Encoding {encoding!r} is not accepted")
            declared = response.headers.get("Content-Length")
            if (
                declared is not None
                and declared.isdigit()
                and int(declared) > self.max_response_bytes
            ):
                raise _Failure(
                    TOO_LARGE,
                    f"declared {declared} bytes, limit is {self.max_response_bytes}",
                )
            wav = await self._read_capped(response, outcome, self.max_response_bytes, fail=True)
            self._verify_signature(response.headers, wav, neuron.hotkey)
            outcome.wav = wav

    async def _read_capped(
        self, response: httpx.Response, outcome: QueryOutcome, limit: int, fail: bool
    ) -> bytes:
        """Read the raw body, stopping as soon as it passes `limit` bytes."""
        chunks: list[bytes] = []
        total = 0
        async for chunk in response.aiter_raw():
            total += len(chunk)
            outcome.bytes_read = total
            if total > limit:
                if fail:
                    raise _Failure(TOO_LARGE, f"answer exceeds {limit} bytes; stopped reading")
                chunks.append(chunk[: limit - (total - len(chunk))])
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def _verify_signature(self, headers: Mapping[str, str], wav: bytes, miner_hotkey: str) -> None:
        """The body must be signed by the miner we asked, bound to us (btauth/1)."""
        if not headers.get(HEADER_SIGNATURE) or not headers.get(HEADER_HOTKEY):
            raise _Failure(MISSING_SIGNATURE, "answer carries no btauth/1 signature")
        signer = headers.get(HEADER_HOTKEY, "")
        if signer != miner_hotkey:
            raise _Failure(
                WRONG_SIGNER, f"signed by {_clean_header(signer)}, expected {miner_hotkey}"
            )
        try:
            verify_response(
                headers,
                wav,
                "POST",
                GENERATE_PATH,
                expected_signer_ss58=miner_hotkey,
                self_hotkey_ss58=self.hotkey,
            )
        except AuthFailure as exc:
            code = WRONG_SIGNER if getattr(exc, "kind", "") == "wrong_signer" else BAD_SIGNATURE
            raise _Failure(code, exc.reason) from None

    def _check(
        self, wav: bytes, keep: Callable[[WavAudio], WavAudio] | None
    ) -> tuple[WavAudio, str]:
        """The checked answer (kept where `keep` puts it) and its bytes' sha256."""
        try:
            audio = WavAudio.checked(
                wav, max_bytes=self.max_response_bytes, max_seconds=self.max_audio_seconds
            )
        except AudioError as exc:
            raise _Failure(classify_audio_error(exc), str(exc)) from None
        digest = hashlib.sha256(wav).hexdigest()
        return (audio if keep is None else keep(audio)), digest
