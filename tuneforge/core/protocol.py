"""The miner <-> validator wire protocol: one request model, its headers and its limits.

Customer jobs and validator challenges use the same model and the same id format, so a miner
cannot tell them apart (DESIGN.md §3).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Spec version "MAJOR.MINOR": incompatible MAJOR is refused with 426. The integer form is the
# `version_key` written with weights on chain.
SPEC_VERSION = "1.0"
SPEC_VERSION_KEY = 1_000  # MAJOR * 1000 + MINOR

GENERATE_PATH = "/v1/generate"
INFO_PATH = "/v1/info"
# Reserve-then-send (docs/decisions.md D33): the validator first reserves a free worker (no
# prompt), then sends the challenge to that slot and times only that second exchange.
RESERVE_PATH = "/v1/reserve"
HEADER_SLOT = "X-TuneForge-Slot"
MAX_SLOT_GRANT_BYTES = 1024

HEADER_SPEC_VERSION = "X-TuneForge-Spec-Version"
HEADER_MODEL = "X-TuneForge-Model"
HEADER_GENERATION_MS = "X-TuneForge-Generation-Ms"
HEADER_SAMPLE_RATE = "X-TuneForge-Sample-Rate"

MAX_REQUEST_BYTES = 16 * 1024
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024

MIN_DURATION_S = 1.0
MAX_DURATION_S = 60.0
MIN_TEMPO_BPM = 40
MAX_TEMPO_BPM = 240
MAX_PROMPT_CHARS = 500
MAX_LYRICS_CHARS = 2_000
MAX_INSTRUMENTS = 8
MAX_FIELD_CHARS = 64

CHALLENGE_ID_PATTERN = re.compile(r"^ch_[0-9a-f]{32}$")
_KEY_PATTERN = re.compile(r"^[A-G](#|b)? (major|minor)$")


def new_challenge_id() -> str:
    """A fresh id in the one format used by both challenges and customer jobs."""
    return "ch_" + secrets.token_hex(16)


def spec_major(version: str) -> int | None:
    """Major part of a "MAJOR.MINOR" version string, or None when malformed."""
    match = re.fullmatch(r"(\d{1,4})\.(\d{1,4})", version.strip())
    return int(match.group(1)) if match else None


def is_compatible(peer_version: str | None) -> bool:
    """A peer is compatible when it states the same major version (a missing header is not)."""
    return peer_version is not None and spec_major(peer_version) == spec_major(SPEC_VERSION)


# Seeds are below 2**31: every backend seeds numpy/torch with it, and a signed 32-bit int is
# the widest seed each of them accepts everywhere.
SEED_LIMIT = 2**31


class MusicGenerationSynapse(BaseModel):
    """One generation request. Every field is bounded: this crosses the network."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    challenge_id: str = Field(default_factory=new_challenge_id, max_length=35)
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    genre: str | None = Field(default=None, max_length=MAX_FIELD_CHARS)
    mood: str | None = Field(default=None, max_length=MAX_FIELD_CHARS)
    tempo_bpm: int | None = Field(default=None, ge=MIN_TEMPO_BPM, le=MAX_TEMPO_BPM)
    key: str | None = Field(default=None, max_length=8, description='e.g. "A minor"')
    instruments: list[str] = Field(default_factory=list, max_length=MAX_INSTRUMENTS)
    vocals: bool = False
    lyrics: str | None = Field(default=None, max_length=MAX_LYRICS_CHARS)
    duration_seconds: float = Field(default=15.0, ge=MIN_DURATION_S, le=MAX_DURATION_S)
    seed: int = Field(default_factory=lambda: secrets.randbelow(SEED_LIMIT), ge=0, lt=SEED_LIMIT)

    @field_validator("challenge_id")
    @classmethod
    def _challenge_id_format(cls, value: str) -> str:
        if not CHALLENGE_ID_PATTERN.match(value):
            raise ValueError("challenge_id must look like 'ch_' followed by 32 hex digits")
        return value

    @field_validator("key")
    @classmethod
    def _key_format(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _KEY_PATTERN.match(value):
            raise ValueError("key must look like 'A minor' or 'F# major'")
        return value

    @field_validator("instruments")
    @classmethod
    def _instrument_names(cls, value: list[str]) -> list[str]:
        cleaned = [item.strip() for item in value]
        if any(not item or len(item) > MAX_FIELD_CHARS for item in cleaned):
            raise ValueError(f"each instrument must be 1-{MAX_FIELD_CHARS} characters")
        return cleaned


class SlotRequest(BaseModel):
    """`POST /v1/reserve`: ask for a free worker; deliberately carries no prompt."""

    model_config = ConfigDict(extra="forbid")

    duration_seconds: float = Field(default=15.0, ge=MIN_DURATION_S, le=MAX_DURATION_S)


class SlotGrant(BaseModel):
    """The reserve answer: a one-use token for a worker that now waits `ttl_s` for the prompt."""

    model_config = ConfigDict(extra="ignore")

    slot: str = Field(pattern=r"^[0-9a-f]{32}$")
    ttl_s: float = Field(gt=0.0, le=600.0)


class MinerInfo(BaseModel):
    """What `GET /v1/info` answers."""

    model_id: str
    backend: str
    # Whether vocal challenges get sung lyrics (optional on the wire: older miners omit it).
    sings: bool = False
    spec_version: str = SPEC_VERSION
    version: str
    max_duration_seconds: float
    sample_rate: int
    queue_depth: int
    queue_capacity: int
    hotkey: str
    devices: int = 1  # generation workers (one model replica each); older miners omit it


def request_deadline_s(
    duration_seconds: float, base_s: float = 12.0, per_second_s: float = 2.0
) -> float:
    """Per-request deadline: a fixed allowance plus a budget per second of requested audio."""
    return base_s + per_second_s * duration_seconds


def split_instruments(text: str) -> list[str]:
    """A command line's "piano, strings" as the synapse's instrument list."""
    return [item.strip() for item in text.split(",") if item.strip()]


@dataclass(frozen=True)
class RequestOptions:
    """A request as a command line states it: the flags `tuneforge generate` and `tuneforge
    score` share, one place that turns them into the protocol's request."""

    prompt: str
    genre: str | None = None
    mood: str | None = None
    tempo: int | None = None
    key: str | None = None
    instruments: str = ""  # comma-separated, as typed
    vocals: bool = False
    lyrics: str | None = None

    def synapse(self, duration: float, seed: int | None = None) -> MusicGenerationSynapse:
        """The request for `duration` seconds; raises pydantic's ValidationError for values the
        protocol refuses. No seed: a random one."""
        return MusicGenerationSynapse(
            prompt=self.prompt,
            genre=self.genre,
            mood=self.mood,
            tempo_bpm=self.tempo,
            key=self.key,
            instruments=split_instruments(self.instruments),
            vocals=self.vocals,
            lyrics=self.lyrics,
            duration_seconds=duration,
            seed=secrets.randbelow(SEED_LIMIT) if seed is None else seed,
        )
