"""Validator settings: one object, flags > env (`TUNEFORGE_NEURON__ALPHA`) > defaults."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tuneforge.core.config import (
    DEFAULT_NETUID,
    LocalnetSettings,
    LoggingSettings,
    TuneForgeSettings,
    WalletSettings,
)
from tuneforge.core.protocol import DEFAULT_MAX_RESPONSE_BYTES
from tuneforge.scoring.workers import default_workers


class NeuronSettings(BaseModel):
    # 64 miners a round, a round every ~2.5 min: 256 uids in ~10 min on min_compute.yml hardware
    # (docs/validator.md "Covering the subnet").
    sample_size: int = Field(default=64, ge=1, le=256, description="miners queried per round")
    timeout: float = Field(default=12.0, gt=0, description="per-request deadline base (seconds)")
    timeout_per_second: float = Field(
        default=2.0, ge=0, description="extra deadline per second of requested audio"
    )
    alpha: float = Field(default=0.2, gt=0, le=1, description="EMA weight of the newest score")
    max_rounds: int = Field(
        default=0, ge=0, description="stop after this many rounds in this run (0 = forever)"
    )
    round_interval_s: float = Field(default=15.0, ge=0, description="pause between rounds")
    metagraph_refresh_blocks: int = Field(
        default=20, ge=1, description="refresh the metagraph every N blocks"
    )
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES, ge=1024, description="read at most this per answer"
    )
    max_audio_seconds: float = Field(
        default=90.0, gt=0, description="refuse answers longer than this (seconds)"
    )
    state_path: str = Field(
        default="~/.tuneforge/validator/state.db", description="SQLite state file"
    )
    status_port: int = Field(
        default=0, ge=0, le=65535, description="HTTP status endpoint on 127.0.0.1 (0 = off)"
    )
    weights_top_k: int = Field(
        default=0, ge=0, description="only the k best EMAs get weight (0 = everyone)"
    )
    weights_exponent: float = Field(
        default=2.0, gt=0, description="weight ∝ EMA^exponent (sharpens the ranking)"
    )
    history_mb_per_miner: float = Field(
        default=1.75, gt=0, description="scoring history budget per miner (MB)"
    )
    history_mb_total: float = Field(
        default=448.0, gt=0, description="scoring history budget for all miners (MB)"
    )
    min_challenge_seconds: float = Field(default=5.0, ge=1, le=60, description="shortest asked")
    max_challenge_seconds: float = Field(default=30.0, ge=1, le=60, description="longest asked")


class ScoringModelSettings(BaseModel):
    clap: str = Field(default="", description="CLAP model id or dir (empty = excluded)")
    mert: str = Field(default="", description="MERT model id or dir (empty = excluded)")
    whisper: str = Field(default="", description="Whisper model id or dir (empty = excluded)")
    mos: str = Field(default="", description="MOS model id or dir (empty = excluded)")
    preference: str = Field(default="", description="preference model dir (empty = excluded)")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    workers: int = Field(
        default_factory=default_workers,
        ge=1,
        le=64,
        description="scoring processes (default: all cores but one; signal scorers only: with "
        "neural models clips are scored in-process after one batched pass on the device)",
    )
    allow_missing: bool = Field(
        default=False,
        description="start without the network's whole scorer set (localnet/experiments only; "
        "every result is then published as degraded)",
    )


class ApiPublishSettings(BaseModel):
    url: str = Field(default="", description="TuneForge API base URL")
    publish: bool = Field(default=False, description="publish round results to the API")
    jobs: bool = Field(default=False, description="claim and serve customer jobs from the API")
    copy_check: bool = Field(
        default=True,
        description="look every clip up in the API's network-wide copy index (needs --api.url)",
    )
    timeout_s: float = Field(default=30.0, gt=0, le=600, description="per API request")
    retry_base_s: float = Field(
        default=2.0, gt=0, description="first retry delay; doubles per failure (with jitter)"
    )
    retry_max_s: float = Field(default=300.0, gt=0, description="longest delay between retries")
    outbox_max_mb: float = Field(
        default=1024.0, gt=0, description="outbox size cap; oldest audio uploads dropped first"
    )
    outbox_max_items: int = Field(default=100_000, ge=10, description="outbox item cap")

    @property
    def outbox_max_bytes(self) -> int:
        return int(self.outbox_max_mb * 1024 * 1024)

    jobs_poll_interval_s: float = Field(
        default=5.0, gt=0, description="how often to claim customer jobs between rounds"
    )
    jobs_top_k: int = Field(
        default=3, ge=1, le=64, description="miners (best EMAs first) asked per customer job"
    )
    jobs_max_claim: int = Field(default=2, ge=1, le=64, description="jobs claimed per poll")
    jobs_tracks: int = Field(
        default=1, ge=1, le=16, description="best tracks delivered per customer job"
    )
    preference_train_interval_s: float = Field(
        default=0.0,
        ge=0,
        description="retrain the preference head on customer votes this often (0 = off)",
    )
    preference_dir: str = Field(
        default="~/.tuneforge/validator/preference",
        description="where periodic training writes the head (and caches voted audio beside it)",
    )


class CatalogueSettings(BaseModel):
    acoustid_key: str = Field(
        default="",
        description="AcoustID application key (needed on test/finney once the network turns "
        "the catalogue check on)",
    )
    url: str = Field(
        default="https://api.acoustid.org/v2/lookup", description="AcoustID lookup endpoint"
    )
    wait_s: float = Field(
        default=30.0, gt=0, le=600, description="longest a round waits for its lookups"
    )


class ValidatorSettings(TuneForgeSettings):
    netuid: int = Field(default=DEFAULT_NETUID, ge=0, description="subnet uid")
    network: str = Field(
        default="test", description="finney | test | local | ws://… | localnet (LocalChain file)"
    )
    wallet: WalletSettings = WalletSettings()
    localnet: LocalnetSettings = LocalnetSettings()
    logging: LoggingSettings = LoggingSettings()
    neuron: NeuronSettings = NeuronSettings()
    scoring: ScoringModelSettings = ScoringModelSettings()
    api: ApiPublishSettings = ApiPublishSettings()
    catalogue: CatalogueSettings = CatalogueSettings()
