"""Scoring a round in two passes, in `--scoring.workers` processes or in this one.

A round goes through the passes twice: first every clip is decoded and gives the few KB the
other clips read of it (`shared.decode_and_share`: its fingerprint and diversity embedding); then
every clip is decoded again and scored alone against those, its ~20 MB of features freed as it
finishes. Answers arrive as WAV bytes (`WavAudio`) and are decoded only inside a pass, so the
round's memory is bounded by the number of workers, not of miners. Workers never see the
validator's state: the history arrives as a snapshot and the memory of the round is returned
(RoundMemory), so results are the same bit for bit in one process or many
(tests/test_scoring_workers.py).

The first pass over an answer may start as soon as it arrives (`start_peek`), while the round
still waits for the others; the second needs every clip's shared features, so it starts when the
last answer is in.

Workers are spawned (not forked: the validator runs threads and may hold CUDA) once, and each
pays librosa's compilation at start-up, not in a round. They load no model and import no
torch (tests/test_scoring_workers.py checks it): with neural models, the validator runs them
and each clip's task carries what they computed (`prepared_models.py`, D68).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from loguru import logger

from tuneforge.core.audio import Audio, WavAudio
from tuneforge.scoring.base import ClipScore, RoundContext
from tuneforge.scoring.clip import Clip, NeuralFeatures, PeerClip
from tuneforge.scoring.memory import ClipMemory
from tuneforge.scoring.neural import NeuralModels
from tuneforge.scoring.shared import Peek, RoundShared, decode, decode_and_share

if TYPE_CHECKING:
    from tuneforge.scoring.engine import ScoringEngine

T = TypeVar("T")
R = TypeVar("R")
AudioSource = Audio | WavAudio
Scored = tuple[ClipScore, ClipMemory] | str  # a clip's score and memory, or why it has none
# One clip's work: its audio and what the neural models computed for it (None without models)
Item = tuple[AudioSource | None, NeuralFeatures | None]


def default_workers() -> int:
    """All cores but one (the event loop, queries and the state need one), at least one."""
    return max(1, (os.cpu_count() or 1) - 1)


class ScoringPool:
    """A persistent pool of scoring processes: every check of a round, the neural ones from what
    the validator's models computed (D68)."""

    def __init__(
        self,
        workers: int,
        clock: Callable[[], float] = time.perf_counter,
        models: dict[str, str] | None = None,
        network: str = "",
    ) -> None:
        """`models`: the validator's model statuses (`prepared_models.worker_statuses`) when
        its neural models computed the round's features; the workers then score the neural
        checks from those (D68)."""
        self.workers = workers
        self._clock = clock
        self._models = models
        self._network = network
        self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self._clock, self._models, self._network),
        )

    def _guarded(self, work: Callable[[], R]) -> R:
        try:
            return work()
        except BrokenProcessPool:
            # A worker died (killed for memory, or a native crash on some input): this round
            # fails and is retried; the next one gets fresh workers.
            logger.error("a scoring worker died: restarting the workers")
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._start()
            raise

    def _map(self, function: Callable[[T], R], items: list[T]) -> list[R]:
        return self._guarded(lambda: list(self._executor.map(function, items)))

    def warm_up(self) -> None:
        """Start every worker now. The first starts alone: it compiles librosa's kernels into
        numba's cache while no other process writes there (workers compiling into one cold cache
        at once left it corrupt here, and every later process segfaulted in beat tracking); the
        others then start together and load what it wrote. Workers spawn on demand, so the
        first task starts exactly one."""
        self._executor.submit(_ready).result()
        futures = [self._executor.submit(_ready) for _ in range(self.workers)]
        for future in futures:
            future.result()

    def peek(self, items: list[Item]) -> list[Peek]:
        return self._map(_peek, items)

    def start_peek(self, audio: AudioSource) -> Future[Peek]:
        """The first pass over one answer, queued now (the workers take it when free)."""
        return self._guarded(lambda: self._executor.submit(_peek, (audio, None)))

    def finish(self, started: list[Future[Peek]]) -> list[Peek]:
        """The results of `start_peek`, in order (a dead worker fails the round, as in `peek`)."""
        return self._guarded(lambda: [future.result() for future in started])

    def score(
        self, shared: RoundShared, items: list[Item], models: NeuralModels | None = None
    ) -> list[Scored]:
        """The second pass (`models` is for the in-process passes: the workers have theirs)."""
        # The round's shared part (snapshot of the history included) is written once, not
        # pickled into every task.
        with tempfile.NamedTemporaryFile(prefix="tuneforge-round-", delete=False) as handle:
            pickle.dump(shared, handle, protocol=pickle.HIGHEST_PROTOCOL)
            path = handle.name
        try:
            tasks = [(path, index, item) for index, item in enumerate(items)]
            return self._map(_score, tasks)
        finally:
            Path(path).unlink(missing_ok=True)

    def pids(self) -> list[int]:
        """The worker processes' ids (benchmarks read their CPU time and memory)."""
        return list(getattr(self._executor, "_processes", None) or {})

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class InProcessPasses:
    """The same two passes in this process (one scoring process: `--scoring.workers 1`)."""

    def __init__(self, engine: ScoringEngine, clock: Callable[[], float]) -> None:
        self._engine = engine
        self._clock = clock
        # One thread: first passes started while answers arrive run one at a time beside the
        # event loop (each decodes a clip: at most one such clip is alive here at a time).
        self._thread: ThreadPoolExecutor | None = None

    def peek(self, items: list[Item]) -> list[Peek]:
        return [peek_clip(audio, self._clock, neural) for audio, neural in items]

    def start_peek(self, audio: AudioSource) -> Future[Peek]:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="tuneforge-first-pass")
        return self._thread.submit(peek_clip, audio, self._clock)

    def finish(self, started: list[Future[Peek]]) -> list[Peek]:
        return [future.result() for future in started]

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True, cancel_futures=True)
            self._thread = None

    def score(
        self, shared: RoundShared, items: list[Item], models: NeuralModels | None = None
    ) -> list[Scored]:
        """The second pass; `models`: what the neural checks read (the validator's models, or
        a `PreparedModels` view of what they computed)."""
        context = peer_context(shared, models)
        return [
            score_clip(self._engine, shared, context, index, item, self._clock)
            for index, item in enumerate(items)
        ]


def peek_clip(
    audio: AudioSource | None, clock: Callable[[], float], neural: NeuralFeatures | None = None
) -> Peek:
    """The first pass over one clip: its facts and the features the others read of it."""
    if audio is None:
        return Peek(0.0, error="no audio")
    return decode_and_share(audio, clock, neural)


def peer_context(shared: RoundShared, models: NeuralModels | None = None) -> RoundContext:
    """The round as one clip's scoring sees it: every clip by its shared features only."""
    neural = shared.peer_neural or [NeuralFeatures() for _ in shared.shared]
    peers: list[Clip] = [
        PeerClip(features, clip_neural)
        for features, clip_neural in zip(shared.shared, neural, strict=True)
    ]
    return RoundContext(peers, shared.hotkeys, shared.generation_ms, shared.history, models)


def score_clip(
    engine: ScoringEngine,
    shared: RoundShared,
    context: RoundContext,
    index: int,
    item: Item,
    clock: Callable[[], float],
) -> Scored:
    """The second pass over clip `index`: decoded again, seeded with what the first pass shared,
    scored; its working set is garbage once this returns."""
    audio, neural = item
    if audio is None:
        return "no audio"
    clip, peek = decode(audio, clock, neural)
    if clip is None:
        return peek.error
    clip.seed(shared.shared[index])
    return engine.score_clip(shared.challenge, context, index, clip)


# ---- inside a worker process -------------------------------------------------------------

_ENGINE: ScoringEngine | None = None
_CLOCK: Callable[[], float] = time.perf_counter
_ROUND: tuple[str, RoundShared, RoundContext] | None = None


def _start_worker(clock: Callable[[], float], models: dict[str, str] | None, network: str) -> None:
    global _ENGINE, _CLOCK
    from tuneforge.scoring.engine import ScoringEngine
    from tuneforge.scoring.history import InMemoryHistory
    from tuneforge.scoring.prepared_models import PreparedModels

    _CLOCK = clock
    _ENGINE = ScoringEngine.create(InMemoryHistory(), None, clock=clock, network=network)
    _ENGINE.warm_up()  # compiles the signal stack's kernels (no model runs in a worker)
    if models is not None:
        prepared = PreparedModels(models)
        _ENGINE = ScoringEngine.create(InMemoryHistory(), prepared, clock=clock, network=network)


def _ready() -> int:
    time.sleep(0.05)  # long enough that each of the warm-up tasks lands on its own worker
    return os.getpid()


def _peek(item: Item) -> Peek:
    return peek_clip(item[0], _CLOCK, item[1])


def _round(path: str) -> tuple[RoundShared, RoundContext]:
    """The round's shared part, read once per round per worker."""
    global _ROUND
    if _ROUND is None or _ROUND[0] != path:
        from tuneforge.scoring.prepared_models import PreparedModels

        with open(path, "rb") as handle:
            shared: RoundShared = pickle.load(handle)  # our own file, written by the parent
        assert _ENGINE is not None  # set by the initializer
        if isinstance(_ENGINE.models, PreparedModels):
            _ENGINE.models.use_round(shared.texts)
        _ROUND = (path, shared, peer_context(shared, _ENGINE.models))
    return _ROUND[1], _ROUND[2]


def _score(task: tuple[str, int, Item]) -> Scored:
    path, index, item = task
    assert _ENGINE is not None  # set by the initializer
    shared, context = _round(path)
    return score_clip(_ENGINE, shared, context, index, item, _CLOCK)
