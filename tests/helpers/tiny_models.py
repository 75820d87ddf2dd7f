"""Tiny random models of the real neural-scoring classes, saved to a directory and loaded back
with `from_pretrained(dir)` exactly as production loads a hub id (no weights can be downloaded).

Each builder is seeded, so two builds give the same weights. The localnet end-to-end test may
reuse these to run the neural scorers without a model hub.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_SPECIAL_BPE = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
_CORPUS = [
    "upbeat electronic dance track with synth bass and drums at 128 BPM in A minor",
    "calm acoustic folk song with guitar and soft female vocals, happy mood",
    "dark cinematic orchestral piece with strings, brass and timpani",
    "lofi hip hop beat with piano, vinyl crackle and mellow drums",
    "energetic rock anthem with electric guitar, bass and male vocals",
    "the quick brown fox jumps over the lazy dog, la la la love you baby tonight",
]


def _train_byte_bpe(
    vocab_size: int, special: list[str]
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE trained in-process (the format RoBERTa/Whisper tokenizers load)."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_CORPUS * 4, vocab_size=vocab_size, special_tokens=special)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges


def build_tiny_clap(directory: Path, seed: int = 0) -> Path:
    """A tiny `ClapModel` (fused HTSAT audio tower, RoBERTa text tower) + real `ClapProcessor`."""
    import torch
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        ClapTextConfig,
        RobertaTokenizer,
    )

    torch.manual_seed(seed)
    vocab, merges = _train_byte_bpe(400, _SPECIAL_BPE)
    tokenizer = RobertaTokenizer(vocab=vocab, merges=merges)
    text_config = ClapTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=80,
        projection_dim=16,
    )
    audio_config = ClapAudioConfig(
        patch_embeds_hidden_size=16,
        depths=[1, 1],
        num_attention_heads=[1, 2],
        hidden_size=32,
        projection_dim=16,
        enable_fusion=True,
    )
    config = ClapConfig(
        text_config=text_config.to_dict(), audio_config=audio_config.to_dict(), projection_dim=16
    )
    model = ClapModel(config).eval()
    processor = ClapProcessor(feature_extractor=ClapFeatureExtractor(), tokenizer=tokenizer)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def build_tiny_mert(directory: Path, seed: int = 0) -> Path:
    """A tiny `HubertModel` (MERT's shape family: conv front end at 24 kHz, 320x downsampling,
    transformer encoder) + the `Wav2Vec2FeatureExtractor` MERT ships."""
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(seed)
    config = HubertConfig(
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=48,
        conv_dim=(16, 16, 16, 16, 16, 16, 16),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    model = HubertModel(config).eval()
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=24_000, do_normalize=True, return_attention_mask=True
    )
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    extractor.save_pretrained(directory)
    return directory


WHISPER_SPECIAL = [
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nospeech|>",
    "<|notimestamps|>",
]


def build_tiny_whisper(directory: Path, seed: int = 0) -> Path:
    """A tiny `WhisperForConditionalGeneration` (80 mel bins, 30 s window) + `WhisperProcessor`
    with a byte-level BPE tokenizer carrying Whisper's special tokens."""
    import torch
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    torch.manual_seed(seed)
    vocab, merges = _train_byte_bpe(300, [])
    for token in WHISPER_SPECIAL:
        vocab.setdefault(token, len(vocab))
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": WHISPER_SPECIAL[1:]})
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in WHISPER_SPECIAL}
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=48,
        decoder_ffn_dim=48,
        max_source_positions=1500,
        max_target_positions=24,
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|endoftext|>"],
        decoder_start_token_id=ids["<|startoftranscript|>"],
    )
    model = WhisperForConditionalGeneration(config).eval()
    processor = WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer
    )
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def synthetic_ratings(embeddings: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """MOS-like ratings in [1, 5] that depend on the embeddings through a fixed hidden direction,
    plus rating noise; returns (ratings, direction)."""
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal(embeddings.shape[1])
    direction /= np.linalg.norm(direction)
    latent = embeddings @ direction
    latent = (latent - latent.mean()) / (latent.std() + 1e-9)
    ratings = np.clip(3.0 + 0.9 * latent + 0.2 * rng.standard_normal(len(latent)), 1.0, 5.0)
    return ratings.astype(np.float32), direction


@dataclass(frozen=True)
class TinyModelDirs:
    clap: Path
    mert: Path
    whisper: Path


@functools.lru_cache(maxsize=1)
def tiny_model_dirs() -> TinyModelDirs:
    """Build the three tiny models once per process (in a temp dir removed at exit)."""
    root = Path(tempfile.mkdtemp(prefix="tuneforge-tiny-models-"))
    atexit.register(shutil.rmtree, root, True)
    return TinyModelDirs(
        clap=build_tiny_clap(root / "clap"),
        mert=build_tiny_mert(root / "mert"),
        whisper=build_tiny_whisper(root / "whisper"),
    )
