"""The validator's network-wide copy check: every clip of a round (or customer job) is looked up
in the API's fingerprint index (`POST /fingerprints/match`), in one batch, once the engine has
fingerprinted it.

A clip the index recognises as a (disguised) copy of a published track gets
`fingerprint_penalty` 0 — so a final score of 0 — with a reason that names the original track,
its miner and when it was published. The engine's own fingerprint penalty still compares each
clip with the round's other clips and this validator's local history; when the index cannot be
asked (no API configured, unreachable, refused) that local check is all there is and the reason
says so. Fingerprints computed here also travel with the published results, so the next round
anywhere on the network can recognise them. They are the engine's: each clip's fingerprint comes
back from the scoring pass that decoded it (`ScoredRound.fingerprints`, D48), so the validator
never decodes an answer again for this check, and the index is asked once the round is scored.

When the network has the public catalogue check on (`catalogue_penalty`, D31), the same task
asks AcoustID about every clip (validator/catalogue.py), concurrently with the index.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from tuneforge.core.audio import Audio, WavAudio
from tuneforge.scoring.base import ClipScore
from tuneforge.validator.api_client import ApiClient, ApiUnavailable
from tuneforge.validator.catalogue import CatalogueClient, CatalogueVerdict, apply_catalogue

MATCH_PATH = "/fingerprints/match"
BATCH = 256  # the API's batch limit
PENALTY = "fingerprint_penalty"
_TEXT = re.compile(r"^[A-Za-z0-9_\-:.+ ]{1,64}$")


@dataclass(frozen=True)
class Original:
    """The earliest published track a clip copies, as the index described it (checked)."""

    track_id: str
    miner_hotkey: str
    validator_hotkey: str
    created_at: str
    similarity: float
    covered_seconds: float
    semitones: int
    tempo: float

    def describe(self) -> str:
        return (
            f"copy of track {self.track_id} by miner {self.miner_hotkey} (published"
            f" {self.created_at}): {self.covered_seconds:.1f} s match, similarity"
            f" {self.similarity:.2f}, {self.semitones:+d} semitones, tempo x{self.tempo:.3f}"
        )


@dataclass
class CopyVerdict:
    """What the network check says about one clip."""

    fingerprint: str | None = None  # encoded, published with the track
    original: Original | None = None
    unchecked: str = ""  # why the index was not consulted ("" when it was)
    facts: dict[str, Any] = field(default_factory=dict)
    catalogue: CatalogueVerdict | None = None  # None: the catalogue check is not on


def _original(item: Any) -> Original | None:
    """A match entry from the API, or None when it is malformed (never trusted blindly)."""
    if not isinstance(item, dict):
        return None
    try:
        texts = [str(item[k]) for k in ("track_id", "miner_hotkey", "validator_hotkey")]
        created = str(item.get("created_at", ""))[:40]
        similarity = float(item["similarity"])
        covered = float(item["covered_seconds"])
        semitones = int(item.get("semitones", 0))
        tempo = float(item.get("tempo", 1.0))
    except (KeyError, TypeError, ValueError):
        return None
    if not all(_TEXT.match(t) for t in texts) or not 0.0 <= similarity <= 1.0:
        return None
    if not 0.0 <= covered <= 3600.0 or abs(semitones) > 12 or not 0.5 <= tempo <= 2.0:
        return None
    return Original(texts[0], texts[1], texts[2], created, similarity, covered, semitones, tempo)


class CopyChecker:
    """Batches a round's fingerprints to the API index (`api` None: local check only) and, when
    given a catalogue client, looks the clips up in the public catalogue at the same time."""

    def __init__(self, api: ApiClient | None, catalogue: CatalogueClient | None = None) -> None:
        self.api = api
        self.catalogue = catalogue

    async def check(
        self, encoded: Awaitable[list[str | None]], audios: list[Audio | WavAudio | None]
    ) -> list[CopyVerdict]:
        """A verdict per clip. `encoded` gives each clip's fingerprint (None: nothing to ask) when
        the engine has them; `audios` are the clips, which only the catalogue check reads: its
        lookups start at once, so they run while the engine scores."""
        looked_up = asyncio.create_task(self.catalogue.check(audios)) if self.catalogue else None
        try:
            verdicts = await self._check_index(await encoded)
        finally:
            catalogue = await looked_up if looked_up is not None else None
        if catalogue is not None:
            for verdict, found in zip(verdicts, catalogue, strict=True):
                verdict.catalogue = found
        return verdicts

    async def _check_index(self, encoded: list[str | None]) -> list[CopyVerdict]:
        verdicts = [CopyVerdict(fingerprint=e) for e in encoded]
        if self.api is None:
            return self._unchecked(verdicts, "no API configured")
        queries = [(str(i), e) for i, e in enumerate(encoded) if e is not None]
        for start in range(0, len(queries), BATCH):
            batch = queries[start : start + BATCH]
            body = {"fingerprints": [{"id": i, "fingerprint": e} for i, e in batch]}
            try:
                answer = await self.api.post_json(MATCH_PATH, body)
            except ApiUnavailable as exc:
                return self._unchecked(verdicts, f"API unreachable ({exc})")
            if answer.status != 200:
                return self._unchecked(verdicts, f"API answered {answer.status}: {answer.detail}")
            try:
                results = answer.json()["results"]
                if not isinstance(results, list):
                    raise TypeError("results is not a list")
            except (ValueError, KeyError, TypeError) as exc:
                return self._unchecked(verdicts, f"unreadable API answer ({exc})")
            asked = {i for i, _ in batch}
            for result in results[: len(batch)]:
                if not isinstance(result, dict) or str(result.get("id")) not in asked:
                    continue
                matches = result.get("matches")
                verdict = verdicts[int(result["id"])]
                verdict.facts["network_index"] = "checked"
                if isinstance(matches, list) and matches:
                    verdict.original = _original(matches[0])
        return verdicts

    @staticmethod
    def _unchecked(verdicts: list[CopyVerdict], why: str) -> list[CopyVerdict]:
        logger.warning("copy check against the network index skipped: {}", why)
        for verdict in verdicts:
            verdict.original = None
            verdict.unchecked = why
        return verdicts


def apply_verdicts(scores: list[ClipScore], verdicts: list[CopyVerdict]) -> None:
    """Zero the fingerprint penalty (and so the final score) of clips the index recognised;
    note on every other clip whether the index was consulted. Catalogue verdicts, when the
    check is on, go to `catalogue_penalty` the same way."""
    catalogue = [v.catalogue for v in verdicts]
    if all(c is not None for c in catalogue):
        apply_catalogue(scores, [c for c in catalogue if c is not None])
    for score, verdict in zip(scores, verdicts, strict=True):
        if score.error is not None or PENALTY not in score.penalties:
            continue
        details = score.details.setdefault(PENALTY, {})
        if verdict.original is not None:
            original = verdict.original
            match = {
                "track_id": original.track_id,
                "miner_hotkey": original.miner_hotkey,
                "validator_hotkey": original.validator_hotkey,
                "created_at": original.created_at,
                "similarity": original.similarity,
                "covered_seconds": original.covered_seconds,
            }
            score.zero_by(PENALTY, original.describe(), "network_match", match)
        elif verdict.unchecked:
            note = f"network copy index not consulted: {verdict.unchecked}; local history only"
            details["network_index"] = note
            existing = score.reasons.get(PENALTY, "")
            score.reasons[PENALTY] = f"{existing}; {note}" if existing else note
        else:
            details["network_index"] = "no published track matches"
