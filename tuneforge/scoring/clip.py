"""A clip decoded once, with features computed lazily once and shared by every scorer."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from tuneforge.core.audio import Audio, checked_audio, resample

if TYPE_CHECKING:
    from tuneforge.scoring.whisper import Transcript

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
            value: T = self._cache[key]  # the cache is untyped; each key holds its compute's T
            return value

    def has_feature(self, compute: Callable[..., Any], *args: Hashable) -> bool:
        return (compute.__module__, compute.__qualname__, args) in self._cache

    def cached_key(self, value: object) -> Hashable | None:
        """The cache key under which exactly this object (by identity) is cached, if any: how
        the engine names a feature it shares with other processes without knowing its function."""
        with self._lock:
            return next((k for k, v in self._cache.items() if v is value), None)

    def seed(self, features: dict[Hashable, Any]) -> None:
        """Pre-fill the cache with features computed for this same audio elsewhere."""
        with self._lock:
            self._cache.update(features)

    def release(self, keep: dict[Hashable, Any]) -> None:
        """Drop every cached DSP feature except `keep` (a clip's working set is ~20 MB at 30 s;
        a round keeps only what other clips read from it). Neural slots stay."""
        with self._lock:
            self._cache = dict(keep)


class PeerClip(Clip):
    """Another clip of the round, seen from a scoring worker: only the features the round shares
    (fingerprint, diversity embedding, neural slots), no audio. Asking it for anything else is a
    bug that must show, not a value computed on silence."""

    def __init__(self, features: dict[Hashable, Any], neural: NeuralFeatures) -> None:
        self.neural = neural
        self.fad_frames_used = None
        self.sr = ANALYSIS_RATE
        self._cache = dict(features)
        self._lock = threading.RLock()

    def feature(self, compute: Callable[..., T], *args: Hashable) -> T:
        key = (compute.__module__, compute.__qualname__, args)
        if key not in self._cache:
            raise LookupError(f"{compute.__qualname__} of another clip is not shared with workers")
        value: T = self._cache[key]
        return value
