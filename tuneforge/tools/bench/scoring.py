"""`tuneforge bench scoring`: CPU seconds per scorer and penalty for one synthesised clip.

Measured warm (a first pass pays librosa's numba compilation and fills the history), then on a
fresh clip so every shared feature is computed again and charged to the first scorer asking.
CPU time is `time.process_time` (all threads of this process).
"""

from __future__ import annotations

import json
import time

import typer

# Scorers that need neural models (CLAP/MERT/Whisper/MOS/preference): outside the DSP budget.
NEURAL = ("clap", "neural_quality", "vocal_lyrics", "learned_mos", "preference")
TARGET_CPU_S = 1.5  # issue #10: the signal stack per 30 s clip


def command(
    duration: float = typer.Option(30.0, "--duration", help="clip length, seconds (1-60)"),
    json_out: bool = typer.Option(False, "--json", metavar="", help="print one JSON object"),
    neural: bool = typer.Option(
        False,
        "--neural",
        help="time CLAP, MERT and Whisper at their real sizes (random weights) instead",
    ),
    batch: int = typer.Option(8, "--batch", help="clips per batched call (--neural)"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N (--neural)"),
) -> None:
    """CPU seconds per scorer and penalty on a synthesised clip, warm."""
    from tuneforge.core.protocol import MusicGenerationSynapse
    from tuneforge.scoring.base import Submission
    from tuneforge.scoring.engine import ScoringEngine
    from tuneforge.scoring.history import InMemoryHistory

    challenge = MusicGenerationSynapse(
        prompt="upbeat pop with piano and drums",
        genre="pop",
        tempo_bpm=110,
        key="C major",
        duration_seconds=duration,
        seed=7,
    )
    audio = _synth_clip(challenge)
    if neural:
        from tuneforge.tools.bench import neural as neural_bench

        result = neural_bench.run(audio, batch=batch, single=1, device=device)
        if json_out:
            typer.echo(json.dumps(result))
            return
        typer.echo(f"{duration:.0f} s clip on {device} ({result['clock']}), batch {batch}:")
        for name, row in result["models"].items():
            typer.echo(
                f"  {name:<8} {row['params_m']:7.1f}M  unbatched {row['unbatched_s_per_clip']:7.3f}"
                f"  batched {row['batched_s_per_clip']:7.3f} s/clip"
            )
        typer.echo(f"peak RSS {result['peak_rss_mb']:.0f} MB")
        return
    engine = ScoringEngine.create(InMemoryHistory(), clock=time.process_time)
    engine.score_round(challenge, [Submission("bench", audio, generation_ms=1000.0)])  # warm-up
    started = time.process_time()
    score = engine.score_round(challenge, [Submission("bench", audio, generation_ms=1000.0)])[0]
    round_cpu = time.process_time() - started

    timings = score.timings_ms
    per_name = {
        name: round(timings.get(name, 0.0) / 1000.0, 4)
        for name in [*engine.scorer_names, *engine.penalty_names]
    }
    dsp_total = timings.get("decode", 0.0) / 1000.0 + sum(
        v for name, v in per_name.items() if name not in NEURAL
    )
    report = {
        "duration_s": duration,
        "sample_rate": audio.sample_rate,
        "total_cpu_s": round(dsp_total, 4),
        "target_cpu_s": TARGET_CPU_S,
        "decode_cpu_s": round(timings.get("decode", 0.0) / 1000.0, 4),
        "per_scorer_cpu_s": per_name,
        "round_cpu_s": round(round_cpu, 4),
        "excluded": engine.excluded,
    }
    if json_out:
        typer.echo(json.dumps(report))
        return
    typer.echo(f"{duration:.0f} s clip, warm CPU seconds (process_time):")
    for name, seconds in per_name.items():
        note = " (neural)" if name in NEURAL else ""
        typer.echo(f"  {name:<20} {seconds:8.3f}{note}")
    typer.echo(f"  {'decode':<20} {report['decode_cpu_s']:8.3f}")
    typer.echo(f"DSP scorers + penalties: {dsp_total:.3f} CPU-s (target <= {TARGET_CPU_S})")


def _synth_clip(challenge: object) -> object:
    """The synth backend's answer to the challenge (weight-free, deterministic by seed)."""
    from tuneforge.generation.synth import SynthBackend

    return SynthBackend().generate(challenge)
