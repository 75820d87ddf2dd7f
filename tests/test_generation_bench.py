"""`tuneforge bench generation` times a random MusicGen of a named architecture."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tuneforge.tools.cli import app


def test_bench_generation_tiny_prints_one_json_result() -> None:
    import torch

    threads = torch.get_num_threads()
    # One thread: a toy model gains nothing from more, and the suite's process keeps its setting.
    args = ["bench", "generation", "--config", "tiny", "--duration", "2", "--threads", "1"]
    try:
        result = CliRunner().invoke(app, [*args, "--json"])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["config"] == "tiny" and report["device"] in ("cpu", "cuda")
    assert report["duration_s"] == 2.0 and report["wall_s"] > 0
    assert report["seconds_per_audio_second"] == pytest.approx(report["wall_s"] / 2.0, abs=1e-3)
    assert report["realtime_factor"] > 0 and 0.1 < report["params_millions"] < 5


def test_bench_generation_rejects_an_unknown_config() -> None:
    result = CliRunner().invoke(app, ["bench", "generation", "--config", "huge"])
    assert result.exit_code != 0


def test_real_small_and_medium_configs_have_the_published_sizes() -> None:
    import torch
    from transformers import MusicgenForConditionalGeneration

    from tuneforge.generation.configs import musicgen_config

    sizes = {}
    for name in ("small", "medium"):
        with torch.device("meta"):  # shapes only: no memory, no init
            model = MusicgenForConditionalGeneration(musicgen_config(name))
        sizes[name] = sum(p.numel() for p in model.parameters()) / 1e6
        assert model.config.audio_encoder.frame_rate == 50
        assert model.audio_encoder.quantizer.get_num_quantizers_for_bandwidth(2.2) == 4
    assert round(sizes["small"]) == 587  # facebook/musicgen-small, incl. T5 and EnCodec
    assert 1900 < sizes["medium"] < 2100  # facebook/musicgen-medium (~2.0 B with cross-attn)


def test_bench_generation_ace_step_tiny_prints_seconds_per_audio_second() -> None:
    import torch

    threads = torch.get_num_threads()
    args = ["bench", "generation", "--backend", "ace-step", "--config", "tiny", "--steps", "2"]
    try:
        result = CliRunner().invoke(app, [*args, "--duration", "2", "--threads", "1", "--json"])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == "ace-step" and report["config"] == "tiny"
    assert report["steps"] == 2 and report["wall_s"] > 0
    assert report["seconds_per_audio_second"] == pytest.approx(report["wall_s"] / 2.0, abs=1e-3)


def test_ace_step_2b_turbo_config_has_the_published_sizes() -> None:
    import torch

    from tuneforge.generation.ace_step_configs import LATENT_CHANNELS, build_random_pipeline

    with torch.device("meta"):  # shapes only: no 14 GB of random weights
        pipe = build_random_pipeline("2b-turbo")

    def millions(module: torch.nn.Module) -> float:
        return sum(p.numel() for p in module.parameters()) / 1e6

    # ~2B of DiT + condition encoder; Qwen3-Embedding-0.6B; the 337 MB bf16 Oobleck VAE.
    assert 2_000 < millions(pipe.transformer) + millions(pipe.condition_encoder) < 2_400
    assert 590 < millions(pipe.text_encoder) < 600
    assert 160 < millions(pipe.vae) < 175
    assert pipe.is_turbo and pipe.sample_rate == 48_000 and pipe.latents_per_second == 25.0
    assert pipe.transformer.config.audio_acoustic_hidden_dim == LATENT_CHANNELS
