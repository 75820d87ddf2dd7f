"""AceStepBackend: songs with sung lyrics from ACE-Step 1.5 through `diffusers.AceStepPipeline`.

The pipeline loads lazily (or on `load()`) from a diffusers-format folder or hub id, bf16/fp16 on
CUDA and fp32 on CPU. The challenge's caption, lyrics, tempo, key and duration go through the
pipeline's own arguments; the seed through a `torch.Generator`. A vocal challenge without lyrics
gets them from the lyrics writer first (its time counts as generation time). Instrumental
challenges sing nothing: the lyrics are ACE-Step's instrumental marker.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

from tuneforge.core.audio import Audio
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.generation.base import GenerationError
from tuneforge.generation.lyrics import LyricsWriter, fallback_lyrics
from tuneforge.generation.musicgen import model_failures, resolve_device, resolve_dtype
from tuneforge.generation.postprocess import finish
from tuneforge.generation.prompt import build_caption
from tuneforge.generation.settings import GenerationSettings

# What ACE-Step was trained to read as "no vocals" in the lyrics channel.
INSTRUMENTAL_LYRICS = "[Instrumental]"
TURBO_STEPS = 8  # the turbo checkpoints are distilled for 8 steps
BASE_STEPS = 32  # base/sft checkpoints run CFG and need more


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")


class AceStepBackend:
    name = "ace-step"
    sings = True

    def __init__(self, settings: GenerationSettings, lyrics: LyricsWriter | None = None) -> None:
        self.settings = settings
        self.model_id = settings.model
        self.max_duration_seconds = settings.max_duration_seconds
        self.sample_rate = 48_000  # replaced by the VAE's rate once loaded
        self._lock = threading.Lock()
        self._pipe: Any = None
        self._device = "cpu"
        self._lyrics = lyrics

    @property
    def loaded(self) -> bool:
        return self._pipe is not None

    @property
    def is_turbo(self) -> bool:
        return bool(self._pipe is not None and self._pipe.is_turbo)

    def load(self) -> None:
        """Load the pipeline (and the lyrics writer) now, before the miner serves."""
        with self._lock:
            self._load_locked()
        if self._lyrics is not None:
            self._lyrics.load()

    def _load_locked(self) -> None:
        if self._pipe is not None:
            return
        import torch
        from diffusers import AceStepPipeline

        device = resolve_device(self.settings.device)
        if device == "cpu" and self.settings.cpu_threads:
            torch.set_num_threads(self.settings.cpu_threads)
        dtype = resolve_dtype(self.settings.dtype, device)
        local = Path(self.model_id).is_dir()
        logger.info("loading ACE-Step {} on {} ({})", self.model_id, device, dtype)
        try:
            pipe = AceStepPipeline.from_pretrained(
                self.model_id, dtype=dtype, local_files_only=local or _offline()
            )
        except (OSError, ValueError, TypeError) as exc:
            raise GenerationError(f"cannot load ACE-Step model {self.model_id!r}: {exc}") from exc
        pipe = pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        self._pipe, self._device = pipe, device
        self.sample_rate = int(pipe.sample_rate)
        if self._lyrics is None:
            # The writer sits beside the singer (Qwen3-0.6B needs ~1.5 GB of GPU memory in bf16).
            self._lyrics = LyricsWriter(self.settings.lyrics_model, device, dtype)

    def lyrics_for(self, request: MusicGenerationSynapse, seed: int) -> str:
        """What the model sings: the challenge's lyrics, written ones, or the instrumental mark."""
        if not request.vocals:
            return INSTRUMENTAL_LYRICS
        if request.lyrics and request.lyrics.strip():
            given = request.lyrics.strip()
            # ACE-Step was trained on structured lyrics; untagged words are sung as one verse.
            return given if given.startswith("[") else f"[verse]\n{given}"
        if self._lyrics is None:
            return fallback_lyrics(request.duration_seconds)
        return self._lyrics.write(request, seed)

    def generate(self, request: MusicGenerationSynapse) -> Audio:
        """Seeded generation of exactly `request.duration_seconds`, 48 kHz stereo, normalised."""
        if request.duration_seconds > self.max_duration_seconds:
            raise GenerationError(
                f"duration {request.duration_seconds} s exceeds {self.max_duration_seconds} s"
            )
        with self._lock:
            self._load_locked()
        seed = self.settings.seed_for(request.seed)
        lyrics = self.lyrics_for(request, seed)  # outside the pipeline lock: its own lock
        with self._lock, model_failures("ACE-Step"):
            samples = self._generate_locked(request, lyrics, seed)
        raw = Audio(samples, self.sample_rate)
        return finish(
            raw, request.duration_seconds, self.settings.target_lufs, self.settings.true_peak_dbfs
        )

    def _generate_locked(
        self, request: MusicGenerationSynapse, lyrics: str, seed: int
    ) -> np.ndarray:
        import torch

        pipe = self._pipe
        steps = self.settings.steps or (TURBO_STEPS if pipe.is_turbo else BASE_STEPS)
        generator = torch.Generator(device=self._device).manual_seed(seed)
        with torch.inference_mode():
            out = pipe(
                prompt=build_caption(request),
                lyrics=lyrics,
                audio_duration=float(request.duration_seconds),
                vocal_language=self.settings.vocal_language,
                num_inference_steps=steps,
                # Turbo checkpoints are guidance-distilled: 1.0 keeps diffusers from warning.
                guidance_scale=1.0 if pipe.is_turbo else self.settings.diffusion_guidance_scale,
                shift=self.settings.shift,
                generator=generator,
                bpm=request.tempo_bpm,
                keyscale=request.key,
                output_type="pt",
            )
        audio = out.audios[0].float().cpu().numpy()  # [channels, n]
        if audio.ndim != 2 or audio.shape[0] not in (1, 2):
            raise GenerationError(f"ACE-Step returned audio of shape {audio.shape}")
        return audio
