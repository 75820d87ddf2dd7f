"""`tuneforge bench generation`: MusicGen seconds per second of audio on this device.

Builds a randomly initialised MusicGen of the real small/medium architecture (random weights
decode at the same speed as trained ones: generation cost is the decoder's shape, not its values)
and times one seeded generation of `--duration` seconds after a short warm-up.
"""

from __future__ import annotations

import json
import time

import typer


def command(
    config: str = typer.Option("small", "--config", help="tiny | small | medium"),
    duration: float = typer.Option(15.0, "--duration", min=0.5, max=60.0, help="seconds of audio"),
    dtype: str = typer.Option("auto", "--dtype", help="auto | fp32 | fp16 | bf16"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    static_cache: bool = typer.Option(
        False, "--static-cache/--no-static-cache", help="static KV cache"
    ),
    compile_model: bool = typer.Option(
        False, "--compile/--no-compile", help="let transformers compile decoding (static cache)"
    ),
    threads: int = typer.Option(
        0, "--threads", min=0, max=256, help="CPU threads for torch (0 = torch's default)"
    ),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Time MusicGen generation with random weights of the real architecture."""
    if config not in ("tiny", "small", "medium"):
        raise typer.BadParameter("--config must be tiny, small or medium")
    if dtype not in ("auto", "fp32", "fp16", "bf16"):
        raise typer.BadParameter("--dtype must be auto, fp32, fp16 or bf16")
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

    def run(seconds: float) -> float:
        if target_device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
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
        if target_device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    warmup_s = run(min(1.0, duration))
    wall_s = run(duration)
    result = {
        "config": config,
        "device": target_device,
        "dtype": str(torch_dtype).removeprefix("torch."),
        "static_cache": static_cache,
        "compile": compile_model,
        "threads": torch.get_num_threads(),
        "duration_s": duration,
        "warmup_s": round(warmup_s, 3),
        "wall_s": round(wall_s, 3),
        "seconds_per_audio_second": round(wall_s / duration, 4),
        "realtime_factor": round(duration / wall_s, 4),
        "params_millions": round(params / 1e6, 1),
    }
    if json_out:
        typer.echo(json.dumps(result))
    else:
        typer.echo(
            f"MusicGen {config} ({result['params_millions']} M params) on {target_device} "
            f"{result['dtype']}: {duration:.1f} s of audio in {wall_s:.2f} s "
            f"({result['seconds_per_audio_second']:.3f} s per audio second, "
            f"{result['realtime_factor']:.2f}x real time)"
        )
