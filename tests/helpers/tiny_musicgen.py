"""A tiny random MusicGen saved to disk, loadable with `from_pretrained(directory)`.

Real classes (MusicgenForConditionalGeneration, T5 text encoder, EnCodec 32 kHz with the real
50 Hz / 4-codebook geometry, MusicgenProcessor) at toy widths. No T5 tokenizer ships in any wheel,
so a Unigram tokenizer is trained in-process on a few music captions.
"""

from __future__ import annotations

import json
from pathlib import Path

_MARKER = "tiny_musicgen.json"
_CAPTIONS = [
    "lo-fi hip hop, calm mood, 85 BPM, in A minor, with piano and drums. Chill beat with vinyl",
    "upbeat electronic dance music, energetic mood, 128 BPM, with synth bass and drums",
    "sad piano ballad in C major with strings and soft vocals",
    "rock, aggressive mood, 140 BPM, in E minor, with electric guitar, bass and drums",
    "ambient soundscape with pads, 70 BPM, in F# major. Dreamy and slow",
    "jazz trio with saxophone, double bass and brushes, 120 BPM, in Bb major",
]


def _train_tokenizer():  # -> transformers.T5Tokenizer
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import T5Tokenizer

    from tuneforge.generation.configs import TINY_TEXT_VOCAB

    unigram = Tokenizer(models.Unigram())
    unigram.normalizer = normalizers.NFKC()
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=TINY_TEXT_VOCAB, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    unigram.train_from_iterator(_CAPTIONS * 4, trainer)
    vocab = [tuple(item) for item in json.loads(unigram.to_str())["model"]["vocab"]]
    # On transformers 5, T5Tokenizer takes the Unigram pieces directly (vocab_file is ignored).
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def build_tiny_musicgen(directory: Path, seed: int = 0) -> Path:
    """Build (once per directory) and save a tiny MusicGen + processor; returns `directory`."""
    directory = Path(directory)
    if (directory / _MARKER).exists():
        return directory
    import torch
    from transformers import (
        EncodecFeatureExtractor,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
    )

    from tuneforge.generation.configs import (
        musicgen_config,
        randomize_codebooks,
        set_generation_defaults,
    )

    torch.manual_seed(seed)
    model = MusicgenForConditionalGeneration(musicgen_config("tiny")).eval()
    set_generation_defaults(model)
    with torch.no_grad():
        randomize_codebooks(model, seed)
    extractor = EncodecFeatureExtractor(
        feature_size=1, sampling_rate=32_000, padding_side="left", padding_value=0.0
    )
    processor = MusicgenProcessor(feature_extractor=extractor, tokenizer=_train_tokenizer())
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    (directory / _MARKER).write_text(json.dumps({"config": "tiny", "seed": seed}))
    return directory
