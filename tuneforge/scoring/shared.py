"""What the clips of one round share, so each clip can be scored alone (in this process or in a
worker) with exactly the result the serial path gives.

A clip's score depends on its own audio, the challenge, the history, and — through `diversity`
and `fingerprint_penalty` — on two small features of the round's other clips. `share` takes those
features out of a decoded clip (a few KB) so the clip's ~20 MB working set can be freed; a worker
rebuilds the round's other clips from them as `PeerClip`s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tuneforge.core.audio import Audio, WavAudio, decoded
from tuneforge.scoring.base import Challenge
from tuneforge.scoring.clip import Clip, NeuralFeatures
from tuneforge.scoring.fingerprint import fingerprint
from tuneforge.scoring.history import SnapshotHistory
from tuneforge.scoring.scorers.diversity import diversity_embedding
from tuneforge.scoring.weights import MIN_SCORABLE_SECONDS


@dataclass(frozen=True)
class Peek:
    """A decoded clip's facts and the features the round's other clips read from it."""

    decode_ms: float
    seconds: float = 0.0
    sample_rate: int = 0
    error: str = ""  # undecodable, or its shared features could not be computed
    shared: dict[Hashable, Any] = field(default_factory=dict)
    # The copy-check fingerprint (also in `shared`): the validator publishes it and asks the
    # network index about it, so nobody decodes the clip again for it.
    fingerprint: np.ndarray | None = None

    @property
    def scorable(self) -> bool:
        return not self.error and self.seconds >= MIN_SCORABLE_SECONDS


@dataclass(frozen=True)
class RoundShared:
    """Everything a clip's scoring needs beyond its own audio (pickled once per round for the
    workers)."""

    challenge: Challenge
    hotkeys: list[str]
    generation_ms: list[float | None]
    shared: list[dict[Hashable, Any]]
    history: SnapshotHistory
    # With neural models: each clip's embeddings as the other clips read them (diversity), and
    # the round's CLAP text embeddings (batched_round.py).
    peer_neural: list[NeuralFeatures] = field(default_factory=list)
    texts: dict[str, np.ndarray] = field(default_factory=dict)


def decode(
    audio: Audio | WavAudio,
    clock: Callable[[], float] = time.perf_counter,
    neural: NeuralFeatures | None = None,
) -> tuple[Clip | None, Peek]:
    """(the clip, its facts); None and the reason when the audio cannot be decoded. `neural`:
    what the models computed for this audio, attached to the clip."""
    started = clock()
    try:
        clip = Clip(decoded(audio))
        seconds = clip.original.duration_seconds
    except Exception as exc:  # hostile audio that the decoder let through
        return None, Peek(0.0, error=f"undecodable audio: {type(exc).__name__}: {exc}")
    if neural is not None:
        clip.neural = neural
    peek = Peek((clock() - started) * 1000.0, seconds, clip.original.sample_rate)
    return clip, peek


def share(clip: Clip, peek: Peek) -> Peek:
    """`peek` with the clip's fingerprint and diversity embedding (DSP ones as cache entries;
    neural embeddings travel in the clip's `neural` slots, not here)."""
    try:
        values = (fingerprint(clip), diversity_embedding(clip)[1])
    except Exception as exc:  # every other clip's copy check needs it: this clip cannot count
        return replace(peek, error=f"scoring failed: {type(exc).__name__}: {exc}")
    shared = {}
    for value in values:
        key = clip.cached_key(value)
        if key is not None:
            shared[key] = value
    return replace(peek, shared=shared, fingerprint=values[0])


def decode_and_share(
    audio: Audio | WavAudio,
    clock: Callable[[], float] = time.perf_counter,
    neural: NeuralFeatures | None = None,
) -> Peek:
    """A worker's first pass over one clip: its facts and shared features; the clip is dropped."""
    clip, peek = decode(audio, clock, neural)
    if clip is None or not peek.scorable:
        return peek
    return share(clip, peek)
