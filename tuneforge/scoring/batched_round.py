"""The neural models' pass over a round: on the validator's device, batched, a few clips decoded
at a time (D68).

Every scorable clip goes through the models in batches of `neural.BATCH_SIZE`: decoded, run
through CLAP and MERT (and the MOS head), transcribed by Whisper when it is loaded, and dropped;
only its `NeuralFeatures` stay (≈ 2 MB for 30 s). The two scoring passes (`workers.py`, in worker
processes or in this one) then decode each clip again with its features attached, so the round's
memory is bounded by the batch and the workers, not by the number of answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from loguru import logger

from tuneforge.scoring.base import Challenge, Submission
from tuneforge.scoring.clip import Clip, NeuralFeatures
from tuneforge.scoring.neural import BATCH_SIZE
from tuneforge.scoring.shared import decode

if TYPE_CHECKING:
    from tuneforge.scoring.neural import NeuralModels

Clock = Callable[[], float]


def neural_pass(
    models: NeuralModels, submissions: list[Submission], live: list[int], clock: Clock
) -> tuple[dict[int, NeuralFeatures], float]:
    """(submission index -> what the models computed for that clip, ms the models took). A clip
    that cannot be decoded or is too short gets nothing here (its first pass says why)."""
    features: dict[int, NeuralFeatures] = {}
    model_ms = 0.0
    for start in range(0, len(live), BATCH_SIZE):
        batch: dict[int, Clip] = {}
        for i in live[start : start + BATCH_SIZE]:
            audio = submissions[i].audio
            assert audio is not None  # live
            clip, peek = decode(audio, clock)
            if clip is not None and peek.scorable:
                batch[i] = clip
        model_ms += prepare(models, list(batch.values()), clock)
        features.update((i, clip.neural) for i, clip in batch.items())
    return features, model_ms


def prepare(models: NeuralModels, clips: list[Clip], clock: Clock) -> float:
    """The models' batched pass over `clips` (transcripts included); the ms it took."""
    if not clips:
        return 0.0
    started = clock()
    try:
        models.prepare_round(clips)
    except Exception as exc:  # neural scorers then fail (score 0) on the clips they lack
        logger.opt(exception=exc).error("neural pass failed: {}", exc)
    if models.whisper is not None:
        try:
            models.transcript(clips[0], clips)  # transcribes the batch
        except Exception as exc:  # vocal_lyrics then fails (score 0) on these clips
            logger.opt(exception=exc).error("transcription failed: {}", exc)
    return (clock() - started) * 1000.0


def round_texts(models: NeuralModels, challenge: Challenge) -> dict[str, np.ndarray]:
    """The CLAP text embeddings the round's clips are compared with: the challenge's caption and
    its instruments' (empty without CLAP, or when it fails: the checks that read them then fail
    on every clip, visibly)."""
    from tuneforge.scoring.scorers.attribute import instrument_texts
    from tuneforge.scoring.scorers.clap import challenge_text

    if not models.has("clap"):
        return {}
    texts = [challenge_text(challenge)]
    if challenge.instruments:
        texts += instrument_texts(challenge.instruments)
    try:
        return dict(zip(texts, models.clap_text_embeddings(texts), strict=True))
    except Exception as exc:
        logger.opt(exception=exc).error("CLAP text embedding failed: {}", exc)
        return {}


def peer_features(neural: NeuralFeatures | None) -> NeuralFeatures:
    """What other clips read of a clip's neural features (its clip embeddings, for diversity)."""
    if neural is None:
        return NeuralFeatures()
    return NeuralFeatures(
        clap_embedding=neural.clap_embedding, mert_embedding=neural.mert_embedding
    )
