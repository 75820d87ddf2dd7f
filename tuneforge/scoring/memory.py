"""RoundMemory: what a scored round leaves for later rounds, returned by the engine, never written
by it. The caller keeps it (the validator in the round's transaction, the CLI in an
`InMemoryHistory`) or drops it (customer jobs leave no trace).

Three typed channels per scored clip, each at the precision its check needs:
  diversity    [d] float32 clip embedding (cosine distances of ~0.001 matter for the DSP one)
  fad_frames   [<=128, d] float16 frame embeddings for the miner's FAD window: a Fréchet
               distance over ~1,000 correlated frames needs neither 256 frames a clip nor 23 bits
               of mantissa, and this is the largest thing a validator stores (MERT: 196 KB a clip)
  fingerprint  uint8 copy-check fingerprint, stored as computed
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tuneforge.scoring.base import ScoringHistory

FAD_HISTORY_FRAMES = 128
FAD_HISTORY_DTYPE = np.float16


@dataclass(frozen=True)
class ClipMemory:
    hotkey: str
    diversity: np.ndarray
    fad_frames: np.ndarray | None
    fingerprint: np.ndarray

    @property
    def nbytes(self) -> int:
        frames = 0 if self.fad_frames is None else self.fad_frames.nbytes
        return self.diversity.nbytes + frames + self.fingerprint.nbytes


@dataclass
class RoundMemory:
    clips: list[ClipMemory] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.clips)

    def record_into(self, history: ScoringHistory) -> None:
        """Add every clip to an in-process history, in round order (diversity vector first, then
        its FAD frames, as the history protocol expects)."""
        for clip in self.clips:
            history.add_embedding(clip.hotkey, clip.diversity)
            if clip.fad_frames is not None:
                history.add_embedding(clip.hotkey, clip.fad_frames)
            history.add_fingerprint(clip.hotkey, clip.fingerprint)


def clip_memory(
    hotkey: str, diversity: np.ndarray, frames: np.ndarray | None, fingerprint: np.ndarray
) -> ClipMemory:
    """One clip's memory at storage precision (frames evenly thinned to FAD_HISTORY_FRAMES)."""
    kept: np.ndarray | None = None
    if frames is not None:
        frames = np.asarray(frames)
        if frames.ndim == 2 and len(frames) > FAD_HISTORY_FRAMES:
            step = int(np.ceil(len(frames) / FAD_HISTORY_FRAMES))
            frames = frames[::step]
        limit = float(np.finfo(FAD_HISTORY_DTYPE).max)
        kept = np.ascontiguousarray(np.clip(frames, -limit, limit), dtype=FAD_HISTORY_DTYPE)
    return ClipMemory(
        hotkey=hotkey,
        diversity=np.asarray(diversity, dtype=np.float32).copy(),
        fad_frames=kept,
        fingerprint=np.asarray(fingerprint).copy(),
    )
