"""ACE-Step 1.5 architectures as diffusers components: the real 2B turbo geometry and a tiny one.

Used to build randomly initialised pipelines of the real size (the generation benchmark: cost is
the shape, not the values) and tiny ones for tests. Numbers follow the public ACE-Step 1.5 turbo
checkpoint: a 2B DiT with a lyrics/timbre condition encoder, the Qwen3-Embedding-0.6B text
encoder, and the 48 kHz stereo Oobleck VAE with a 1920-sample hop (25 latents per second).
"""

from __future__ import annotations

from typing import Any, Literal

AceConfigName = Literal["tiny", "2b-turbo"]
ACE_CONFIGS: tuple[str, ...] = ("tiny", "2b-turbo")

SAMPLE_RATE = 48_000
LATENT_CHANNELS = 64
# 2*4*4*6*10 = 1920 samples per latent frame -> 25 latent frames per second at 48 kHz.
VAE_DOWNSAMPLING = [2, 4, 4, 6, 10]
TINY_TOKENIZER_VOCAB = 512

# A few lines of text so the in-process tokenizer learns common English pieces and section tags.
_TOKENIZER_CORPUS = [
    "[verse] [chorus] [bridge] [intro] [outro] [Instrumental]",
    "soft notes in the morning light, music fills the air tonight",
    "pop rock jazz electronic ambient hip hop folk classical piano guitar drums bass vocals",
    "# Instruction # Caption # Metas # Languages # Lyric bpm keyscale timesignature duration",
    "A minor C major happy sad calm energetic 120 BPM female male voice singing",
]


def build_tokenizer() -> Any:  # -> transformers.PreTrainedTokenizerFast
    """A small byte-level BPE trained in-process (no tokenizer file ships in any wheel), with
    Qwen's `<|endoftext|>` as end and padding token as the pipeline expects."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_TOKENIZER_VOCAB,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_TOKENIZER_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_input_names=["input_ids", "attention_mask"],
    )


def build_random_pipeline(name: AceConfigName, seed: int = 0) -> Any:  # -> AceStepPipeline
    """An `AceStepPipeline` of the named geometry with random weights (fp32, on the CPU)."""
    import torch
    from diffusers import (
        AceStepPipeline,
        AceStepTransformer1DModel,
        AutoencoderOobleck,
        FlowMatchEulerDiscreteScheduler,
    )
    from diffusers.pipelines.ace_step.modeling_ace_step import AceStepConditionEncoder
    from transformers import Qwen3Config, Qwen3Model

    if name not in ACE_CONFIGS:
        raise ValueError(f"unknown ACE-Step config {name!r}; choose from {list(ACE_CONFIGS)}")
    tiny = name == "tiny"
    torch.manual_seed(seed)
    text_hidden = 32 if tiny else 1024
    text_encoder = Qwen3Model(
        Qwen3Config(
            vocab_size=TINY_TOKENIZER_VOCAB if tiny else 151_669,
            hidden_size=text_hidden,
            intermediate_size=64 if tiny else 3072,
            num_hidden_layers=2 if tiny else 28,
            num_attention_heads=2 if tiny else 16,
            num_key_value_heads=1 if tiny else 8,
            head_dim=16 if tiny else 128,
            max_position_embeddings=4096 if tiny else 32_768,
        )
    )
    # The DiT and the condition encoder share the attention geometry of the real 2B model.
    width = dict(
        hidden_size=32 if tiny else 2048,
        intermediate_size=64 if tiny else 6144,
        num_attention_heads=2 if tiny else 16,
        num_key_value_heads=1 if tiny else 8,
        head_dim=16 if tiny else 128,
        sliding_window=16 if tiny else 128,
    )
    transformer = AceStepTransformer1DModel(
        num_hidden_layers=2 if tiny else 24,
        in_channels=3 * LATENT_CHANNELS,  # noisy latents + source latents + chunk mask
        audio_acoustic_hidden_dim=LATENT_CHANNELS,
        is_turbo=True,
        **width,
    )
    condition_encoder = AceStepConditionEncoder(
        text_hidden_dim=text_hidden,
        timbre_hidden_dim=LATENT_CHANNELS,
        num_lyric_encoder_hidden_layers=1 if tiny else 8,
        num_timbre_encoder_hidden_layers=1 if tiny else 4,
        **width,
    )
    vae = AutoencoderOobleck(
        encoder_hidden_size=8 if tiny else 128,
        downsampling_ratios=VAE_DOWNSAMPLING,
        channel_multiples=[1, 1, 1, 1, 1] if tiny else [1, 2, 4, 8, 16],
        decoder_channels=8 if tiny else 128,
        decoder_input_channels=LATENT_CHANNELS,
        audio_channels=2,
        sampling_rate=SAMPLE_RATE,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    return AceStepPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=build_tokenizer(),
        transformer=transformer.eval(),
        condition_encoder=condition_encoder.eval(),
        scheduler=scheduler,
    )
