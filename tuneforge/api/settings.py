"""Configuration of the API service (flags > env `TUNEFORGE_*` > defaults)."""

from __future__ import annotations

from pydantic import Field, field_validator

from tuneforge.core.config import (
    ChainSettings,
    LocalnetSettings,
    LoggingSettings,
    TuneForgeSettings,
)

# Requests per sliding minute by plan (API.md "Rate limits").
PLAN_RATE_LIMITS: dict[str, int] = {"free": 60, "pro": 300, "premier": 1000}


def default_database_url() -> str:
    from tuneforge.core.config import expand_path

    return f"sqlite:///{expand_path('~/.tuneforge/api.db')}"


class ApiSettings(TuneForgeSettings):
    host: str = Field(default="127.0.0.1", description="address the API binds")
    port: int = Field(default=8000, ge=1, le=65535, description="port the API binds")
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes")
    database_url: str = Field(
        default_factory=default_database_url,
        description="sqlite:///path.db or postgresql+psycopg://user@host/db",
    )
    redis_url: str = Field(
        default="", description="redis://… shares nonces and rate limits across workers"
    )
    chain: ChainSettings = Field(default_factory=ChainSettings)
    localnet: LocalnetSettings = Field(default_factory=LocalnetSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    audio_dir: str = Field(default="~/.tuneforge/api-audio", description="audio store directory")
    public_base_url: str = Field(
        default="", description="public URL clients combine audio_url with"
    )
    metagraph_refresh_s: float = Field(default=60.0, gt=0, description="metagraph refresh period")
    sweeper_interval_s: float = Field(default=15.0, gt=0, description="expired-job sweep period")
    hotkey_rate_limit_per_minute: int = Field(default=300, ge=1, description="per neuron hotkey")
    anonymous_rate_limit_per_minute: int = Field(
        default=60, ge=1, description="per client IP for unauthenticated requests"
    )
    nonce_window_s: float = Field(default=300.0, gt=0, description="hotkey nonce freshness")
    max_json_body_bytes: int = Field(default=64 * 1024, ge=1024, description="JSON request cap")
    max_scores_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="POST /scores and job result cap"
    )
    max_audio_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, description="WAV upload cap")
    job_lease_s: float = Field(default=180.0, gt=0, description="validator lease on a claimed job")
    job_deadline_s: float = Field(
        default=900.0, gt=0, description="after this a job fails and is refunded"
    )
    max_claim_jobs: int = Field(default=16, ge=1, le=256, description="jobs per claim at most")
    metrics_allow: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="client IPs/networks that may read /metrics (default loopback only; behind a "
        "reverse proxy this is the X-Forwarded-For address uvicorn trusts); [] disables it",
    )
    leaderboard_cache_s: float = Field(
        default=10.0, ge=0, description="how long /leaderboard.json is reused before recomputing"
    )
    leaderboard_max_miners: int = Field(
        default=256, ge=1, le=4096, description="miners listed on the public leaderboard"
    )

    webhook_allow_private: bool = Field(
        default=False,
        description="localnet/tests only: callbacks may use http and loopback/private addresses",
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60, description="per callback POST")
    webhook_max_attempts: int = Field(default=8, ge=1, le=30, description="tries per callback")
    webhook_retry_base_s: float = Field(
        default=10.0, gt=0, description="first callback retry delay; doubles per failure"
    )
    webhook_retry_max_s: float = Field(
        default=3600.0, gt=0, description="longest delay between callback retries"
    )
    webhook_poll_s: float = Field(default=1.0, gt=0, description="how often due callbacks go out")
    votes_per_minute: int = Field(
        default=30, ge=1, description="votes (vote + compare) per account per sliding minute"
    )

    @field_validator("metrics_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        from tuneforge.core.metrics import parse_networks

        parse_networks(value)  # raises with the offending entry
        return value
