"""Settings -> a generation backend. Heavy backends are imported only when chosen."""

from __future__ import annotations

from tuneforge.generation.base import Backend
from tuneforge.generation.settings import GenerationSettings


def create_backend(settings: GenerationSettings) -> Backend:
    """The backend named by `settings.backend`; models load lazily on first generate."""
    if settings.backend == "synth":
        from tuneforge.generation.synth import SynthBackend

        return SynthBackend(settings)
    if settings.backend == "musicgen":
        from tuneforge.generation.musicgen import MusicGenBackend

        return MusicGenBackend(settings)
    if settings.backend == "audiocraft":
        from tuneforge.generation.audiocraft_backend import AudiocraftBackend

        return AudiocraftBackend(settings)
    raise ValueError(f"unknown generation backend {settings.backend!r}")
