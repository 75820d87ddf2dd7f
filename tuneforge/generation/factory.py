"""Settings -> a generation backend. Heavy backends are imported only when chosen."""

from __future__ import annotations

from tuneforge.generation.base import Backend
from tuneforge.generation.settings import GenerationSettings


def create_backend(settings: GenerationSettings) -> Backend:
    """The backend named by `settings.backend`, routed with `settings.vocal_backend` for vocal
    challenges when one is set; models load lazily on first generate (or `load()`)."""
    main = create_single_backend(settings)
    if settings.vocal_backend is None or settings.vocal_backend == settings.backend:
        return main
    from tuneforge.generation.router import RoutedBackend

    vocal_settings = settings.for_backend(settings.vocal_backend, settings.vocal_model)
    return RoutedBackend(main, create_single_backend(vocal_settings))


def create_single_backend(settings: GenerationSettings) -> Backend:
    """Exactly the backend named by `settings.backend`, no routing."""
    if settings.backend == "synth":
        from tuneforge.generation.synth import SynthBackend

        return SynthBackend(settings)
    if settings.backend == "musicgen":
        from tuneforge.generation.musicgen import MusicGenBackend

        return MusicGenBackend(settings)
    if settings.backend == "ace-step":
        from tuneforge.generation.ace_step import AceStepBackend

        return AceStepBackend(settings)
    if settings.backend == "audiocraft":
        from tuneforge.generation.audiocraft_backend import AudiocraftBackend

        return AudiocraftBackend(settings)
    raise ValueError(f"unknown generation backend {settings.backend!r}")
