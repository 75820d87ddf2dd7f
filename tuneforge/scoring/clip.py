"""A clip decoded once, with features computed lazily once and shared by every scorer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from tuneforge.audio import Audio, checked_audio, resample

ANALYSIS_RATE = 22_050  # every DSP feature is computed on mono audio at this rate

T = TypeVar("T")


class Clip:
    """`original` keeps channels and rate (stereo/fidelity checks); `y` is mono at ANALYSIS_RATE."""

    def __init__(self, audio: Audio) -> None:
        # Range-checked and clipped here too: a Clip is the scoring boundary, whatever the caller.
        audio = checked_audio(audio)
        self.original = audio
        self.sr = ANALYSIS_RATE
        self.y: np.ndarray = resample(
            Audio(audio.mono(), audio.sample_rate), ANALYSIS_RATE
        ).samples[0]
        self._cache: dict[str, Any] = {}
        self._lock = threading.RLock()

    @property
    def duration_seconds(self) -> float:
        return len(self.y) / self.sr

    def feature(self, name: str, compute: Callable[[Clip], T]) -> T:
        """The cached value of feature `name`, computing it with `compute(self)` the first time."""
        with self._lock:
            if name not in self._cache:
                self._cache[name] = compute(self)
            return self._cache[name]

    def has_feature(self, name: str) -> bool:
        return name in self._cache

    def put_feature(self, name: str, value: Any) -> None:
        """Store a feature computed elsewhere (e.g. batched neural embeddings for a round)."""
        with self._lock:
            self._cache[name] = value
