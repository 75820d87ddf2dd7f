"""Generation settings: which backend, which model, on which device, and how the audio is finished.

One settings object for every backend; a backend reads only the fields it needs. Miners embed it
as the `generation` section of their settings (`--generation.backend synth`, env
`TUNEFORGE_GENERATION__BACKEND`).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from tuneforge.core.audio import DEFAULT_TARGET_LUFS, DEFAULT_TRUE_PEAK_DBFS
from tuneforge.core.protocol import MAX_DURATION_S, SEED_LIMIT

BackendName = Literal["musicgen", "synth", "audiocraft", "ace-step"]
# "cuda:N" names one GPU (a miner with --miner.devices runs one replica per device).
DeviceName = Annotated[str, StringConstraints(pattern=r"^(auto|cpu|mps|cuda(:\d{1,2})?)$")]
DtypeName = Literal["auto", "fp32", "fp16", "bf16"]

# The model each backend loads when none is named (`--generation.model` / `vocal_model`).
DEFAULT_MODELS: dict[str, str] = {
    "musicgen": "facebook/musicgen-small",
    "audiocraft": "facebook/musicgen-small",
    "synth": "synth",
    "ace-step": "ACE-Step/acestep-v15-xl-turbo-diffusers",
}
DEFAULT_LYRICS_MODEL = "Qwen/Qwen3-0.6B"


class GenerationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: BackendName = Field(
        default="musicgen",
        description="musicgen | ace-step (sings) | synth (weight-free) | audiocraft (optional)",
    )
    model: str = Field(
        default=DEFAULT_MODELS["musicgen"],
        description="model id on the hub or a local directory (default: the backend's own)",
    )
    vocal_backend: BackendName | None = Field(
        default=None,
        description="a second backend for challenges that ask for vocals (e.g. ace-step)",
    )
    vocal_model: str = Field(
        default="", description="the vocal backend's model id or directory (empty: its default)"
    )
    # ACE-Step: turbo checkpoints are guidance-distilled for 8 steps; base/sft ones run CFG and
    # need more steps (0 picks 8 for turbo, 32 for base).
    steps: int = Field(default=0, ge=0, le=200, description="ACE-Step denoising steps (0 = auto)")
    diffusion_guidance_scale: float = Field(
        default=7.0, ge=1.0, le=20.0, description="ACE-Step base/sft CFG (turbo ignores it)"
    )
    shift: float = Field(default=3.0, gt=0.0, le=10.0, description="ACE-Step timestep shift")
    vocal_language: str = Field(
        default="en", pattern=r"^[a-z]{2,3}$", description="language code the lyrics are sung in"
    )
    lyrics_model: str = Field(
        default=DEFAULT_LYRICS_MODEL,
        description="causal LM that writes lyrics for vocal challenges without them "
        "(hub id or directory; empty = always the fixed fallback lyrics)",
    )
    device: DeviceName = Field(default="auto", description="auto = cuda when available, else cpu")
    dtype: DtypeName = Field(
        default="auto", description="auto = bf16/fp16 on CUDA, fp32 on CPU; or fp32 | fp16 | bf16"
    )
    # Sampling defaults are MusicGen's own (audiocraft: top_k 250, cfg 3.0).
    guidance_scale: float = Field(default=3.0, ge=0.0, le=20.0, description="classifier-free cfg")
    temperature: float = Field(default=1.0, gt=0.0, le=5.0, description="sampling temperature")
    top_k: int = Field(default=250, ge=0, le=4096, description="top-k sampling (0 = off)")
    target_lufs: float = Field(
        default=DEFAULT_TARGET_LUFS, ge=-40.0, le=-5.0, description="loudness target (LUFS)"
    )
    true_peak_dbfs: float = Field(
        default=DEFAULT_TRUE_PEAK_DBFS, ge=-12.0, le=0.0, description="true-peak ceiling (dBTP)"
    )
    window_seconds: float = Field(
        default=30.0, gt=0.0, le=120.0, description="longest stretch one model call generates"
    )
    overlap_seconds: float = Field(
        default=10.0, ge=0.0, le=60.0, description="audio prompt carried into the next window"
    )
    max_duration_seconds: float = Field(
        default=MAX_DURATION_S, gt=0.0, le=MAX_DURATION_S, description="longest accepted request"
    )
    use_static_cache: bool = Field(
        default=False, description="static KV cache (needed for --generation.compile)"
    )
    compile: bool = Field(
        default=False, description="let transformers compile decoding (CUDA, with static cache)"
    )
    variant: int = Field(
        default=0,
        ge=0,
        le=2**16,
        description="mixed into every seed so miners sharing a backend differ (0 = seed as is)",
    )
    cpu_threads: int = Field(
        default=0, ge=0, le=256, description="torch CPU threads, process-wide (0 = torch default)"
    )

    def seed_for(self, request_seed: int) -> int:
        """The seed a backend uses: the request's, or a distinct one per `variant`."""
        if self.variant == 0:
            return request_seed
        mixed = np.random.SeedSequence([request_seed, self.variant]).generate_state(1)[0]
        return int(mixed) % SEED_LIMIT

    def for_backend(self, backend: BackendName, model: str = "") -> GenerationSettings:
        """These settings pointed at another backend (routing): its model, or its default."""
        return self.model_copy(
            update={"backend": backend, "model": model or DEFAULT_MODELS[backend]}
        )

    @model_validator(mode="after")
    def _default_model_follows_backend(self) -> GenerationSettings:
        # `--generation.backend ace-step` alone must not try to load MusicGen weights into it.
        if "model" not in self.model_fields_set:
            self.model = DEFAULT_MODELS[self.backend]
        return self

    @model_validator(mode="after")
    def _overlap_fits_window(self) -> GenerationSettings:
        # A continuation window must add new audio beyond the prompt it is fed.
        if self.overlap_seconds >= self.window_seconds:
            raise ValueError("overlap_seconds must be shorter than window_seconds")
        return self
