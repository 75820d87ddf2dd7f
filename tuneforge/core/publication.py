"""The publication contract: what a validator sends the API, where, and what the API accepts.

One module for both ends of that wire (docs/decisions.md D51). The validator builds its
payloads with the builders below and its outbox sends them to the paths below; the API's request
schemas (`tuneforge.api.schemas`) are the models below plus the API's own storage defences (JSON
safety, the fingerprint codec, whole milliseconds). A foundation: it imports the protocol and
nothing of `validator/` or `api/`, so both roles can stand on it without meeting each other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tuneforge.core.protocol import MAX_REQUEST_BYTES, MusicGenerationSynapse

# -- what a customer chooses ------------------------------------------------------------------

# The validator always chooses these itself: a job must not be told from a challenge by its id
# format or its seed (docs/decisions.md D50).
VALIDATOR_CHOSEN_FIELDS: Final = ("challenge_id", "seed")
# Every other field of the protocol's request is the customer's content, in the protocol's
# order; derived, so a field added to the protocol reaches customers without a second list.
CONTENT_FIELDS: Final[tuple[str, ...]] = tuple(
    name for name in MusicGenerationSynapse.model_fields if name not in VALIDATOR_CHOSEN_FIELDS
)


def content_of(request: Mapping[str, Any]) -> dict[str, Any]:
    """The customer-chosen part of a request: those of its content fields that are present."""
    return {name: request[name] for name in CONTENT_FIELDS if name in request}


# -- where it goes (paths under API_PREFIX; templates the API routes are declared with) ---------

API_PREFIX: Final = "/api/v1"
SCORES_PATH: Final = "/scores"
TRACK_AUDIO_PATH: Final = "/scores/audio/{track_id}"
JOB_CLAIM_PATH: Final = "/validator/jobs/claim"
JOB_AUDIO_PATH: Final = "/validator/audio/{sha256}"
JOB_RESULT_PATH: Final = "/validator/jobs/{request_id}/result"

# The validator's outbox kinds, one per kind of request above (stored in its state file: the
# strings are part of the on-disk format too).
ROUND_RESULT: Final = "round_result"  # POST SCORES_PATH
TRACK_AUDIO: Final = "track_audio"  # PUT TRACK_AUDIO_PATH
JOB_AUDIO: Final = "job_audio"  # PUT JOB_AUDIO_PATH
JOB_RESULT: Final = "job_result"  # POST JOB_RESULT_PATH

# -- bounds -------------------------------------------------------------------------------------

TRACK_ID_PATTERN: Final = r"^[A-Za-z0-9_\-]{1,64}$"
SHA256_PATTERN: Final = r"^[0-9a-f]{64}$"
# Bounded and inert, not ss58-checked: a display field, never used to authenticate.
HOTKEY_PATTERN: Final = r"^[A-Za-z0-9_\-]{1,64}$"
MAX_BREAKDOWN_ENTRIES: Final = 64
MAX_EXCLUDED_ENTRIES: Final = 32
MAX_EXCLUDED_REASON_CHARS: Final = 300
MAX_CHALLENGE_JSON_BYTES: Final = MAX_REQUEST_BYTES
# `block` is stored as BIGINT but bounded tighter, to what every JSON client reads exactly
# (2^53: a block every 12 s for a billion years).
MAX_BLOCK: Final = 2**53 - 1
MAX_ROUND_RESULTS: Final = 1024
MAX_JOB_TRACKS: Final = 16
MAX_JOB_ERROR_CHARS: Final = 2000

Score = Annotated[float, Field(ge=0.0, le=1.0)]
# No pattern: on a dict key it would become `patternProperties`, which constrains nothing for keys
# that do not match.
ScorerName = Annotated[str, Field(min_length=1, max_length=64)]


class WireModel(BaseModel):
    # strict: `false` is not a number and "1" is not an integer; no NaN/Infinity anywhere.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class ScoredTrack(WireModel):
    """One scored answer, as a job result carries it (and a round result, with its id)."""

    miner_uid: int | None = Field(default=None, ge=0, lt=65536)
    miner_hotkey: str = Field(pattern=HOTKEY_PATTERN)
    final_score: Score
    composite: Score
    # null = the scorer or penalty did not run (not measured), never the same as 0.
    score_breakdown: dict[ScorerName, Score | None] = Field(
        default_factory=dict, max_length=MAX_BREAKDOWN_ENTRIES
    )
    penalties: dict[ScorerName, Score | None] = Field(
        default_factory=dict, max_length=MAX_BREAKDOWN_ENTRIES
    )
    # Why a scorer or penalty is null: {name: reason}.
    excluded: dict[ScorerName, Annotated[str, Field(max_length=MAX_EXCLUDED_REASON_CHARS)]] = Field(
        default_factory=dict, max_length=MAX_EXCLUDED_ENTRIES
    )
    # True when the validator ran without its network's full scorer set.
    degraded: bool = False
    # Measured by the validator (request sent -> last byte read), never the miner's claim.
    generation_ms: float | None = Field(default=None, ge=0, le=3_600_000)
    audio_sha256: str = Field(pattern=SHA256_PATTERN)
    duration_seconds: float = Field(gt=0.0, le=600.0)
    sample_rate: int = Field(ge=1000, le=384_000)
    # The track's copy fingerprint (tuneforge.scoring.fingerprint.encode); indexed network-wide.
    fingerprint: str | None = None


class PublishedTrack(ScoredTrack):
    """A round's scored answer: named by a track id, always by a uid."""

    track_id: str = Field(pattern=TRACK_ID_PATTERN)
    miner_uid: int = Field(ge=0, lt=65536)


class RoundResult(WireModel):
    """`POST /scores`: a round's challenge and every answer that carried audio."""

    round_id: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    block: int = Field(ge=0, le=MAX_BLOCK)
    challenge: dict[str, Any] = Field(
        description=f"the challenge as sent to miners; JSON of at most "
        f"{MAX_CHALLENGE_JSON_BYTES} bytes, finite numbers, no NUL"
    )
    results: list[PublishedTrack] = Field(
        min_length=1,
        max_length=MAX_ROUND_RESULTS,
        description="track_id values are unique within a round",
    )

    @field_validator("challenge")
    @classmethod
    def _challenge_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > MAX_CHALLENGE_JSON_BYTES:
            raise ValueError(f"challenge is larger than {MAX_CHALLENGE_JSON_BYTES} bytes")
        return value

    @field_validator("results")
    @classmethod
    def _unique_track_ids(cls, value: list[PublishedTrack]) -> list[PublishedTrack]:
        if len({r.track_id for r in value}) != len(value):
            raise ValueError("track_id values must be unique within a round")
        return value


class JobResult(WireModel):
    """A claimed job's outcome: tracks whose WAVs were uploaded first, or an error."""

    tracks: list[ScoredTrack] = Field(default_factory=list, max_length=MAX_JOB_TRACKS)
    error: str | None = Field(default=None, max_length=MAX_JOB_ERROR_CHARS)


# -- the validator's builders: the JSON it sends, key for key the models above ------------------


def scored_track(
    *,
    miner_uid: int,
    miner_hotkey: str,
    score_fields: Mapping[str, Any],
    generation_ms: float | None,
    audio_sha256: str,
    duration_seconds: float,
    sample_rate: int,
    fingerprint: str | None,
) -> dict[str, Any]:
    """A `ScoredTrack` as JSON-ready data. `score_fields` is the scoring engine's part
    (`ClipScore.published_fields()`: final_score, composite, breakdown, penalties, excluded,
    degraded); a clip without a fingerprint sends none rather than null."""
    return {
        "miner_uid": miner_uid,
        "miner_hotkey": miner_hotkey,
        **score_fields,
        "generation_ms": generation_ms,
        "audio_sha256": audio_sha256,
        "duration_seconds": duration_seconds,
        "sample_rate": sample_rate,
        **({"fingerprint": fingerprint} if fingerprint else {}),
    }


def published_track(track_id: str, track: Mapping[str, Any]) -> dict[str, Any]:
    """A `PublishedTrack`: a scored track named for its round."""
    return {"track_id": track_id, **track}


def round_result(
    round_id: str, block: int, challenge: MusicGenerationSynapse, tracks: list[dict[str, Any]]
) -> dict[str, Any]:
    """A `RoundResult` (the body of `POST /scores`)."""
    return {
        "round_id": round_id,
        "block": block,
        "challenge": challenge.model_dump(),
        "results": tracks,
    }


def job_result(tracks: list[dict[str, Any]]) -> dict[str, Any]:
    """A served job's `JobResult`."""
    return {"tracks": tracks}


def job_failure(error: str) -> dict[str, Any]:
    """A failed job's `JobResult`: no tracks, so the API refunds the customer."""
    return {"tracks": [], "error": error[:MAX_JOB_ERROR_CHARS]}
