"""A clip decoded once, with features computed lazily once and shared by every scorer."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from tuneforge.audio import Audio, checked_audio, resample

if TYPE_CHECKING:
    from tuneforge.scoring.neural import Transcript

ANALYSIS_RATE = 22_050  # every DSP feature is computed on mono audio at this rate

T = TypeVar("T")


@dataclass
class NeuralFeatures:
    """What the round's neural models computed for this clip (`NeuralModels.prepare_round`);
    None = not computed (model absent, or it failed on this clip)."""

    clap_embedding: np.ndarray | None = None  # [d] L2-normalised CLAP audio embedding
    mert_layer_means: np.ndarray | None = None  # [layers, d] time-averaged MERT layers
    mert_embedding: np.ndarray | None = None  # [d] mean of the layer means
    mert_segments: np.ndarray | None = None  # [segments, d] last-layer means per segment
    mert_fad_frames: np.ndarray | None = None  # [frames, d] last-layer frames for FAD
    mos: float | None = None  # learned MOS head rating (1..5)
    transcript: Transcript | None = None  # Whisper's transcript of the clip

    def embedding(self, name: str) -> np.ndarray | None:
        """The clip embedding a trained head reads: "clap_embedding" or "mert_embedding"."""
        if name not in ("clap_embedding", "mert_embedding"):
            raise ValueError(f"no clip embedding named {name!r}")
        value: np.ndarray | None = getattr(self, name)
        return value


class Clip:
    """`original` keeps channels and rate (stereo/fidelity checks); `y` is mono at ANALYSIS_RATE.

    DSP features are cached by the function that computes them (`clip.feature(compute)`);
    neural features live in the typed `neural` slots."""

    def __init__(self, audio: Audio) -> None:
        # Range-checked and clipped here too: a Clip is the scoring boundary, whatever the caller.
        audio = checked_audio(audio)
        self.original = audio
        self.sr = ANALYSIS_RATE
        self.y: np.ndarray = resample(
            Audio(audio.mono(), audio.sample_rate), ANALYSIS_RATE
        ).samples[0]
        self.neural = NeuralFeatures()
        self.fad_frames_used: np.ndarray | None = None  # the frames fad_penalty compared
        self._cache: dict[Hashable, Any] = {}
        self._lock = threading.RLock()

    @property
    def duration_seconds(self) -> float:
        return len(self.y) / self.sr

    def feature(self, compute: Callable[..., T], *args: Hashable) -> T:
        """`compute(self, *args)`, computed the first time and cached: one function (by its
        qualified name) and its arguments is one feature."""
        key = (compute.__module__, compute.__qualname__, args)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = compute(self, *args)
            return self._cache[key]

    def has_feature(self, compute: Callable[..., Any], *args: Hashable) -> bool:
        return (compute.__module__, compute.__qualname__, args) in self._cache


_shared: dict[int, tuple[weakref.ref[Audio], weakref.ref[Clip]]] = {}
_shared_lock = threading.Lock()


def shared_clip(audio: Audio) -> Clip:
    """The Clip of this Audio object while someone holds it: the engine and the validator's copy
    check work on a round's answers at the same time, and each answer is decoded and
    fingerprinted once, whichever asks first. (Keyed by identity, checked through weak
    references: a reused id never hands out another audio's clip.)"""
    key = id(audio)
    with _shared_lock:
        entry = _shared.get(key)
        clip = entry[1]() if entry is not None and entry[0]() is audio else None
        if clip is None:
            clip = Clip(audio)
            _shared[key] = (weakref.ref(audio), weakref.ref(clip))
            if len(_shared) > 1024:  # drop entries whose audio or clip is gone
                for stale in [k for k, (a, c) in _shared.items() if a() is None or c() is None]:
                    del _shared[stale]
        return clip
