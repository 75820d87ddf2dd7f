"""ScoringEngine: one round of submissions in, one ClipScore per submission out.

Each audio is decoded into a `Clip`; the few features other clips read (fingerprint, diversity
embedding) are taken out (`shared.py`); then every scorer and penalty of this validator's
`ScorerSet` runs on every clip with its own timing (`clip_score.py`) — in this process, or in
`--scoring.workers` processes (`workers.py`) with the same result bit for bit. Without neural
models a round is scored in two passes (`workers.py`) that hold one decoded clip per process at a
time; answers may arrive still encoded (`WavAudio`), decoded only there. With neural models
their batched pass runs first, in this process on its device, a batch of clips decoded at a
time (`batched_round.py`); the passes then score each clip from what the models computed for it
(`prepared_models.py`), in the workers too (D68).
Nothing one clip does can fail the round: anything raised while decoding, scoring or recording
it scores that clip 0 with the reason (`unscored.py`). The engine reads the history once (a
snapshot) and writes nothing: `score` returns each scored clip's memory (RoundMemory) for the
caller to keep or drop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from loguru import logger

from tuneforge.core.audio import COMMON_RATE, Audio, WavAudio
from tuneforge.scoring.base import (
    Challenge,
    ClipScore,
    HistoryView,
    RoundContext,
    ScoringHistory,
    Submission,
)
from tuneforge.scoring.batched_round import neural_pass, peer_features, round_texts
from tuneforge.scoring.blas import use_one_blas_thread
from tuneforge.scoring.clip import Clip, NeuralFeatures
from tuneforge.scoring.clip_score import Outcome, composite_score, memory_of, score_checks
from tuneforge.scoring.history import SnapshotHistory
from tuneforge.scoring.memory import ClipMemory, RoundMemory
from tuneforge.scoring.penalties import FINGERPRINT_HISTORY_LIMIT
from tuneforge.scoring.prepared_models import PreparedModels, worker_statuses
from tuneforge.scoring.registry import ScorerSet, load_scorer_set
from tuneforge.scoring.shared import Peek, RoundShared
from tuneforge.scoring.unscored import failed_score, too_short_score
from tuneforge.scoring.weights import (
    PENALTY_NAMES,
    PREFERENCE,
    SCORER_NAMES,
    SCORER_WEIGHTS,
    preference_weight,
)
from tuneforge.scoring.workers import InProcessPasses, ScoringPool

if TYPE_CHECKING:
    from tuneforge.scoring.neural import NeuralModels

# Importable from here as before the split (tests, benches).
__all__ = ["Outcome", "ScoredRound", "ScoringEngine", "composite_score"]

# What a round reads of the history, once, before scoring: at least what any check asks for
# (diversity 16 embeddings, the FAD window 4 x 8, the copy index FINGERPRINT_HISTORY_LIMIT).
SNAPSHOT_EMBEDDINGS = 64
SNAPSHOT_FINGERPRINTS = FINGERPRINT_HISTORY_LIMIT


@dataclass
class ScoredRound:
    """A round's scores (one per submission, in order) and what later rounds must remember."""

    scores: list[ClipScore]
    memory: RoundMemory
    # Each submission's copy-check fingerprint, None where its audio was not decoded and
    # analysed (no audio, undecodable, too short to score): the validator publishes these and
    # asks the network index about them instead of decoding every answer again.
    fingerprints: list[np.ndarray | None]


class ScoringEngine:
    """Scores rounds with the scorer set of `weights.py` as loaded on this validator."""

    def __init__(
        self,
        history: HistoryView,
        models: NeuralModels | None,
        scorer_set: ScorerSet,
        clock: Callable[[], float] = time.perf_counter,
        workers: int = 1,
        network: str = "",
    ) -> None:
        use_one_blas_thread()  # parallel by processes, not BLAS threads (D65)
        self.history = history
        self.models = models
        self.scorer_set = scorer_set
        self._clock = clock  # timings_ms use it: wall time by default, CPU time in the benchmark
        # Workers score the neural checks from what this process's models computed; a trained
        # head runs its own model on each clip, so with one loaded clips stay in this process.
        self._statuses = worker_statuses(models)
        self._pool: ScoringPool | None = None
        if workers > 1 and (models is None or self._statuses is not None):
            self._pool = ScoringPool(workers, clock, self._statuses, network)
        elif workers > 1:
            logger.info("a trained head is loaded: clips are scored in-process, not in workers")
        self._in_process: InProcessPasses | None = None

    @classmethod
    def create(
        cls,
        history: HistoryView,
        models: NeuralModels | None = None,
        *,
        clock: Callable[[], float] = time.perf_counter,
        workers: int = 1,
        network: str = "",
    ) -> ScoringEngine:
        """Load the scorer set as it holds on `network`; whether an incomplete set may run is the
        caller's decision (`engine.scorer_set.require_complete()`). `workers` > 1 scores in that
        many processes."""
        return cls(history, models, load_scorer_set(models, network), clock, workers, network)

    @property
    def workers(self) -> int:
        return 1 if self._pool is None else self._pool.workers

    def worker_pids(self) -> list[int]:
        return [] if self._pool is None else self._pool.pids()

    def close(self) -> None:
        """Stop the worker processes, if any."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._in_process is not None:
            self._in_process.close()
            self._in_process = None

    @property
    def scorer_names(self) -> list[str]:
        return list(SCORER_NAMES)

    @property
    def penalty_names(self) -> list[str]:
        return list(PENALTY_NAMES)

    @property
    def excluded(self) -> dict[str, str]:
        """Active checks this validator could not set up: name -> reason."""
        return self.scorer_set.excluded

    @property
    def degraded(self) -> bool:
        return self.scorer_set.degraded

    def weight_of(self, name: str) -> float:
        """Nominal weight of scorer `name` now (the preference weight follows its accuracy)."""
        if name == PREFERENCE:
            accuracy = None if self.models is None else self.models.preference_heldout_accuracy
            return preference_weight(accuracy)
        return SCORER_WEIGHTS[name]

    # ---- a round --------------------------------------------------------------------------
    def warm_up(self, seconds: float = 6.0) -> float:
        """Score one synthetic clip (chords over a click track) so the first real round does not
        pay librosa's numba compilation (~10 s on 2 cores) inside its deadline. Nothing reaches
        the caller's history. Returns the seconds it took."""
        from tuneforge.core.protocol import MusicGenerationSynapse
        from tuneforge.scoring.history import InMemoryHistory

        rate = COMMON_RATE
        t = np.arange(int(seconds * rate)) / rate
        chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63)) / 3
        clicks = (np.mod(t, 0.5) < 0.01) * np.sin(2 * np.pi * 1000.0 * t)
        audio = Audio((0.3 * chord + 0.2 * clicks).astype(np.float32), rate)
        challenge = MusicGenerationSynapse(
            prompt="warm-up", tempo_bpm=120, duration_seconds=seconds
        )
        started = time.perf_counter()
        if self._pool is not None:
            self._pool.warm_up()  # every clip is scored in the workers: they compile, not we
            if self.models is None:
                return time.perf_counter() - started
        kept, self.history = self.history, InMemoryHistory()
        try:
            self.score(challenge, [Submission("warm-up", audio, generation_ms=1.0)])
        finally:
            self.history = kept
        return time.perf_counter() - started

    def score_round(self, challenge: Challenge, submissions: list[Submission]) -> list[ClipScore]:
        """`score`, then the round's memory added to this engine's in-process history (CLI,
        benches, tests). The validator calls `score` and keeps the memory itself."""
        scored = self.score(challenge, submissions)
        history = self.history
        if not isinstance(history, ScoringHistory):
            raise TypeError(f"{type(history).__name__} cannot be added to: use score()")
        scored.memory.record_into(history)
        return scored.scores

    def start_first_pass(self, audio: Audio | WavAudio) -> Future[Peek] | None:
        """Start the first pass over one answer now, as it arrives, so that decoding and
        fingerprinting it overlaps waiting for the round's other answers; give the future to
        `score` (`started`). None with neural models: the first pass reads what they compute."""
        return None if self.models is not None else self._passes().start_peek(audio)

    def score(
        self,
        challenge: Challenge,
        submissions: list[Submission],
        started: Mapping[int, Future[Peek]] | None = None,
    ) -> ScoredRound:
        """One ClipScore per submission, in the same order, what later rounds must remember of
        the scored clips, and each clip's fingerprint. Reads the history once (a snapshot);
        writes nothing. Never raises because of a clip. `started`: submission index -> the first
        pass `start_first_pass` began over that submission's audio (the same object)."""
        results: list[ClipScore | None] = [None] * len(submissions)
        live = [i for i, s in enumerate(submissions) if s.audio is not None]
        for i, submission in enumerate(submissions):
            if submission.audio is None:
                results[i] = failed_score(self.scorer_set, submission.error or "no audio")
        passes = self._passes()
        neural: dict[int, NeuralFeatures] = {}
        prepare_ms = 0.0
        if self.models is not None:
            neural, prepare_ms = neural_pass(self.models, submissions, live, self._clock)
        peeks = self._first_pass(passes, submissions, live, started or {}, neural)
        owners: list[int] = []  # submission index of each clip that is scored
        for i in live:
            peek, hotkey = peeks[i], submissions[i].miner_hotkey
            if peek.error:
                logger.bind(hotkey=hotkey).warning("clip not scored: {}", peek.error)
                results[i] = failed_score(self.scorer_set, peek.error)
            elif not peek.scorable:
                results[i] = too_short_score(self.scorer_set, peek.seconds, peek.sample_rate)
            else:
                owners.append(i)
        hotkeys = [submissions[i].miner_hotkey for i in owners]
        shared = RoundShared(
            challenge=challenge,
            hotkeys=hotkeys,
            generation_ms=[submissions[i].generation_ms for i in owners],
            shared=[peeks[i].shared for i in owners],
            history=SnapshotHistory.take(
                self.history, hotkeys, SNAPSHOT_EMBEDDINGS, SNAPSHOT_FINGERPRINTS
            ),
            peer_neural=[peer_features(neural.get(i)) for i in owners] if neural else [],
            texts={} if self.models is None else round_texts(self.models, challenge),
        )
        items = [(submissions[i].audio, neural.get(i)) for i in owners]
        scored = passes.score(shared, items, self._round_models(shared))
        memory = RoundMemory()
        for owner, outcome in zip(owners, scored, strict=True):
            if isinstance(outcome, str):
                results[owner] = failed_score(self.scorer_set, outcome)
                continue
            score, clip_memory = outcome
            score.timings_ms["decode"] = round(peeks[owner].decode_ms, 2)
            score.timings_ms["prepare_round"] = round(prepare_ms, 2)
            results[owner] = score
            memory.clips.append(clip_memory)
        fingerprints = [peeks[i].fingerprint if i in peeks else None for i in range(len(results))]
        return ScoredRound([r for r in results if r is not None], memory, fingerprints)

    def _round_models(self, shared: RoundShared) -> NeuralModels | None:
        """What the neural checks read in this process's passes: the same view of the round's
        computed features the workers get (so one process scores as many do), or the models
        themselves while a trained head is loaded."""
        if self._statuses is None:
            return self.models
        view = PreparedModels(self._statuses)
        view.use_round(shared.texts)
        return view

    def _passes(self) -> ScoringPool | InProcessPasses:
        """Where the round's two passes run: the worker processes, or this process."""
        if self._pool is not None:
            return self._pool
        if self._in_process is None:
            self._in_process = InProcessPasses(self, self._clock)
        return self._in_process

    @staticmethod
    def _first_pass(
        passes: ScoringPool | InProcessPasses,
        submissions: list[Submission],
        live: list[int],
        started: Mapping[int, Future[Peek]],
        neural: Mapping[int, NeuralFeatures],
    ) -> dict[int, Peek]:
        """Each live clip's first pass: the one started as its answer arrived, else run now."""
        begun = [i for i in live if i in started]
        rest = [i for i in live if i not in started]
        items = [(submissions[i].audio, neural.get(i)) for i in rest]
        peeks = dict(zip(rest, passes.peek(items), strict=True))
        peeks.update(zip(begun, passes.finish([started[i] for i in begun]), strict=True))
        return peeks

    def score_clip(
        self, challenge: Challenge, context: RoundContext, index: int, clip: Clip
    ) -> tuple[ClipScore, ClipMemory] | str:
        """Score clip `index` of the round and take its memory; a failure outside any one check
        is returned as the reason this clip alone scores 0 (never 0.5)."""
        try:
            score = score_checks(
                self.scorer_set, self.weight_of, challenge, context, index, clip, self._clock
            )
        except Exception as exc:
            logger.opt(exception=exc).error("scoring a clip failed: {}", exc)
            return f"scoring failed: {type(exc).__name__}: {exc}"
        try:
            return score, self._memory(clip, context.miner_hotkeys[index])
        except Exception as exc:  # its memory cannot be kept: the clip cannot count either
            logger.opt(exception=exc).error("recording a clip failed: {}", exc)
            return f"recording failed: {type(exc).__name__}: {exc}"

    @staticmethod
    def _memory(clip: Clip, hotkey: str) -> ClipMemory:
        """What later rounds keep of the clip (a method: tests make it fail for one clip)."""
        return memory_of(clip, hotkey)
