"""MusicGenBackend: text-to-music with MusicGen through `transformers`.

The model loads lazily on first use (or `load()`), from a hub id or a local directory. Requests
longer than one window are continued window by window: the tail of the audio so far is fed back
as the audio prompt, and the re-generated overlap is crossfaded with the original. One
generation runs at a time (the model and torch's global RNG are shared state).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from loguru import logger

from tuneforge.core.audio import Audio
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.generation.base import GenerationError, GenerationOutOfMemory, LockedLoad
from tuneforge.generation.configs import SAMPLE_RATE
from tuneforge.generation.postprocess import finish
from tuneforge.generation.prompt import build_prompt
from tuneforge.generation.settings import GenerationSettings

# MusicGen's delay pattern shifts codebook k by k frames: 3 extra steps give exact length with 4
# codebooks.
DELAY_STEPS = 3


def resolve_device(requested: str) -> str:
    """ "auto" -> "cuda" when a CUDA device is visible, else "cpu"."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        suffix = requested.partition(":")[2]
        if requested not in ("cuda", f"cuda:{suffix}") or (suffix and not suffix.isdigit()):
            raise GenerationError(f"device {requested!r}: expected cuda or cuda:N")
        index = int(suffix or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise GenerationError(
                f"device {requested!r} requested but there is no CUDA device {index}"
            )
    return requested


def resolve_dtype(requested: str, device: str) -> Any:  # -> torch.dtype
    """ "auto" -> bf16 on CUDA that supports it, else fp16 on CUDA, fp32 elsewhere."""
    import torch

    if requested == "auto":
        if not device.startswith("cuda"):
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[requested]


def is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


@contextmanager
def model_failures(model: str) -> Iterator[None]:
    """The backend boundary: every model failure becomes a typed error. Out of accelerator
    memory frees the cache and becomes GenerationOutOfMemory (the miner answers 503)."""
    try:
        yield
    except GenerationError:
        raise
    except Exception as exc:
        if is_oom(exc):
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise GenerationOutOfMemory(f"out of accelerator memory: {exc}") from exc
        raise GenerationError(f"{model} generation failed: {exc}") from exc


def crossfade_append(audio: np.ndarray, continuation: np.ndarray, overlap: int) -> np.ndarray:
    """Append a continuation whose first `overlap` samples re-generate `audio`'s last ones.

    The overlap is blended linearly (both sides carry the same music, so their sum keeps level).
    """
    if overlap == 0:
        return np.concatenate([audio, continuation], axis=1)
    if continuation.shape[1] <= overlap or audio.shape[1] < overlap:
        raise GenerationError("continuation window produced no audio beyond its prompt")
    ramp = np.linspace(0.0, 1.0, overlap, dtype=np.float32)
    blended = audio[:, -overlap:] * (1.0 - ramp) + continuation[:, :overlap] * ramp
    return np.concatenate([audio[:, :-overlap], blended, continuation[:, overlap:]], axis=1)


class MusicGenBackend(LockedLoad):
    name = "musicgen"
    sings = False

    def __init__(self, settings: GenerationSettings) -> None:
        self.settings = settings
        self.model_id = settings.model
        self.max_duration_seconds = settings.max_duration_seconds
        self.sample_rate = SAMPLE_RATE  # replaced by the codec's rate once loaded
        self._lock = threading.Lock()
        self._model: Any = None
        self._processor: Any = None
        self._device = "cpu"
        self._dtype: Any = None
        self._frame_rate = 50

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load_model(self) -> None:
        """The model and its processor (`from_pretrained`: a hub id or a local directory)."""
        import torch
        from transformers import AutoConfig, AutoProcessor, MusicgenForConditionalGeneration

        device = resolve_device(self.settings.device)
        if device == "cpu" and self.settings.cpu_threads:
            # Process-wide; oversubscribed cores make torch's thread pool crawl.
            torch.set_num_threads(self.settings.cpu_threads)
        dtype = resolve_dtype(self.settings.dtype, device)
        logger.info("loading MusicGen {} on {} ({})", self.model_id, device, dtype)
        try:
            model_type = AutoConfig.from_pretrained(self.model_id).model_type
            if model_type != "musicgen":
                # musicgen_melody conditions on a melody, not on audio to continue: other class.
                raise GenerationError(
                    f"{self.model_id!r} is a {model_type!r} model; this backend runs text-to-music "
                    "MusicGen checkpoints (musicgen-small, -medium, -large, -stereo-*)"
                )
            processor = AutoProcessor.from_pretrained(self.model_id)
            model = MusicgenForConditionalGeneration.from_pretrained(self.model_id, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise GenerationError(f"cannot load MusicGen model {self.model_id!r}: {exc}") from exc
        model = model.to(device).eval()
        # transformers compiles the decoding step itself when the cache is static on CUDA.
        model.generation_config.disable_compile = not self.settings.compile
        self._model, self._processor = model, processor
        self._device, self._dtype = device, dtype
        self.sample_rate = int(model.config.audio_encoder.sampling_rate)
        self._frame_rate = int(model.config.audio_encoder.frame_rate)

    def generate(self, request: MusicGenerationSynapse) -> Audio:
        """Seeded generation of exactly `request.duration_seconds`, loudness-normalised."""
        if request.duration_seconds > self.max_duration_seconds:
            raise GenerationError(
                f"duration {request.duration_seconds} s exceeds {self.max_duration_seconds} s"
            )
        prompt = build_prompt(request)
        with self._lock:
            self._load_locked()
            with model_failures("MusicGen"):
                seed = self.settings.seed_for(request.seed)
                samples = self._generate_locked(prompt, request.duration_seconds, seed)
        raw = Audio(samples, self.sample_rate)
        return finish(
            raw, request.duration_seconds, self.settings.target_lufs, self.settings.true_peak_dbfs
        )

    def _generate_locked(self, prompt: str, duration_s: float, seed: int) -> np.ndarray:
        import torch

        torch.manual_seed(seed)  # seeds the CPU and every CUDA generator
        with torch.inference_mode():
            return self._stitch(prompt, duration_s)

    def _stitch(self, prompt: str, duration_s: float) -> np.ndarray:
        hop = self.sample_rate // self._frame_rate
        target = int(round(duration_s * self.sample_rate))
        # Whole codec frames, so the prompt's re-decoded audio lines up sample for sample.
        overlap = int(round(self.settings.overlap_seconds * self._frame_rate)) * hop
        window = self.settings.window_seconds
        audio = self._window(prompt, None, min(duration_s, window))
        windows = 1
        while audio.shape[1] < target:
            step_s = min(
                window - overlap / self.sample_rate, (target - audio.shape[1]) / self.sample_rate
            )
            tail = audio[:, -overlap:] if overlap else None
            audio = crossfade_append(audio, self._window(prompt, tail, step_s), overlap)
            windows += 1
        if windows > 1:
            logger.debug("MusicGen stitched {} windows for {:.1f} s", windows, duration_s)
        return audio[:, :target]

    def _window(self, prompt: str, tail: np.ndarray | None, new_seconds: float) -> np.ndarray:
        """One model call: `new_seconds` of new audio, after the re-decoded `tail` if given."""
        inputs: dict[str, Any] = {"text": [prompt], "padding": True, "return_tensors": "pt"}
        if tail is not None:
            stereo = self._processor.feature_extractor.feature_size == 2
            inputs["audio"] = [tail.T if stereo else tail.mean(axis=0)]
            inputs["sampling_rate"] = self.sample_rate
        encoded = self._processor(**inputs)
        tensors = {name: value.to(self._device) for name, value in encoded.items()}
        if "input_values" in tensors:
            tensors["input_values"] = tensors["input_values"].to(self._dtype)
        new_tokens = max(1, math.ceil(new_seconds * self._frame_rate)) + DELAY_STEPS
        out = self._model.generate(
            **tensors,
            do_sample=True,
            guidance_scale=self.settings.guidance_scale,
            temperature=self.settings.temperature,
            top_k=self.settings.top_k,  # 0 turns top-k filtering off
            max_new_tokens=new_tokens,
            cache_implementation="static" if self.settings.use_static_cache else None,
        )
        return out[0].float().cpu().numpy()  # [channels, n]
