"""`tuneforge bench scoring --neural`: the neural scorers' cost at their real sizes.

No model hub here, and speed does not depend on weight values: each model is built from its
published configuration with random weights and put into `NeuralModels`, whose own code paths
are timed (`_clap_audio_embeddings`, `_mert_features`, `transcribe_batch`), on the same 30 s clip:
  CLAP   laion/clap-htsat-fused: transformers' ClapConfig defaults (HTSAT audio tower, RoBERTa
         text tower) with enable_fusion=True, 48 kHz, 10 s windows
  MERT   m-a-p/MERT-v1-95M: its remote code is a HuBERT-base encoder (7 conv layers, 320x
         down-sampling, 12 x 768 transformer layers), built here as transformers' HubertModel
         with HuBERT-base defaults (94.4M parameters), 24 kHz
  Whisper openai/whisper-base (DEFAULT_WHISPER): 6+6 layers, d_model 512, 80 mel bins. Random
         weights never emit <|endoftext|>, so every window decodes the full
         WHISPER_MAX_NEW_TOKENS: an upper bound on real transcription cost. Its tokenizer is a
         stand-in that knows the special tokens (decoding text costs nothing measurable).
CPU seconds are `time.process_time` (all threads); "unbatched" scores clips one at a time,
"batched" hands the model `batch` clips at once as a round does (NeuralModels.BATCH_SIZE).
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

# whisper-base's special-token ids (its tokenizer's added tokens)
_WHISPER_SPECIAL = {
    "<|endoftext|>": 50257,
    "<|startoftranscript|>": 50258,
    "<|en|>": 50259,
    "<|transcribe|>": 50359,
    "<|nocaptions|>": 50362,
    "<|notimestamps|>": 50363,
}


class _SpecialTokens:
    """Whisper tokenizer stand-in: the special-token table, and empty text for any ids."""

    def convert_tokens_to_ids(self, name: str) -> int | None:
        return _WHISPER_SPECIAL.get(name)

    def convert_ids_to_tokens(self, token_id: int) -> str | None:
        return {v: k for k, v in _WHISPER_SPECIAL.items()}.get(token_id)

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return ""


def build_models(device: str = "cpu") -> tuple[Any, dict[str, int]]:
    """NeuralModels holding real-size CLAP, MERT and Whisper with random weights, and each
    model's parameter count."""
    import torch
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        HubertConfig,
        HubertModel,
        Wav2Vec2FeatureExtractor,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
    )

    from tuneforge.scoring.neural import MERT_RATE, NeuralModels
    from tuneforge.scoring.whisper import WhisperReader

    torch.manual_seed(0)
    models = NeuralModels(device)
    clap = ClapModel(ClapConfig(audio_config={"enable_fusion": True}))
    mert = HubertModel(HubertConfig())
    whisper = WhisperForConditionalGeneration(
        WhisperConfig(
            vocab_size=51865,
            num_mel_bins=80,
            d_model=512,
            encoder_layers=6,
            decoder_layers=6,
            encoder_attention_heads=8,
            decoder_attention_heads=8,
            encoder_ffn_dim=2048,
            decoder_ffn_dim=2048,
            max_source_positions=1500,
            max_target_positions=448,
        )
    )
    models._clap = clap.to(device, models.dtype).eval()
    models._clap_processor = SimpleNamespace(feature_extractor=ClapFeatureExtractor())
    models._mert = mert.to(device, models.dtype).eval()
    models._mert_processor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=MERT_RATE, do_normalize=True, return_attention_mask=True
    )
    processor = SimpleNamespace(
        feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=_SpecialTokens()
    )
    models.whisper = WhisperReader(
        whisper.to(device, models.dtype).eval(), processor, device, models.dtype
    )
    params = {
        name: sum(p.numel() for p in model.parameters())
        for name, model in (("clap", clap), ("mert", mert), ("whisper", whisper))
    }
    return models, params


def run(audio: Any, batch: int, single: int, device: str = "cpu") -> dict[str, Any]:
    """CPU (or CUDA wall) seconds per clip per model, unbatched and batched, and peak RSS."""
    from tuneforge.scoring.clip import Clip
    from tuneforge.scoring.neural import CLAP_RATE, MERT_RATE, WHISPER_RATE, _mono_at

    started = time.perf_counter()
    models, params = build_models(device)
    build_s = time.perf_counter() - started
    rss_loaded = _peak_rss_mb()
    calls: dict[str, tuple[int, Callable[[list[Clip]], Any]]] = {
        "clap": (CLAP_RATE, models._clap_audio_embeddings),
        "mert": (MERT_RATE, models._mert_features),
        "whisper": (WHISPER_RATE, models.transcribe_batch),
    }
    clock = time.process_time if device == "cpu" else time.perf_counter
    report: dict[str, Any] = {}
    for name, (rate, call) in calls.items():

        def fresh(n: int, rate: int = rate) -> list[Clip]:
            clips = [Clip(audio) for _ in range(n)]
            for clip in clips:
                _mono_at(clip, rate)  # resampling is the clip's, not the model's
            return clips

        call(fresh(1))  # first call: allocator and kernel warm-up
        alone = []
        for clip in fresh(single):
            t = clock()
            call([clip])
            _sync(device)
            alone.append(clock() - t)
        clips = fresh(batch)
        t = clock()
        call(clips)
        _sync(device)
        together = (clock() - t) / batch
        report[name] = {
            "params_m": round(params[name] / 1e6, 1),
            "unbatched_s_per_clip": round(sum(alone) / len(alone), 3),
            "batched_s_per_clip": round(together, 3),
        }
    return {
        "device": device,
        "dtype": str(models.dtype).removeprefix("torch."),
        "clip_s": round(audio.duration_seconds, 1),
        "batch": batch,
        "clock": "process_time (CPU s, all threads)" if device == "cpu" else "wall s",
        "models": report,
        "build_s": round(build_s, 1),
        "rss_after_load_mb": rss_loaded,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KB on Linux
