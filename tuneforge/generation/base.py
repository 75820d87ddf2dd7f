"""The generation contract: a backend turns one request into audio."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from tuneforge.core.audio import Audio
from tuneforge.core.errors import TuneForgeError
from tuneforge.core.protocol import MusicGenerationSynapse


class GenerationError(TuneForgeError, RuntimeError):
    """Generation failed for this request (the miner answers 500 with the reason)."""

    status = 500
    code = "generation_failed"


class GenerationOutOfMemory(GenerationError):
    """The accelerator ran out of memory; the miner answers 503 and keeps serving."""

    status = 503
    code = "out_of_memory"


class Backend(Protocol):
    name: str  # "musicgen" | "ace-step" | "synth" | "audiocraft" | "musicgen+ace-step"
    model_id: str
    sings: bool  # sings lyrics (vocal challenges); told to validators in /v1/info
    sample_rate: int
    max_duration_seconds: float

    def load(self) -> None:
        """Load weights now (miners call it at start-up so no request pays for it)."""
        ...

    def generate(self, request: MusicGenerationSynapse) -> Audio:
        """Blocking generation (called from a worker thread, never the event loop)."""
        ...


class LockedLoad:
    """`load()` under the lock generation holds, so no request meets a half-loaded model; the
    model is loaded once, by the backend's `_load_model`."""

    _lock: threading.Lock
    _model: Any

    def load(self) -> None:
        """Load the model now (miners call this at start-up, before serving)."""
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if self._model is None:
            self._load_model()

    def _load_model(self) -> None:
        raise NotImplementedError
