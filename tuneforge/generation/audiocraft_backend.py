"""AudiocraftBackend: MusicGen through Meta's `audiocraft` library (optional extra).

audiocraft is imported only when this backend is chosen; without it the backend refuses to start
with the install hint. audiocraft continues long requests itself (`extend_stride`).
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

from tuneforge.core.audio import Audio
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.generation.base import GenerationError, GenerationOutOfMemory, LockedLoad
from tuneforge.generation.configs import SAMPLE_RATE
from tuneforge.generation.musicgen import resolve_device
from tuneforge.generation.postprocess import finish
from tuneforge.generation.prompt import build_prompt
from tuneforge.generation.settings import GenerationSettings


class AudiocraftBackend(LockedLoad):
    name = "audiocraft"
    sings = False

    def __init__(self, settings: GenerationSettings) -> None:
        if importlib.util.find_spec("audiocraft") is None:
            raise GenerationError(
                "the audiocraft backend needs the audiocraft package: "
                "pip install 'tuneforge[audiocraft]' (or use --generation.backend musicgen)"
            )
        self.settings = settings
        self.model_id = settings.model
        self.max_duration_seconds = settings.max_duration_seconds
        self.sample_rate = SAMPLE_RATE  # MusicGen's EnCodec rate
        self._lock = threading.Lock()
        self._model: Any = None

    def _load_model(self) -> None:
        from audiocraft.models import MusicGen

        self._model = MusicGen.get_pretrained(
            self.model_id, device=resolve_device(self.settings.device)
        )
        self.sample_rate = int(self._model.sample_rate)

    def generate(self, request: MusicGenerationSynapse) -> Audio:
        import torch

        with self._lock:
            self._load_locked()
            torch.manual_seed(self.settings.seed_for(request.seed))
            self._model.set_generation_params(
                use_sampling=True,
                top_k=self.settings.top_k,
                temperature=self.settings.temperature,
                cfg_coef=self.settings.guidance_scale,
                duration=request.duration_seconds,
                extend_stride=self.settings.window_seconds - self.settings.overlap_seconds,
            )
            try:
                wav = self._model.generate([build_prompt(request)])
            except torch.cuda.OutOfMemoryError as exc:
                torch.cuda.empty_cache()
                raise GenerationOutOfMemory(f"out of accelerator memory: {exc}") from exc
            except RuntimeError as exc:
                raise GenerationError(f"audiocraft generation failed: {exc}") from exc
        raw = Audio(wav[0].float().cpu().numpy(), self.sample_rate)
        return finish(
            raw, request.duration_seconds, self.settings.target_lufs, self.settings.true_peak_dbfs
        )
