"""The public catalogue check: is a clip an existing recording that AcoustID knows?

A miner can answer challenges from a library of real recordings; the network copy index only
knows what validators published. With an AcoustID application key, the validator takes each
clip's chromaprint (libchromaprint via pyacoustid) and asks AcoustID's lookup service; a match
zeroes `catalogue_penalty` with the recording named in the reason.

The check is a consensus row (`weights.PENALTIES`): while the row is inactive no validator looks
anything up, and when a network turns it on every validator of a real network must hold a key or
refuse to start (D31) — never a check that one validator runs and another silently skips.

Lookups stay off the scoring path's critical time: they run while the engine scores, at most
REQUESTS_PER_SECOND (AcoustID's limit per application), each answer cached by the chromaprint's
digest; a lookup still running when the round has waited `wait_s` is reported as not done for
that clip (and finishes in the background, so the cache has it next time).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from loguru import logger

from tuneforge.core.audio import Audio, WavAudio, decoded
from tuneforge.core.errors import TuneForgeError
from tuneforge.scoring.base import ClipScore

LOOKUP_URL = "https://api.acoustid.org/v2/lookup"
REQUESTS_PER_SECOND = 3.0  # AcoustID's published limit per application key
MIN_SCORE = 0.8  # AcoustID's own match score; below it the service itself is unsure
MAX_ANSWER_BYTES = 256 * 1024  # a lookup answer with recordings is a few KB
MAX_FINGERPRINT_SECONDS = 120  # AcoustID fingerprints the first two minutes
CACHE_SIZE = 20_000
PENALTY = "catalogue_penalty"
_TEXT = re.compile(r"[^\w\s\-.,:;'&()/!?+#]", re.UNICODE)


class CatalogueUnavailable(TuneForgeError, RuntimeError):
    """The lookup could not be made or read (network, status, malformed answer)."""

    status = 503
    code = "catalogue_unavailable"


@dataclass(frozen=True)
class Recording:
    """An existing recording the catalogue matched a clip to (fields sanitised)."""

    acoustid: str
    recording_id: str
    title: str
    artists: str
    score: float

    def describe(self) -> str:
        who = f" by {self.artists}" if self.artists else ""
        return (
            f"existing recording '{self.title or 'untitled'}'{who} (MusicBrainz recording"
            f" {self.recording_id or 'unknown'}, AcoustID {self.acoustid}, score {self.score:.2f})"
        )


@dataclass
class CatalogueVerdict:
    recording: Recording | None = None
    unchecked: str = ""  # why this clip was not looked up ("" when it was)


def chromaprint(audio: Audio | WavAudio) -> tuple[int, str]:
    """(duration in whole seconds, compressed chromaprint) of the first two minutes, mono 16-bit.
    Raises CatalogueUnavailable when libchromaprint cannot be loaded."""
    try:
        import acoustid
    except ImportError as exc:  # pyacoustid is in the validator extra
        raise CatalogueUnavailable("pyacoustid is not installed") from exc
    audio = decoded(audio)  # a queued answer is decoded here, in the lookup's thread
    mono = np.asarray(audio.mono(), dtype=np.float32)[: MAX_FINGERPRINT_SECONDS * audio.sample_rate]
    pcm = (np.clip(mono, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    try:
        printed = acoustid.fingerprint(audio.sample_rate, 1, iter([pcm]))
    except acoustid.FingerprintGenerationError as exc:
        raise CatalogueUnavailable(f"chromaprint failed: {exc}") from exc
    return int(round(len(mono) / audio.sample_rate)), printed.decode("ascii")


def _clean(value: Any, limit: int = 120) -> str:
    return _TEXT.sub("", str(value))[:limit].strip() if value is not None else ""


def best_recording(answer: Any) -> Recording | None:
    """The best-scoring recording of an AcoustID lookup answer at or above MIN_SCORE, None when
    there is none; CatalogueUnavailable when the answer is not a lookup answer."""
    if not isinstance(answer, dict) or answer.get("status") != "ok":
        error = answer.get("error") if isinstance(answer, dict) else None
        raise CatalogueUnavailable(f"catalogue answered an error: {_clean(error, 200)}")
    results = answer.get("results")
    if not isinstance(results, list):
        raise CatalogueUnavailable("catalogue answer has no result list")
    best: Recording | None = None
    for result in results[:50]:
        if not isinstance(result, dict):
            continue
        try:
            score = float(result.get("score", 0.0))
        except (TypeError, ValueError):
            continue
        if not MIN_SCORE <= score <= 1.0 or (best is not None and score <= best.score):
            continue
        recordings = result.get("recordings")
        first = recordings[0] if isinstance(recordings, list) and recordings else {}
        first = first if isinstance(first, dict) else {}
        artists = first.get("artists")
        names = (
            [a.get("name") for a in artists[:5] if isinstance(a, dict)]
            if isinstance(artists, list)
            else []
        )
        best = Recording(
            acoustid=_clean(result.get("id"), 64) or "unknown",
            recording_id=_clean(first.get("id"), 64),
            title=_clean(first.get("title")),
            artists=", ".join(_clean(n, 60) for n in names if n),
            score=round(score, 4),
        )
    return best


class RateLimiter:
    """At most `per_second` starts per second across all callers (evenly spaced)."""

    def __init__(self, per_second: float) -> None:
        self._spacing = 1.0 / per_second
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self._spacing
        if delay > 0:
            await asyncio.sleep(delay)


class CatalogueClient:
    """Rate-limited, cached AcoustID lookups over one shared httpx client."""

    def __init__(
        self,
        api_key: str,
        url: str = LOOKUP_URL,
        timeout_s: float = 10.0,
        per_second: float = REQUESTS_PER_SECOND,
        wait_s: float = 30.0,
    ) -> None:
        if not api_key:
            raise ValueError("the catalogue check needs an AcoustID application key")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"catalogue url must start with http:// or https://, got {url!r}")
        self.url = url
        self.wait_s = wait_s
        self._key = api_key
        self._limiter = RateLimiter(per_second)
        self._cache: OrderedDict[bytes, Recording | None] = OrderedDict()
        self._running: set[asyncio.Task[Any]] = set()  # lookups that outlived a round's wait
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            follow_redirects=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        for task in list(self._running):
            task.cancel()
        await self._client.aclose()

    async def lookup(self, audio: Audio | WavAudio) -> Recording | None:
        """The recording this audio is, or None; CatalogueUnavailable when it cannot be told."""
        duration, printed = await asyncio.to_thread(chromaprint, audio)
        digest = hashlib.sha256(printed.encode("ascii")).digest()
        if digest in self._cache:
            self._cache.move_to_end(digest)
            return self._cache[digest]
        await self._limiter.wait()
        form = {
            "client": self._key,
            "duration": str(duration),
            "fingerprint": printed,
            "meta": "recordings",
            "format": "json",
        }
        try:
            async with self._client.stream("POST", self.url, data=form) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise CatalogueUnavailable("catalogue answer too large")
        except httpx.HTTPError as exc:
            raise CatalogueUnavailable(f"catalogue unreachable ({type(exc).__name__})") from exc
        try:
            answer = json.loads(bytes(body))
        except ValueError as exc:
            raise CatalogueUnavailable(
                f"catalogue answered {response.status_code}, not JSON"
            ) from exc
        found = best_recording(answer)  # raises on an error answer: not cached, retried next time
        self._cache[digest] = found
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return found

    async def check(self, audios: list[Audio | WavAudio | None]) -> list[CatalogueVerdict]:
        """One verdict per clip, waiting at most `wait_s` for the lookups of this batch."""
        verdicts = [CatalogueVerdict() for _ in audios]
        tasks = {
            i: asyncio.create_task(self.lookup(audio))
            for i, audio in enumerate(audios)
            if audio is not None
        }
        if tasks:
            await asyncio.wait(tasks.values(), timeout=self.wait_s)
        for i, task in tasks.items():
            if not task.done():
                verdicts[i].unchecked = f"catalogue lookup not answered within {self.wait_s:g} s"
                self._running.add(task)
                task.add_done_callback(self._finished)
            elif task.exception() is not None:
                verdicts[i].unchecked = str(task.exception())
            else:
                verdicts[i].recording = task.result()
        return verdicts

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.debug("late catalogue lookup failed: {}", task.exception())


def apply_catalogue(scores: list[ClipScore], verdicts: list[CatalogueVerdict]) -> None:
    """Zero `catalogue_penalty` (and the final score) of clips that are existing recordings; say
    on the others whether the catalogue was consulted. Clips the engine did not run the check
    on (inactive row, failed clip) are left alone."""
    for score, verdict in zip(scores, verdicts, strict=True):
        if score.error is not None or score.penalties.get(PENALTY) is None:
            continue
        details = score.details.setdefault(PENALTY, {})
        if verdict.recording is not None:
            recording = verdict.recording
            found = {
                "acoustid": recording.acoustid,
                "recording_id": recording.recording_id,
                "title": recording.title,
                "artists": recording.artists,
                "score": recording.score,
            }
            score.zero_by(PENALTY, recording.describe(), "recording", found)
        elif verdict.unchecked:
            # fail closed would punish honest miners for AcoustID's outages; the clip still went
            # through the network index and local history, and the reason says what is missing
            details["catalogue"] = f"not consulted: {verdict.unchecked}"
            score.reasons[PENALTY] = f"catalogue not consulted: {verdict.unchecked}"
        else:
            details["catalogue"] = "no existing recording matches"
