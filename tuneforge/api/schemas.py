"""Request bodies of the API: every field bounded, unknown fields refused (400)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tuneforge import protocol
from tuneforge.scoring.fingerprint import BadFingerprint
from tuneforge.scoring.fingerprint import decode as decode_fingerprint
from tuneforge.scoring.fingerprint import encoded_limit as fingerprint_encoded_limit

TRACK_ID_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
# Bounded and inert, not ss58-checked: a display field, never used to authenticate.
HOTKEY_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
MAX_BREAKDOWN_ENTRIES = 64
MAX_CHALLENGE_JSON_BYTES = protocol.MAX_REQUEST_BYTES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


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
    key: str | None = Field(default=None, max_length=8, description='e.g. "A minor"')
    instruments: list[str] = Field(default_factory=list, max_length=protocol.MAX_INSTRUMENTS)
    vocals: bool = False
    lyrics: str | None = Field(default=None, max_length=protocol.MAX_LYRICS_CHARS)
    seed: int | None = Field(default=None, ge=0, lt=2**31)


def _bounded_scores(value: dict[str, float | None], what: str) -> dict[str, float | None]:
    if len(value) > MAX_BREAKDOWN_ENTRIES:
        raise ValueError(f"{what} has more than {MAX_BREAKDOWN_ENTRIES} entries")
    for name in value:
        if not 1 <= len(name) <= 64:
            raise ValueError(f"{what} names must be 1-64 characters")
    return value


class ScoredTrackFields(_Strict):
    miner_uid: int | None = Field(default=None, ge=0, lt=65536)
    miner_hotkey: str = Field(pattern=HOTKEY_PATTERN)
    final_score: float = Field(ge=0.0, le=1.0)
    composite: float = Field(ge=0.0, le=1.0)
    score_breakdown: dict[str, float | None] = Field(default_factory=dict)
    penalties: dict[str, float] = Field(default_factory=dict)
    # Validators measure it as a float (header parse); stored as whole milliseconds.
    generation_ms: float | None = Field(default=None, ge=0, le=3_600_000)
    audio_sha256: str = Field(pattern=SHA256_PATTERN)
    duration_seconds: float = Field(gt=0.0, le=600.0)
    sample_rate: int = Field(ge=1000, le=384_000)
    # The track's copy fingerprint (tuneforge.scoring.fingerprint.encode); indexed network-wide.
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

    @field_validator("generation_ms")
    @classmethod
    def _whole_ms(cls, value: float | None) -> int | None:
        return None if value is None else round(value)

    @field_validator("score_breakdown")
    @classmethod
    def _breakdown(cls, value: dict[str, float | None]) -> dict[str, float | None]:
        return _bounded_scores(value, "score_breakdown")

    @field_validator("penalties")
    @classmethod
    def _penalties(cls, value: dict[str, float]) -> dict[str, float]:
        _bounded_scores(dict(value), "penalties")
        return value


class PublishedResult(ScoredTrackFields):
    track_id: str = Field(pattern=TRACK_ID_PATTERN)
    miner_uid: int = Field(ge=0, lt=65536)  # type: ignore[assignment]


class PublishRound(_Strict):
    round_id: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    block: int = Field(ge=0)
    challenge: dict[str, Any]
    results: list[PublishedResult] = Field(min_length=1, max_length=1024)

    @field_validator("challenge")
    @classmethod
    def _challenge_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > MAX_CHALLENGE_JSON_BYTES:
            raise ValueError(f"challenge is larger than {MAX_CHALLENGE_JSON_BYTES} bytes")
        return value

    @field_validator("results")
    @classmethod
    def _unique_track_ids(cls, value: list[PublishedResult]) -> list[PublishedResult]:
        if len({r.track_id for r in value}) != len(value):
            raise ValueError("track_id values must be unique within a round")
        return value


class ClaimRequest(_Strict):
    max_jobs: int = Field(default=1, ge=1, le=256)


class JobResult(_Strict):
    """A claimed job's outcome: tracks whose WAVs were uploaded first, or an error."""

    tracks: list[ScoredTrackFields] = Field(default_factory=list, max_length=16)
    error: str | None = Field(default=None, max_length=2000)
