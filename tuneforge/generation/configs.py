"""MusicGen architectures as transformers configs: the real small/medium geometry and a tiny one.

Used to build randomly initialised models of the real size (the generation benchmark) and tiny
ones for tests. Numbers follow the public `facebook/musicgen-small|medium` and
`facebook/encodec_32khz` configs, with the `t5-base` text encoder.
"""

from __future__ import annotations

from typing import Literal

from tuneforge.core.audio import COMMON_RATE

ConfigName = Literal["tiny", "small", "medium"]

# EnCodec 32 kHz: hop 8*5*4*4 = 640 samples -> 50 frames/s; 2.2 kbps / (50 Hz * 11 bits) = 4
# codebooks of 2048 entries.
SAMPLE_RATE = COMMON_RATE
FRAME_RATE = 50
NUM_CODEBOOKS = 4
CODEBOOK_SIZE = 2048
DECODERS = {  # hidden size, layers, heads, feed-forward size
    "small": (1024, 24, 16, 4096),
    "medium": (1536, 48, 24, 6144),
    "tiny": (32, 2, 2, 64),
}
TINY_TEXT_VOCAB = 256


def musicgen_config(name: ConfigName):  # -> transformers.MusicgenConfig (lazy import)
    """The MusicgenConfig for `name`; "tiny" keeps the real codec geometry at toy widths."""
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    if name not in DECODERS:
        raise ValueError(f"unknown MusicGen config {name!r}; choose from {sorted(DECODERS)}")
    tiny = name == "tiny"
    hidden, layers, heads, ffn = DECODERS[name]
    text = T5Config(
        vocab_size=TINY_TEXT_VOCAB if tiny else 32_128,
        d_model=32 if tiny else 768,
        d_kv=16 if tiny else 64,
        d_ff=64 if tiny else 3072,
        num_layers=2 if tiny else 12,
        num_heads=2 if tiny else 12,
        relative_attention_num_buckets=8 if tiny else 32,
        feed_forward_proj="relu",
    )
    codec = EncodecConfig(
        sampling_rate=SAMPLE_RATE,
        target_bandwidths=[2.2],
        upsampling_ratios=[8, 5, 4, 4],
        codebook_size=CODEBOOK_SIZE,
        hidden_size=16 if tiny else 128,
        num_filters=4 if tiny else 64,
        num_lstm_layers=1 if tiny else 2,
        norm_type="weight_norm",
        use_causal_conv=False,
        use_conv_shortcut=False,
        audio_channels=1,
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=CODEBOOK_SIZE,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        ffn_dim=ffn,
        num_codebooks=NUM_CODEBOOKS,
        max_position_embeddings=2048,
        activation_function="gelu",
        audio_channels=1,
    )
    return MusicgenConfig(text_encoder=text, audio_encoder=codec, decoder=decoder)


def set_generation_defaults(model) -> None:  # model: MusicgenForConditionalGeneration
    """The generation_config.json MusicGen checkpoints ship (random models have none)."""
    config = model.generation_config
    config.decoder_start_token_id = CODEBOOK_SIZE
    config.pad_token_id = CODEBOOK_SIZE
    config.bos_token_id = CODEBOOK_SIZE
    config.do_sample = True
    config.guidance_scale = 3.0
    config.max_length = 1500


def randomize_codebooks(model, seed: int = 0) -> None:  # model: MusicgenForConditionalGeneration
    """Give a randomly built EnCodec distinct code vectors.

    A fresh EnCodec's codebooks are buffers of zeros (trained ones come from k-means), so every
    code would decode to the same sound and seeds could not change the audio.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    for layer in model.audio_encoder.quantizer.layers:
        embed = layer.codebook.embed
        values = torch.randn(embed.shape, generator=generator, dtype=torch.float32)
        embed.copy_(values.to(embed.dtype))
        layer.codebook.embed_avg.copy_(embed)
        layer.codebook.cluster_size.fill_(1.0)
