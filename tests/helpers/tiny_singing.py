"""Tiny random singing models saved to disk: an ACE-Step 1.5 pipeline and a Qwen3 lyrics writer.

Real classes at toy widths (the pipeline from `tuneforge.generation.ace_step_configs`, which the
benchmark also uses at full size); tokenizers are trained in-process since none ships in a wheel.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

_ACE_MARKER = "tiny_ace_step.done"
_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@pytest.fixture(scope="module", autouse=True)
def offline_and_threads() -> Iterator[None]:
    """Import into a test module: the hub stays offline (a missing model fails in seconds) and
    torch's thread count is restored after the module (backends may change it)."""
    import torch

    threads = torch.get_num_threads()
    saved = {name: os.environ.get(name) for name in _OFFLINE_VARIABLES}
    os.environ.update(dict.fromkeys(_OFFLINE_VARIABLES, "1"))
    yield
    torch.set_num_threads(threads)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


_QWEN_MARKER = "tiny_qwen3.done"

# Qwen3's chat template, cut to what the writer uses; `enable_thinking=False` pre-fills an empty
# think block exactly as the real template does.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n"
    "{% endif %}{% endif %}"
)
_LYRIC_CORPUS = [
    "[verse]\nwalking down the street tonight\nunder the pale moon light\n",
    "[chorus]\nwe are alive we sing along\nhold the moment all night long\n",
    "Write original song lyrics for a pop song about love and summer nights",
]


def build_tiny_ace_step(directory: Path, seed: int = 0) -> Path:
    """Build (once per directory) and save a tiny random AceStepPipeline; returns `directory`."""
    directory = Path(directory)
    if (directory / _ACE_MARKER).exists():
        return directory
    from tuneforge.generation.ace_step_configs import build_random_pipeline

    build_random_pipeline("tiny", seed=seed).save_pretrained(str(directory))
    (directory / _ACE_MARKER).write_text("ok")
    return directory


def build_tiny_qwen3(directory: Path, seed: int = 0) -> Path:
    """Build (once per directory) and save a tiny random Qwen3ForCausalLM with a chat tokenizer."""
    directory = Path(directory)
    if (directory / _QWEN_MARKER).exists():
        return directory
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_LYRIC_CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=specials[1:],
        model_input_names=["input_ids", "attention_mask"],  # no token_type_ids for generate
    )
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    Qwen3ForCausalLM(config).save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    (directory / _QWEN_MARKER).write_text("ok")
    return directory
