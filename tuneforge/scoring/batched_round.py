"""A round with neural models loaded: every scorable clip is decoded and held at once for the
models' one batched pass on the device (`NeuralModels.prepare_round`), then the clips are scored
one after another in this process, each clip's working features freed once it is scored.
(Signal-only rounds go through `workers.py`'s two passes instead, one decoded clip at a time.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from loguru import logger

from tuneforge.scoring.base import Challenge, RoundContext, Submission
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.shared import Peek, RoundShared, decode, share
from tuneforge.scoring.workers import Scored

if TYPE_CHECKING:
    from tuneforge.scoring.neural import NeuralModels

Clock = Callable[[], float]
ClipScorer = Callable[[Challenge, RoundContext, int, Clip], Scored]


def decode_for_models(
    models: NeuralModels | None, submissions: list[Submission], live: list[int], clock: Clock
) -> tuple[dict[int, Peek], dict[int, Clip], float]:
    """Every live clip decoded and held for the neural models' batched pass: (facts and
    shared features, the scorable clips, ms the batched pass took)."""
    peeks: dict[int, Peek] = {}
    clips: dict[int, Clip] = {}
    for i in live:
        audio = submissions[i].audio
        assert audio is not None  # live
        clip, peeks[i] = decode(audio, clock)
        if clip is not None and peeks[i].scorable:
            clips[i] = clip
    prepare_ms = prepare(models, list(clips.values()), clock)
    for i, clip in clips.items():
        peeks[i] = share(clip, peeks[i])
        clip.release(peeks[i].shared)  # as in a worker: only what other clips read
    return peeks, clips, prepare_ms


def prepare(models: NeuralModels | None, clips: list[Clip], clock: Clock) -> float:
    """The models' batched pass over the round's clips; the ms it took."""
    if models is None or not clips:
        return 0.0
    started = clock()
    try:
        models.prepare_round(clips)
    except Exception as exc:  # neural scorers then fail (score 0) on the clips they lack
        logger.opt(exception=exc).error("neural prepare_round failed: {}", exc)
    return (clock() - started) * 1000.0


def score_in_process(
    score_clip: ClipScorer, models: NeuralModels | None, shared: RoundShared, clips: list[Clip]
) -> list[Scored]:
    """Serial scoring in this process of clips the neural models prepared together; each
    clip's working features are freed once it is scored."""
    context = RoundContext(
        clips=clips,
        miner_hotkeys=shared.hotkeys,
        generation_ms=shared.generation_ms,
        history=shared.history,
        models=models,
    )
    out: list[Scored] = []
    for index, clip in enumerate(clips):
        out.append(score_clip(shared.challenge, context, index, clip))
        clip.release(shared.shared[index])
    return out
