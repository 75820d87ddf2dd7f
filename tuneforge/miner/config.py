"""Miner settings: `--section.name` flags over `TUNEFORGE_SECTION__NAME` env over defaults."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, field_validator

from tuneforge.core.config import (
    DEFAULT_NETUID,
    AxonSettings,
    LocalnetSettings,
    LoggingSettings,
    TuneForgeSettings,
    WalletSettings,
)
from tuneforge.core.metrics import parse_networks
from tuneforge.generation.settings import GenerationSettings
from tuneforge.miner.ip_watch import check_ip_source_spec

# Minimum caller stake when --miner.min_stake is not given. On finney a validator permit
# already implies a large stake, and 1000 keeps low-stake permit holders from filling the
# queue; testnet stakes are play money and small; local chains are for demos and tests.
DEFAULT_MIN_STAKE_BY_NETWORK: dict[str, float] = {
    "finney": 1000.0,
    "test": 10.0,
    "local": 0.0,
    "localnet": 0.0,
}
DEFAULT_MIN_STAKE_OTHER = 1000.0  # a custom ws:// endpoint: assume a real network
# Waiting jobs per device when --miner.queue_size is not given: each device has one running and
# this many queued, so a queue never outgrows what the devices clear within a deadline or two.
QUEUE_PER_DEVICE = 4
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d{1,2})?)$")


def parse_devices(text: str) -> list[str]:
    """ "cuda:0, cuda:1" as ["cuda:0", "cuda:1"]."""
    return [item.strip() for item in text.split(",") if item.strip()]


class MinerSection(BaseModel):
    min_stake: float | None = Field(
        default=None,
        ge=0.0,
        description="minimum caller stake, in alpha (default: finney 1000, test 10, local 0)",
    )
    require_validator_permit: bool = Field(
        default=True, description="refuse callers without a validator permit"
    )
    devices: str = Field(
        default="",
        max_length=256,
        description=(
            "comma-separated devices, one model replica and one generation worker each (e.g. "
            "cuda:0,cuda:1); empty = one on --generation.device"
        ),
    )
    queue_size: int | None = Field(
        default=None,
        ge=0,
        le=1024,
        description=f"jobs waiting for a worker (default {QUEUE_PER_DEVICE} per device)",
    )
    slot_ttl_s: float = Field(
        default=10.0,
        gt=0.0,
        le=120.0,
        description="how long a reserved worker waits for the validator's prompt (s)",
    )
    max_concurrent_per_caller: int = Field(
        default=2, ge=1, le=1024, description="requests one caller may have queued or running"
    )
    request_max_age_s: float = Field(
        default=30.0, gt=0.0, le=600.0, description="btauth/1 nonce freshness window (s)"
    )
    request_body_timeout_s: float = Field(
        default=10.0, gt=0.0, le=120.0, description="time allowed to receive a request body (s)"
    )
    metagraph_refresh_s: float = Field(
        default=60.0, gt=0.0, description="seconds between metagraph refreshes"
    )
    retry_after_s: int = Field(
        default=5, ge=1, le=3600, description="Retry-After on 503 (queue full, out of memory)"
    )
    redis_url: str = Field(
        default="", description="Redis URL for the replay-nonce store (in-process when empty)"
    )
    ip_source: str = Field(
        default="",
        max_length=2048,
        description=(
            "where to read the public IP to publish: static (--axon.external_ip) | none | "
            "url:<http(s) URL answering the IP as text> | cmd:<shell command printing it> "
            "(default: static when --axon.external_ip is set, else none)"
        ),
    )
    ip_check_interval_s: float = Field(
        default=300.0, gt=0.0, description="seconds between public IP checks"
    )
    metrics: bool = Field(
        default=True, description="serve Prometheus metrics at GET /metrics (unauthenticated)"
    )
    metrics_allow: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description=(
            "client IPs/networks that may read /metrics (e.g. 10.0.0.0/8; 0.0.0.0/0 and ::/0 "
            "for anyone)"
        ),
    )

    @field_validator("devices")
    @classmethod
    def _known_devices(cls, value: str) -> str:
        for device in parse_devices(value):
            if not _DEVICE.match(device):
                raise ValueError(f"device {device!r} is not cpu, mps, cuda or cuda:N")
        return value

    def device_list(self, default: str) -> list[str]:
        """The devices to run on: `devices`, else one replica on `default` (--generation.device)."""
        return parse_devices(self.devices) or [default]

    def queue_capacity(self, devices: int) -> int:
        return self.queue_size if self.queue_size is not None else QUEUE_PER_DEVICE * devices

    @field_validator("ip_source")
    @classmethod
    def _known_ip_source(cls, value: str) -> str:
        return check_ip_source_spec(value)

    @field_validator("metrics_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)  # a typo is a startup error, not a silent 403 for the scraper
        return value


class MinerSettings(TuneForgeSettings):
    netuid: int = Field(default=DEFAULT_NETUID, ge=0, description="subnet uid")
    network: str = Field(
        default="test", description="finney | test | local | ws://… | localnet (LocalChain file)"
    )
    wallet: WalletSettings = Field(default_factory=WalletSettings)
    localnet: LocalnetSettings = Field(default_factory=LocalnetSettings)
    axon: AxonSettings = Field(default_factory=AxonSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    miner: MinerSection = Field(default_factory=MinerSection)

    def effective_min_stake(self) -> float:
        """The configured minimum stake, or the network's default when none was given."""
        if self.miner.min_stake is not None:
            return self.miner.min_stake
        return DEFAULT_MIN_STAKE_BY_NETWORK.get(self.network, DEFAULT_MIN_STAKE_OTHER)
