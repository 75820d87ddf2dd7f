"""MusicGenBackend on a tiny random MusicGen saved to disk and loaded with from_pretrained."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.tiny_musicgen import build_tiny_musicgen
from tuneforge.core.audio import integrated_lufs, true_peak_dbfs
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.generation.base import GenerationError, GenerationOutOfMemory
from tuneforge.generation.factory import create_backend
from tuneforge.generation.musicgen import MusicGenBackend, crossfade_append, resolve_dtype
from tuneforge.generation.settings import GenerationSettings

RATE = 32_000


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_musicgen(tmp_path_factory.mktemp("tiny_musicgen"))


@pytest.fixture(scope="module", autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _settings(model_dir: Path, **overrides: object) -> GenerationSettings:
    # One CPU thread: a toy model gains nothing from more, and busy cores make pools crawl.
    return GenerationSettings(
        backend="musicgen", model=str(model_dir), device="cpu", cpu_threads=1, **overrides
    )


def _request(seconds: float, seed: int) -> MusicGenerationSynapse:
    return MusicGenerationSynapse(
        prompt="chill beat with vinyl crackle",
        genre="lo-fi hip hop",
        tempo_bpm=85,
        key="A minor",
        duration_seconds=seconds,
        seed=seed,
    )


class _RecordingBackend(MusicGenBackend):
    """The real backend, noting the audio prompt and length of each model call."""

    def __init__(self, settings: GenerationSettings) -> None:
        super().__init__(settings)
        self.calls: list[tuple[int, float]] = []

    def _window(self, prompt: str, tail: np.ndarray | None, new_seconds: float) -> np.ndarray:
        self.calls.append((0 if tail is None else tail.shape[1], new_seconds))
        return super()._window(prompt, tail, new_seconds)


@pytest.fixture(scope="module")
def backend(tiny_dir: Path) -> MusicGenBackend:
    created = create_backend(_settings(tiny_dir))
    assert isinstance(created, MusicGenBackend)
    return created


def test_tiny_model_loaded_from_directory_generates_exact_length_normalised_audio(
    backend: MusicGenBackend,
) -> None:
    assert not backend.loaded  # lazy: nothing loads until the first request
    audio = backend.generate(_request(2.3, seed=7))
    assert backend.loaded
    assert audio.sample_rate == RATE
    assert audio.samples.shape == (1, round(2.3 * RATE))
    assert np.all(np.isfinite(audio.samples))
    assert integrated_lufs(audio) == pytest.approx(-14.0, abs=1.0) or true_peak_dbfs(audio) > -1.5
    assert true_peak_dbfs(audio) <= -1.0 + 0.1


def test_same_seed_gives_same_audio_and_different_seeds_differ(backend: MusicGenBackend) -> None:
    first = backend.generate(_request(1.0, seed=11)).samples
    again = backend.generate(_request(1.0, seed=11)).samples
    other = backend.generate(_request(1.0, seed=12)).samples
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).mean() > 1e-3


def test_concurrent_requests_run_one_at_a_time_and_stay_seeded(backend: MusicGenBackend) -> None:
    expected = {seed: backend.generate(_request(1.0, seed)).samples for seed in (21, 22)}
    results: dict[int, np.ndarray] = {}

    def work(seed: int) -> None:
        results[seed] = backend.generate(_request(1.0, seed)).samples

    threads = [threading.Thread(target=work, args=(seed,)) for seed in (21, 22)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seed in (21, 22):
        np.testing.assert_array_equal(results[seed], expected[seed])


def test_request_longer_than_window_is_stitched_from_overlapping_windows(tiny_dir: Path) -> None:
    recording = _RecordingBackend(_settings(tiny_dir, window_seconds=2.0, overlap_seconds=1.0))
    audio = recording.generate(_request(4.5, seed=3))
    assert audio.samples.shape == (1, round(4.5 * RATE))
    # 2 s, then windows of a 1 s audio prompt + at most 1 s new audio: 1 + 1 + 0.5 s.
    assert [tail for tail, _ in recording.calls] == [0, RATE, RATE, RATE]
    assert [round(new, 3) for _, new in recording.calls] == [2.0, 1.0, 1.0, 0.5]
    # Stitched audio is seeded as a whole too.
    again = _RecordingBackend(_settings(tiny_dir, window_seconds=2.0, overlap_seconds=1.0))
    np.testing.assert_array_equal(again.generate(_request(4.5, seed=3)).samples, audio.samples)


def test_crossfade_of_a_faithful_continuation_is_seamless() -> None:
    t = np.arange(3 * RATE) / RATE
    tone = np.sin(2 * np.pi * 220 * t).astype(np.float32)[np.newaxis, :]
    overlap = RATE // 2
    head, continuation = tone[:, : 2 * RATE], tone[:, 2 * RATE - overlap :]
    stitched = crossfade_append(head, continuation, overlap)
    np.testing.assert_allclose(stitched, tone, atol=1e-6)
    with pytest.raises(GenerationError):
        crossfade_append(head, continuation[:, :overlap], overlap)


def test_out_of_memory_and_other_failures_become_typed_errors(tiny_dir: Path) -> None:
    import torch

    class Failing(MusicGenBackend):
        error: Exception = RuntimeError("boom")

        def _window(self, prompt: str, tail: np.ndarray | None, new_seconds: float) -> np.ndarray:
            raise self.error

    failing = Failing(_settings(tiny_dir))
    with pytest.raises(GenerationError, match="boom") as info:
        failing.generate(_request(1.0, seed=1))
    assert not isinstance(info.value, GenerationOutOfMemory)
    failing.error = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
    with pytest.raises(GenerationOutOfMemory):
        failing.generate(_request(1.0, seed=1))
    # The backend keeps serving after an OOM.
    failing.error = RuntimeError("again")
    with pytest.raises(GenerationError, match="again"):
        failing.generate(_request(1.0, seed=1))


def test_missing_model_directory_is_a_clear_generation_error(tmp_path: Path) -> None:
    missing = MusicGenBackend(_settings(tmp_path / "no-such-model"))
    with pytest.raises(GenerationError, match="cannot load MusicGen model"):
        missing.load()


def test_a_model_that_is_not_musicgen_is_refused_by_name(tmp_path: Path) -> None:
    from transformers import T5Config

    T5Config(d_model=8, d_ff=8, num_layers=1, num_heads=1, vocab_size=16).save_pretrained(tmp_path)
    with pytest.raises(GenerationError, match="is a 't5' model"):
        MusicGenBackend(_settings(tmp_path)).load()


def test_request_beyond_max_duration_is_refused_before_loading(tiny_dir: Path) -> None:
    short = MusicGenBackend(_settings(tiny_dir, max_duration_seconds=5.0))
    with pytest.raises(GenerationError, match="exceeds"):
        short.generate(_request(6.0, seed=1))
    assert not short.loaded


def test_device_and_dtype_selection() -> None:
    import torch

    from tuneforge.generation.musicgen import resolve_device

    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    if not torch.cuda.is_available():
        with pytest.raises(GenerationError, match="no CUDA device"):
            resolve_device("cuda")
