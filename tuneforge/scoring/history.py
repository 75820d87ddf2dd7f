"""InMemoryHistory: the ScoringHistory a single process keeps (CLI, tests, benchmarks).

The validator persists the same protocol in its state DB; this one forgets on exit.
"""

from __future__ import annotations

from collections import OrderedDict, deque

import numpy as np

from tuneforge.scoring.base import HistoryView

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
        stored.append(np.array(embedding, copy=True))  # at the precision its channel chose

    def fingerprints(self, limit: int) -> list[tuple[str, np.ndarray]]:
        """(miner_hotkey, fingerprint) of clips seen earlier, newest first."""
        if limit <= 0:
            return []
        return list(reversed(self._fingerprints))[:limit]

    def add_fingerprint(self, miner_hotkey: str, fingerprint: np.ndarray) -> None:
        self._fingerprints.append((miner_hotkey, np.asarray(fingerprint).copy()))


class SnapshotHistory:
    """A read-only copy of the history a round needs, taken once before scoring: scoring then
    reads no database, and a worker process gets exactly what the serial path reads.

    It holds `embeddings` newest entries of each of the round's miners and `fingerprints` newest
    fingerprints; a scorer asking for more is refused loudly (it would otherwise score
    differently in a worker than in-process)."""

    def __init__(
        self,
        embeddings: dict[str, list[np.ndarray]],
        fingerprints: list[tuple[str, np.ndarray]],
        embeddings_limit: int,
        fingerprints_limit: int,
    ) -> None:
        self._embeddings = embeddings
        self._fingerprints = fingerprints
        self._embeddings_limit = embeddings_limit
        self._fingerprints_limit = fingerprints_limit

    @classmethod
    def take(
        cls,
        source: HistoryView,
        hotkeys: list[str],
        embeddings_limit: int,
        fingerprints_limit: int,
    ) -> SnapshotHistory:
        return cls(
            {h: source.recent_embeddings(h, embeddings_limit) for h in dict.fromkeys(hotkeys)},
            source.fingerprints(fingerprints_limit),
            embeddings_limit,
            fingerprints_limit,
        )

    def recent_embeddings(self, miner_hotkey: str, limit: int) -> list[np.ndarray]:
        if limit > self._embeddings_limit:
            raise ValueError(f"the round's snapshot holds {self._embeddings_limit} embeddings")
        if miner_hotkey not in self._embeddings:
            raise KeyError(f"{miner_hotkey} is not in this round's snapshot")
        return self._embeddings[miner_hotkey][: max(0, limit)]

    def fingerprints(self, limit: int) -> list[tuple[str, np.ndarray]]:
        if limit > self._fingerprints_limit:
            raise ValueError(f"the round's snapshot holds {self._fingerprints_limit} fingerprints")
        return self._fingerprints[: max(0, limit)]
