"""Request and error bodies of the API: every field bounded and strictly typed, unknown fields
refused (400).

Everything a client sends is hostile until checked: numbers must be finite and fit the column
they are stored in, strings must be storable by both databases (no NUL, valid UTF-8), and
free-form JSON (`challenge`) is walked once with the same rules plus a depth bound.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tuneforge.core import protocol, publication
from tuneforge.core.errors import TuneForgeError
from tuneforge.core.publication import TRACK_ID_PATTERN
from tuneforge.scoring.fingerprint import BadFingerprint
from tuneforge.scoring.fingerprint import decode as decode_fingerprint
from tuneforge.scoring.fingerprint import encoded_limit as fingerprint_encoded_limit

REQUEST_ID_PATTERN = r"^req_[A-Za-z0-9]{1,48}$"
# Opaque to clients; what `next_cursor` holds (url-safe base64 without padding).
CURSOR_PATTERN = r"^[A-Za-z0-9_\-]{1,128}$"
# Printable, no NUL: what PostgreSQL text columns can hold and a log line can show.
SAFE_TEXT_PATTERN = r"^[^\u0000-\u001f]*$"
MUSICAL_KEY_PATTERN = r"^[A-G](#|b)? (major|minor)$"
MAX_JSON_DEPTH = 16
# Integers in free-form JSON are bounded to what every JSON client reads exactly.
MAX_JSON_INT = 2**53
MAX_VARIANTS = 4
MAX_CALLBACK_URL_CHARS = 2048


class UnsafeJson(TuneForgeError, ValueError):
    """A value no database column or JSON client can hold faithfully."""

    status = 400
    code = "unsafe_json"


def check_json_safe(value: Any, where: str = "body", depth: int = 0) -> None:
    """Raise UnsafeJson for non-finite floats, out-of-range integers, NUL characters or lone
    surrogates in strings (keys included), and nesting deeper than MAX_JSON_DEPTH."""
    if depth > MAX_JSON_DEPTH:
        raise UnsafeJson(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnsafeJson(f"{where}: numbers must be finite (no NaN or Infinity)")
        return
    if isinstance(value, int):
        if abs(value) > MAX_JSON_INT:
            raise UnsafeJson(f"{where}: integers must be within +-2^53")
        return
    if isinstance(value, str):
        _check_text(value, where)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UnsafeJson(f"{where}: object keys must be strings")
            _check_text(key, where)
            check_json_safe(item, f"{where}.{key[:32]}", depth + 1)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_json_safe(item, f"{where}[{index}]", depth + 1)
        return
    raise UnsafeJson(f"{where}: unsupported JSON value")


def _check_text(value: str, where: str) -> None:
    if "\x00" in value:
        raise UnsafeJson(f"{where}: strings must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeJson(f"{where}: strings must be valid Unicode (no lone surrogates)") from None


class _Strict(BaseModel):
    # strict: `false` is not a number and "1" is not an integer; no NaN/Infinity anywhere.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _json_safe(cls, value: Any) -> Any:
        check_json_safe(value)
        return value


class ErrorBody(BaseModel):
    """Every error answer: `{"detail": "<human readable>"}`."""

    detail: str


SEED_REFUSED = (
    "a seed cannot be honoured: each miner generates with its own seed chosen by the validator; "
    "omit it (or send null)"
)


class GenerateRequest(_Strict):
    prompt: str = Field(min_length=1, max_length=protocol.MAX_PROMPT_CHARS)
    genre: str | None = Field(default=None, max_length=protocol.MAX_FIELD_CHARS)
    mood: str | None = Field(default=None, max_length=protocol.MAX_FIELD_CHARS)
    duration_seconds: float = Field(
        default=15.0, ge=protocol.MIN_DURATION_S, le=protocol.MAX_DURATION_S
    )
    tempo_bpm: int | None = Field(
        default=None, ge=protocol.MIN_TEMPO_BPM, le=protocol.MAX_TEMPO_BPM
    )
    key: str | None = Field(
        default=None, max_length=8, pattern=MUSICAL_KEY_PATTERN, description='e.g. "A minor"'
    )
    instruments: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=protocol.MAX_INSTRUMENTS
    )
    vocals: bool = False
    lyrics: str | None = Field(default=None, max_length=protocol.MAX_LYRICS_CHARS)
    # Kept in the contract (API.md) but only as null: see `_no_customer_seed`.
    seed: int | None = Field(default=None, description="must be null or omitted (D50)")
    # Extensions (docs/api.md): candidates from distinct miners, and a completion callback.
    variants: int = Field(
        default=1, ge=1, le=MAX_VARIANTS, description="tracks from distinct miners; credits x n"
    )
    callback_url: str | None = Field(
        default=None,
        max_length=MAX_CALLBACK_URL_CHARS,
        pattern=SAFE_TEXT_PATTERN,
        description="https URL POSTed the status body (signed) when the job completes or fails",
    )

    @field_validator("seed")
    @classmethod
    def _no_customer_seed(cls, value: int | None) -> None:
        """A seed the API stored and then dropped would promise reproducibility it cannot give:
        every miner gets its own validator-derived seed (identical seeds make honest miners on
        one model answer alike, which the copy check would punish), and a customer-chosen seed
        would let a miner tell a job from a scored challenge."""
        if value is not None:
            raise ValueError(SEED_REFUSED)
        return None


class _TrackDefences(BaseModel):
    """What the API adds to a track of the contract: the codec's check of the fingerprint it
    indexes, and milliseconds as the whole number its column stores."""

    fingerprint: str | None = Field(default=None, max_length=fingerprint_encoded_limit())

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                decode_fingerprint(value)
            except BadFingerprint as exc:
                raise ValueError(str(exc)) from None
        return value

    # check_fields=False: the field is the contract's, this mixin only adds the rounding.
    @field_validator("generation_ms", check_fields=False)
    @classmethod
    def _whole_ms(cls, value: float | None) -> int | None:
        # Validators measure it as a float (header parse); stored as whole milliseconds.
        return None if value is None else round(value)


# The publication contract's models (tuneforge.core.publication) with the API's defences: the field
# list and bounds have one source, shared with the validator that builds these bodies (D51).
class ScoredTrackFields(_Strict, _TrackDefences, publication.ScoredTrack):
    pass


class PublishedResult(_Strict, _TrackDefences, publication.PublishedTrack):
    pass


class PublishRound(_Strict, publication.RoundResult):
    results: list[PublishedResult] = Field(  # type: ignore[assignment]
        min_length=1,
        max_length=publication.MAX_ROUND_RESULTS,
        description="track_id values are unique within a round",
    )


class ClaimRequest(_Strict):
    max_jobs: int = Field(default=1, ge=1, le=256)


class JobResult(_Strict, publication.JobResult):
    """A claimed job's outcome: tracks whose WAVs were uploaded first, or an error."""

    tracks: list[ScoredTrackFields] = Field(  # type: ignore[assignment]
        default_factory=list, max_length=publication.MAX_JOB_TRACKS
    )


class VoteRequest(_Strict):
    vote: Literal["up", "down"]


class CompareRequest(_Strict):
    """Two tracks of the same request: the customer prefers `winner` over `loser`."""

    winner: str = Field(pattern=TRACK_ID_PATTERN)
    loser: str = Field(pattern=TRACK_ID_PATTERN)

    @model_validator(mode="after")
    def _distinct(self) -> CompareRequest:
        if self.winner == self.loser:
            raise ValueError("winner and loser must be different tracks")
        return self
