"""`tuneforge bench generation`: seconds per second of audio on this device.

Builds a randomly initialised model of a real architecture (random weights run at the same speed
as trained ones: the cost is the shape, not the values) and times one seeded generation of
`--duration` seconds after a short warm-up: MusicGen small/medium (`--backend musicgen`) or the
ACE-Step 1.5 2B turbo pipeline (`--backend ace-step`, `--steps` denoising steps).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import typer

MUSICGEN_CONFIGS = ("tiny", "small", "medium")


def command(
    backend: str = typer.Option("musicgen", "--backend", help="musicgen | ace-step"),
    config: str | None = typer.Option(
        None,
        "--config",
        help="musicgen: tiny | small (default) | medium; ace-step: tiny | 2b-turbo (default)",
    ),
    steps: int = typer.Option(8, "--steps", min=1, max=200, help="ACE-Step denoising steps"),
    duration: float = typer.Option(15.0, "--duration", min=0.5, max=60.0, help="seconds of audio"),
    dtype: str = typer.Option("auto", "--dtype", help="auto | fp32 | fp16 | bf16"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    static_cache: bool = typer.Option(
        False, "--static-cache/--no-static-cache", metavar="", help="static KV cache"
    ),
    compile_model: bool = typer.Option(
        False,
        "--compile/--no-compile",
        metavar="",
        help="let transformers compile decoding (static cache)",
    ),
    threads: int = typer.Option(
        0, "--threads", min=0, max=256, help="CPU threads for torch (0 = torch's default)"
    ),
    json_out: bool = typer.Option(False, "--json", metavar="", help="print one JSON object"),
) -> None:
    """Time generation with random weights of a real architecture."""
    if dtype not in ("auto", "fp32", "fp16", "bf16"):
        raise typer.BadParameter("--dtype must be auto, fp32, fp16 or bf16")
    if backend == "ace-step":
        result = _bench_ace_step(config or "2b-turbo", duration, dtype, device, steps, threads)
        _report(result, json_out, f"ACE-Step {result['config']} ({steps} steps)")
        return
    if backend != "musicgen":
        raise typer.BadParameter("--backend must be musicgen or ace-step")
    config = config or "small"
    if config not in MUSICGEN_CONFIGS:
        raise typer.BadParameter("--config must be tiny, small or medium")
    result = _bench_musicgen(config, duration, dtype, device, static_cache, compile_model, threads)
    _report(result, json_out, f"MusicGen {config}")


def _report(result: dict[str, object], json_out: bool, what: str) -> None:
    if json_out:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"{what} ({result['params_millions']} M params) on {result['device']} "
        f"{result['dtype']}: {result['duration_s']:.1f} s of audio in {result['wall_s']:.2f} s "
        f"({result['seconds_per_audio_second']:.3f} s per audio second, "
        f"{result['realtime_factor']:.2f}x real time)"
    )


def _timed(run: Callable[[float], None], device: str, seconds: float) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run(seconds)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _bench_ace_step(
    config: str, duration: float, dtype: str, device: str, steps: int, threads: int
) -> dict[str, object]:
    from tuneforge.generation.ace_step_configs import ACE_CONFIGS, build_random_pipeline

    if config not in ACE_CONFIGS:
        raise typer.BadParameter(f"--config must be one of {', '.join(ACE_CONFIGS)}")
    import torch

    from tuneforge.generation.musicgen import resolve_device, resolve_dtype

    if threads:
        torch.set_num_threads(threads)
    target_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, target_device)
    with torch.device(target_device):  # build in place: the 2B model is 14 GB in fp32
        pipe = build_random_pipeline(config)  # type: ignore[arg-type]
    pipe.to(target_device, torch_dtype)
    pipe.set_progress_bar_config(disable=True)
    params = sum(
        p.numel()
        for part in (pipe.transformer, pipe.condition_encoder, pipe.text_encoder, pipe.vae)
        for p in part.parameters()
    )
    lyrics = "[verse]\nsoft notes in the morning light\n[chorus]\nmusic fills the air tonight"

    def run(seconds: float) -> None:
        generator = torch.Generator(device=target_device).manual_seed(0)
        with torch.inference_mode():
            pipe(
                prompt="pop, happy mood, piano, vocals",
                lyrics=lyrics,
                audio_duration=seconds,
                num_inference_steps=steps,
                guidance_scale=1.0,
                generator=generator,
                bpm=120,
                keyscale="A minor",
            )

    warmup_s = _timed(run, target_device, min(1.0, duration))
    wall_s = _timed(run, target_device, duration)
    return _result(config, target_device, torch_dtype, duration, warmup_s, wall_s, params) | {
        "backend": "ace-step",
        "steps": steps,
    }


def _result(
    config: str,
    device: str,
    dtype: object,
    duration: float,
    warmup_s: float,
    wall_s: float,
    params: int,
) -> dict[str, object]:
    import torch

    return {
        "config": config,
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "duration_s": duration,
        "warmup_s": round(warmup_s, 3),
        "wall_s": round(wall_s, 3),
        "seconds_per_audio_second": round(wall_s / duration, 4),
        "realtime_factor": round(duration / wall_s, 4),
        "params_millions": round(params / 1e6, 1),
    }


def _bench_musicgen(
    config: str,
    duration: float,
    dtype: str,
    device: str,
    static_cache: bool,
    compile_model: bool,
    threads: int,
) -> dict[str, object]:
    import torch
    from transformers import MusicgenForConditionalGeneration

    from tuneforge.generation.configs import (
        FRAME_RATE,
        musicgen_config,
        randomize_codebooks,
        set_generation_defaults,
    )
    from tuneforge.generation.musicgen import DELAY_STEPS, resolve_device, resolve_dtype

    if threads:
        torch.set_num_threads(threads)
    target_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, target_device)
    torch.manual_seed(0)
    with torch.device(target_device):
        model = MusicgenForConditionalGeneration(musicgen_config(config))
    model = model.to(torch_dtype).eval()
    set_generation_defaults(model)
    with torch.no_grad():
        randomize_codebooks(model)
    model.generation_config.disable_compile = not compile_model
    params = sum(p.numel() for p in model.parameters())
    text_vocab = model.config.text_encoder.vocab_size
    input_ids = torch.randint(0, text_vocab, (1, 24), device=target_device)
    cache = "static" if static_cache else None

    def run(seconds: float) -> None:
        with torch.inference_mode():
            model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=True,
                guidance_scale=3.0,
                top_k=250,
                max_new_tokens=int(round(seconds * FRAME_RATE)) + DELAY_STEPS,
                cache_implementation=cache,
            )

    warmup_s = _timed(run, target_device, min(1.0, duration))
    wall_s = _timed(run, target_device, duration)
    return _result(config, target_device, torch_dtype, duration, warmup_s, wall_s, params) | {
        "backend": "musicgen",
        "static_cache": static_cache,
        "compile": compile_model,
    }
