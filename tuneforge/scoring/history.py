"""InMemoryHistory: the ScoringHistory a single process keeps (CLI, tests, benchmarks).

The validator persists the same protocol in its state DB; this one forgets on exit.
"""

from __future__ import annotations

from collections import OrderedDict, deque

import numpy as np

DEFAULT_EMBEDDINGS_PER_MINER = 64
DEFAULT_FINGERPRINTS = 2_000
DEFAULT_MINERS = 4_096  # bounded so a stream of fresh hotkeys cannot grow memory without end


class InMemoryHistory:
    """Bounded per-miner embeddings and a global newest-first fingerprint list."""

    def __init__(
        self,
        embeddings_per_miner: int = DEFAULT_EMBEDDINGS_PER_MINER,
        max_fingerprints: int = DEFAULT_FINGERPRINTS,
        max_miners: int = DEFAULT_MINERS,
    ) -> None:
        self._embeddings_per_miner = embeddings_per_miner
        self._max_miners = max_miners
        self._embeddings: OrderedDict[str, deque[np.ndarray]] = OrderedDict()
        self._fingerprints: deque[tuple[str, np.ndarray]] = deque(maxlen=max_fingerprints)

    def recent_embeddings(self, miner_hotkey: str, limit: int) -> list[np.ndarray]:
        """Newest first, at most `limit`."""
        stored = self._embeddings.get(miner_hotkey)
        if not stored or limit <= 0:
            return []
        return list(reversed(stored))[:limit]

    def add_embedding(self, miner_hotkey: str, embedding: np.ndarray) -> None:
        stored = self._embeddings.get(miner_hotkey)
        if stored is None:
            stored = deque(maxlen=self._embeddings_per_miner)
            self._embeddings[miner_hotkey] = stored
            while len(self._embeddings) > self._max_miners:
                self._embeddings.popitem(last=False)
        stored.append(np.asarray(embedding, dtype=np.float32).copy())

    def fingerprints(self, limit: int) -> list[tuple[str, np.ndarray]]:
        """(miner_hotkey, fingerprint) of clips seen earlier, newest first."""
        if limit <= 0:
            return []
        return list(reversed(self._fingerprints))[:limit]

    def add_fingerprint(self, miner_hotkey: str, fingerprint: np.ndarray) -> None:
        self._fingerprints.append((miner_hotkey, np.asarray(fingerprint).copy()))

    def forget_miner(self, miner_hotkey: str) -> None:
        """A hotkey that leaves its uid loses its history (DESIGN.md §6)."""
        self._embeddings.pop(miner_hotkey, None)
        kept = [(h, f) for h, f in self._fingerprints if h != miner_hotkey]
        self._fingerprints.clear()
        self._fingerprints.extend(kept)
