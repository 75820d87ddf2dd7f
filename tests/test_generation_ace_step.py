"""AceStepBackend on a tiny random ACE-Step 1.5 pipeline saved to disk and loaded by the backend's
own loading code (offline), plus routing between backends."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.tiny_singing import build_tiny_ace_step, offline_and_threads  # noqa: F401
from tuneforge.core.audio import integrated_lufs
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.generation.ace_step import INSTRUMENTAL_LYRICS, AceStepBackend
from tuneforge.generation.base import GenerationError, GenerationOutOfMemory
from tuneforge.generation.factory import create_backend
from tuneforge.generation.lyrics import fallback_lyrics
from tuneforge.generation.router import RoutedBackend
from tuneforge.generation.settings import DEFAULT_MODELS, GenerationSettings

RATE = 48_000


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_ace_step(tmp_path_factory.mktemp("tiny_ace_step"))


def _settings(model_dir: Path, **overrides: object) -> GenerationSettings:
    values: dict[str, object] = dict(
        backend="ace-step",
        model=str(model_dir),
        device="cpu",
        cpu_threads=1,
        steps=2,
        lyrics_model="",  # no writer model: vocal challenges without lyrics get the fallback
    )
    values.update(overrides)
    return GenerationSettings(**values)


class _Recording(AceStepBackend):
    """The real backend, noting the lyrics each pipeline call sang."""

    def __init__(self, settings: GenerationSettings) -> None:
        super().__init__(settings)
        self.sung: list[str] = []

    def _generate_locked(self, request, lyrics, seed):  # type: ignore[no-untyped-def]
        self.sung.append(lyrics)
        return super()._generate_locked(request, lyrics, seed)


@pytest.fixture(scope="module")
def backend(tiny_dir: Path) -> _Recording:
    return _Recording(_settings(tiny_dir))


def _song(seconds: float = 2.0, seed: int = 7, **fields: object) -> MusicGenerationSynapse:
    values: dict[str, object] = dict(
        prompt="a summer love song",
        genre="pop",
        mood="happy",
        tempo_bpm=120,
        key="A minor",
        vocals=True,
        lyrics="[verse]\nsun on the water\nwe sing all day",
        duration_seconds=seconds,
        seed=seed,
    )
    values.update(fields)
    return MusicGenerationSynapse(**values)


def test_pipeline_loaded_from_folder_sings_exact_length_48k_stereo(backend: _Recording) -> None:
    assert not backend.loaded  # lazy: nothing loads until the first request
    audio = backend.generate(_song(2.3))
    assert backend.loaded and backend.is_turbo
    assert audio.sample_rate == RATE
    assert audio.samples.shape == (2, round(2.3 * RATE))
    assert audio.samples.dtype == np.float32
    assert np.all(np.isfinite(audio.samples))
    assert abs(integrated_lufs(audio) - backend.settings.target_lufs) < 1.0
    assert backend.sung[-1] == "[verse]\nsun on the water\nwe sing all day"


def test_same_seed_same_audio_other_lyrics_or_seed_other_audio(backend: _Recording) -> None:
    first = backend.generate(_song(seed=3)).samples
    again = backend.generate(_song(seed=3)).samples
    other_words = backend.generate(_song(seed=3, lyrics="[chorus]\nrain and thunder")).samples
    other_seed = backend.generate(_song(seed=4)).samples
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other_words, atol=1e-4)
    assert not np.allclose(first, other_seed, atol=1e-4)


def test_instrumental_challenge_sings_the_instrumental_marker(backend: _Recording) -> None:
    audio = backend.generate(_song(vocals=False, lyrics=None))
    assert backend.sung[-1] == INSTRUMENTAL_LYRICS
    assert audio.samples.shape == (2, 2 * RATE)


def test_vocal_challenge_without_lyrics_gets_written_ones(backend: _Recording) -> None:
    backend.generate(_song(6.0, lyrics=None))
    assert backend.sung[-1] == fallback_lyrics(6.0)  # lyrics_model="": the fixed fallback
    assert backend.sung[-1].startswith("[verse]\n")


def test_untagged_lyrics_are_sung_as_a_verse(backend: _Recording) -> None:
    request = _song(lyrics="row row row your boat\ngently down the stream")
    assert (
        backend.lyrics_for(request, seed=1)
        == "[verse]\nrow row row your boat\ngently down the stream"
    )


def test_duration_limits(tiny_dir: Path) -> None:
    short = _Recording(_settings(tiny_dir, max_duration_seconds=3.0))
    with pytest.raises(GenerationError, match="exceeds"):
        short.generate(_song(3.5))
    assert not short.loaded  # refused before any model work
    assert short.generate(_song(1.0)).samples.shape == (2, RATE)  # protocol minimum


def test_missing_model_folder_is_a_generation_error(tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="cannot load ACE-Step"):
        AceStepBackend(_settings(tmp_path / "absent")).load()


def test_out_of_memory_is_typed_for_a_503(tiny_dir: Path) -> None:
    class _Oom(AceStepBackend):
        def _generate_locked(self, request, lyrics, seed):  # type: ignore[no-untyped-def]
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(GenerationOutOfMemory):
        _Oom(_settings(tiny_dir)).generate(_song())


def test_ace_step_backend_defaults_to_the_ace_step_model() -> None:
    assert GenerationSettings(backend="ace-step").model == DEFAULT_MODELS["ace-step"]
    assert GenerationSettings(backend="ace-step", model="/m").model == "/m"
    assert GenerationSettings().model == "facebook/musicgen-small"


def test_vocal_backend_setting_routes_vocal_challenges(tiny_dir: Path) -> None:
    settings = GenerationSettings(
        backend="synth", vocal_backend="ace-step", vocal_model=str(tiny_dir), device="cpu"
    )
    routed = create_backend(settings)
    assert isinstance(routed, RoutedBackend)
    assert routed.sings and routed.name == "synth+ace-step"
    assert routed.route(_song()).name == "ace-step"
    assert routed.route(_song(vocals=False)).name == "synth"
    assert routed.route(_song()).model_id == str(tiny_dir)
    assert not create_backend(GenerationSettings(backend="synth")).sings


@pytest.mark.slow
def test_real_weights_sing_on_cuda() -> None:
    """Smoke test with real ACE-Step weights: set TUNEFORGE_ACE_STEP_WEIGHTS to their folder."""
    import torch

    weights = os.environ.get("TUNEFORGE_ACE_STEP_WEIGHTS", "")
    if not weights or not Path(weights).is_dir() or not torch.cuda.is_available():
        pytest.skip("needs TUNEFORGE_ACE_STEP_WEIGHTS (a diffusers-format folder) and CUDA")
    real = AceStepBackend(GenerationSettings(backend="ace-step", model=weights, lyrics_model=""))
    audio = real.generate(_song(10.0))
    assert audio.samples.shape == (2, 10 * RATE)
    assert np.all(np.isfinite(audio.samples)) and float(np.abs(audio.samples).max()) > 0.01
