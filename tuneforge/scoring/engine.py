"""ScoringEngine: one round of submissions in, one ClipScore per submission out.

Each audio is decoded into a `Clip`; neural embeddings are batched per round
(`NeuralModels.prepare_round`); the few features other clips read (fingerprint, diversity
embedding) are taken out (`shared.py`); then every scorer and penalty of this validator's
`ScorerSet` runs on every clip with its own timing — in this process, or in `--scoring.workers`
processes (`workers.py`) with the same result bit for bit. Without neural models a round is
scored in two passes (`workers.py`) that hold one decoded clip per process at a time; answers may
arrive still encoded (`WavAudio`), decoded only there. Failures close, never open: a
scorer that raises on a clip scores 0 for it and a penalty that raises applies in full (0), both
with the error as the reason — the weights never change per clip. Only checks that are inactive
network-wide, or that could not be set up at start-up (a degraded validator), are not run:
`null` in the breakdown.
composite = Σ wᵢ·sᵢ / Σ wᵢ over the checks that run; final = composite × Π penalties.
Nothing one clip does can fail the round: anything raised while decoding, scoring or recording
it scores that clip 0 with the reason. The engine reads the history once (a snapshot) and writes
nothing: `score` returns each scored clip's memory (RoundMemory) for the caller to keep or drop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from loguru import logger

from tuneforge.core.audio import Audio, WavAudio
from tuneforge.scoring.base import (
    Challenge,
    ClipScore,
    HistoryView,
    RoundContext,
    ScoreResult,
    ScoringHistory,
    Submission,
)
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.fingerprint import fingerprint
from tuneforge.scoring.history import SnapshotHistory
from tuneforge.scoring.memory import ClipMemory, RoundMemory, clip_memory
from tuneforge.scoring.penalties import FINGERPRINT_HISTORY_LIMIT
from tuneforge.scoring.registry import Loaded, ScorerSet, load_scorer_set
from tuneforge.scoring.scorers.diversity import diversity_embedding
from tuneforge.scoring.shared import Peek, RoundShared, decode, share
from tuneforge.scoring.weights import (
    MIN_SCORABLE_SECONDS,
    PENALTY_NAMES,
    PREFERENCE,
    SCORER_NAMES,
    SCORER_WEIGHTS,
    preference_weight,
)
from tuneforge.scoring.workers import InProcessPasses, ScoringPool

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


@dataclass
class Outcome:
    """One scorer's or penalty's result on one clip; value None = not run on this validator."""

    value: float | None
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
    ms: float = 0.0
    failure: str = ""  # the error it raised on this clip (value is then 0)


class ScoringEngine:
    """Scores rounds with the scorer set of `weights.py` as loaded on this validator."""

    def __init__(
        self,
        history: HistoryView,
        models: Any | None,
        scorer_set: ScorerSet,
        clock: Callable[[], float] = time.perf_counter,
        workers: int = 1,
    ) -> None:
        self.history = history
        self.models = models
        self.scorer_set = scorer_set
        self._scorers = scorer_set.scorers
        self._penalties = scorer_set.penalties
        self._clock = clock  # timings_ms use it: wall time by default, CPU time in the benchmark
        # Worker processes carry the signal scorer set only: with neural models loaded, clips
        # are scored in this process after one batched pass on the device.
        self._pool: ScoringPool | None = None
        if workers > 1 and models is None:
            self._pool = ScoringPool(workers, clock)
        elif workers > 1:
            logger.info("neural models loaded: clips are scored in-process, not in workers")
        self._in_process: InProcessPasses | None = None

    @classmethod
    def create(
        cls,
        history: HistoryView,
        models: Any | None = None,
        *,
        clock: Callable[[], float] = time.perf_counter,
        workers: int = 1,
        network: str = "",
    ) -> ScoringEngine:
        """Load the scorer set as it holds on `network`; whether an incomplete set may run is the
        caller's decision (`engine.scorer_set.require_complete()`). `workers` > 1 scores in that
        many processes."""
        return cls(history, models, load_scorer_set(models, network), clock, workers)

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
            accuracy = getattr(self.models, "preference_heldout_accuracy", None)
            return preference_weight(accuracy)
        return SCORER_WEIGHTS[name]

    # ---- a round --------------------------------------------------------------------------
    def warm_up(self, seconds: float = 6.0) -> float:
        """Score one synthetic clip (chords over a click track) so the first real round does not
        pay librosa's numba compilation (~10 s on 2 cores) inside its deadline. Nothing reaches
        the caller's history. Returns the seconds it took."""
        from tuneforge.core.protocol import MusicGenerationSynapse
        from tuneforge.scoring.history import InMemoryHistory

        rate = 32_000
        t = np.arange(int(seconds * rate)) / rate
        chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63)) / 3
        clicks = (np.mod(t, 0.5) < 0.01) * np.sin(2 * np.pi * 1000.0 * t)
        audio = Audio((0.3 * chord + 0.2 * clicks).astype(np.float32), rate)
        challenge = MusicGenerationSynapse(
            prompt="warm-up", tempo_bpm=120, duration_seconds=seconds
        )
        started = time.perf_counter()
        if self._pool is not None and self.models is None:
            self._pool.warm_up()  # every clip is scored in the workers: they compile, not we
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
        `score` (`started`). None where clips are not scored in passes (neural models: their
        batched pass needs the whole round)."""
        passes = self._passes()
        return None if passes is None else passes.start_peek(audio)

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
                results[i] = self._failed(submission.error or "no audio")
        passes = self._passes()
        clips: dict[int, Clip] = {}
        prepare_ms = 0.0
        if passes is not None:
            peeks = self._first_pass(passes, submissions, live, started or {})
        else:
            peeks, clips, prepare_ms = self._decode_for_models(submissions, live)
        owners: list[int] = []  # submission index of each clip that is scored
        for i in live:
            peek, hotkey = peeks[i], submissions[i].miner_hotkey
            if peek.error:
                logger.bind(hotkey=hotkey).warning("clip not scored: {}", peek.error)
                results[i] = self._failed(peek.error)
            elif not peek.scorable:
                results[i] = self._too_short(peek.seconds, peek.sample_rate)
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
        )
        if passes is not None:
            scored = passes.score(shared, [submissions[i].audio for i in owners])
        else:
            scored = self._score_in_process(shared, [clips[i] for i in owners])
        memory = RoundMemory()
        for owner, outcome in zip(owners, scored, strict=True):
            if isinstance(outcome, str):
                results[owner] = self._failed(outcome)
                continue
            score, clip_memory = outcome
            score.timings_ms["decode"] = round(peeks[owner].decode_ms, 2)
            score.timings_ms["prepare_round"] = round(prepare_ms, 2)
            results[owner] = score
            memory.clips.append(clip_memory)
        fingerprints = [peeks[i].fingerprint if i in peeks else None for i in range(len(results))]
        return ScoredRound([r for r in results if r is not None], memory, fingerprints)

    def _passes(self) -> ScoringPool | InProcessPasses | None:
        """Where signal-only rounds are scored in two passes; None with neural models loaded
        (their batched pass needs every clip of the round decoded at once)."""
        if self.models is not None:
            return None
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
    ) -> dict[int, Peek]:
        """Each live clip's first pass: the one started as its answer arrived, else run now."""
        begun = [i for i in live if i in started]
        rest = [i for i in live if i not in started]
        peeks = dict(zip(rest, passes.peek([submissions[i].audio for i in rest]), strict=True))
        peeks.update(zip(begun, passes.finish([started[i] for i in begun]), strict=True))
        return peeks

    def _decode_for_models(
        self, submissions: list[Submission], live: list[int]
    ) -> tuple[dict[int, Peek], dict[int, Clip], float]:
        """Every live clip decoded and held for the neural models' batched pass: (facts and
        shared features, the scorable clips, ms the batched pass took)."""
        peeks: dict[int, Peek] = {}
        clips: dict[int, Clip] = {}
        for i in live:
            audio = submissions[i].audio
            assert audio is not None  # live
            clip, peeks[i] = decode(audio, self._clock)
            if clip is not None and peeks[i].scorable:
                clips[i] = clip
        prepare_ms = self._prepare(list(clips.values()))
        for i, clip in clips.items():
            peeks[i] = share(clip, peeks[i])
            clip.release(peeks[i].shared)  # as in a worker: only what other clips read
        return peeks, clips, prepare_ms

    def _score_in_process(
        self, shared: RoundShared, clips: list[Clip]
    ) -> list[tuple[ClipScore, ClipMemory] | str]:
        """Serial scoring in this process of clips the neural models prepared together; each
        clip's working features are freed once it is scored."""
        context = RoundContext(
            clips=clips,
            miner_hotkeys=shared.hotkeys,
            generation_ms=shared.generation_ms,
            history=shared.history,
            models=self.models,
        )
        out: list[tuple[ClipScore, ClipMemory] | str] = []
        for index, clip in enumerate(clips):
            out.append(self.score_clip(shared.challenge, context, index, clip))
            clip.release(shared.shared[index])
        return out

    def score_clip(
        self, challenge: Challenge, context: RoundContext, index: int, clip: Clip
    ) -> tuple[ClipScore, ClipMemory] | str:
        """Score clip `index` of the round and take its memory; a failure outside any one check
        is returned as the reason this clip alone scores 0 (never 0.5)."""
        try:
            score = self._score_clip(challenge, context, index, clip)
        except Exception as exc:
            logger.opt(exception=exc).error("scoring a clip failed: {}", exc)
            return f"scoring failed: {type(exc).__name__}: {exc}"
        try:
            return score, self._memory(clip, context.miner_hotkeys[index])
        except Exception as exc:  # its memory cannot be kept: the clip cannot count either
            logger.opt(exception=exc).error("recording a clip failed: {}", exc)
            return f"recording failed: {type(exc).__name__}: {exc}"

    def _prepare(self, clips: list[Clip]) -> float:
        if self.models is None or not clips:
            return 0.0
        started = self._clock()
        try:
            self.models.prepare_round(clips)
        except Exception as exc:  # neural scorers then fail (score 0) on the clips they lack
            logger.opt(exception=exc).error("neural prepare_round failed: {}", exc)
        return (self._clock() - started) * 1000.0

    def _score_clip(
        self, challenge: Challenge, context: RoundContext, index: int, clip: Clip
    ) -> ClipScore:
        hotkey = context.miner_hotkeys[index]
        started = self._clock()
        scored = {
            name: self._run(self._scorers[name], clip, challenge, context, index, hotkey)
            for name in SCORER_NAMES
        }
        penalized = {
            name: self._run(self._penalties[name], clip, challenge, context, index, hotkey)
            for name in PENALTY_NAMES
        }
        weights = {
            name: 0.0 if outcome.value is None else self.weight_of(name)
            for name, outcome in scored.items()
        }
        reasons = {name: outcome.reason for name, outcome in {**scored, **penalized}.items()}
        if weights.get(PREFERENCE) == 0 and scored[PREFERENCE].value is not None:
            reasons[PREFERENCE] = "weight 0: preference accuracy below 0.55"
        values = {n: (o.value or 0.0) for n, o in scored.items()}
        composite, effective = composite_score(values, weights)
        multiplier = float(
            np.prod([1.0 if o.value is None else o.value for o in penalized.values()])
        )
        final = composite * multiplier
        if sum(weights.values()) == 0:
            reasons["composite"] = "no scorer could run"
        timings = {name: round(o.ms, 2) for name, o in {**scored, **penalized}.items()}
        timings["total"] = round((self._clock() - started) * 1000.0, 2)
        details = {name: o.details for name, o in {**scored, **penalized}.items()}
        details["clip"] = {
            "duration_s": round(clip.original.duration_seconds, 3),
            "sample_rate": clip.original.sample_rate,
            "channels": clip.original.channels,
        }
        return ClipScore(
            final_score=round(final, 6),
            composite=round(composite, 6),
            score_breakdown={n: _rounded(o.value) for n, o in scored.items()},
            penalties={n: _rounded(o.value) for n, o in penalized.items()},
            effective_weights=effective,
            reasons=reasons,
            details=details,
            timings_ms=timings,
            degraded=self.scorer_set.degraded,
            failures={n: o.failure for n, o in {**scored, **penalized}.items() if o.failure},
        )

    def _run(
        self,
        entry: Loaded,
        clip: Clip,
        challenge: Challenge,
        context: RoundContext,
        index: int,
        hotkey: str,
    ) -> Outcome:
        """Run one scorer/penalty on one clip. Not set up → not run (None); raised → 0."""
        if entry.instance is None:
            prefix = "" if entry.inactive else "not measured on this validator: "
            return Outcome(None, prefix + entry.not_run_reason)
        started = self._clock()
        try:
            result = entry.instance.run(clip, challenge, context, index)
            if not isinstance(result, ScoreResult):
                raise TypeError(f"returned {type(result).__name__}, not ScoreResult")
        except Exception as exc:  # fail closed: the clip gets nothing for what could not be checked
            ms = (self._clock() - started) * 1000.0
            error = f"{type(exc).__name__}: {exc}"[:300]
            logger.bind(hotkey=hotkey).warning("{} failed on a clip: {}", entry.name, error)
            return Outcome(0.0, f"failed: {error}", ms=ms, failure=error)
        ms = (self._clock() - started) * 1000.0
        return Outcome(result.value, result.reason, dict(result.details), ms)

    @staticmethod
    def _memory(clip: Clip, hotkey: str) -> ClipMemory:
        """What later rounds keep of a scored clip: its diversity embedding, FAD frames and
        fingerprint."""
        # The frames the FAD penalty compared come first: history must hold the embedding it
        # actually uses, even when MERT frames of another size were present.
        frames = clip.fad_frames_used
        if frames is None:
            frames = clip.neural.mert_fad_frames
        return clip_memory(hotkey, diversity_embedding(clip)[1], frames, fingerprint(clip))

    # ---- clips that are not scored ----------------------------------------------------------
    def _failed(self, error: str) -> ClipScore:
        """Final 0: every check that runs on this validator reads 0 (penalties 1), the rest null."""
        reason = f"no audio: {error}"
        not_run = {
            name: entry.not_run_reason
            for name, entry in {**self._scorers, **self._penalties}.items()
            if entry.instance is None
        }
        return ClipScore(
            final_score=0.0,
            composite=0.0,
            score_breakdown={n: None if n in not_run else 0.0 for n in SCORER_NAMES},
            penalties={n: None if n in not_run else 1.0 for n in PENALTY_NAMES},
            effective_weights=dict.fromkeys(SCORER_NAMES, 0.0),
            reasons={n: not_run.get(n, reason) for n in (*SCORER_NAMES, *PENALTY_NAMES)},
            details={},
            timings_ms={},
            error=error,
            degraded=self.scorer_set.degraded,
        )

    def _too_short(self, seconds: float, sample_rate: int) -> ClipScore:
        error = f"clip is {seconds:.3f} s, shorter than {MIN_SCORABLE_SECONDS} s: not scored"
        score = self._failed(error)
        score.reasons = {
            name: error if value is not None else score.reasons[name]
            for name, value in {**score.score_breakdown, **score.penalties}.items()
        }
        score.details = {"clip": {"duration_s": seconds, "sample_rate": sample_rate}}
        return score


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def composite_score(
    values: dict[str, float], weights: dict[str, float]
) -> tuple[float, dict[str, float]]:
    """(Σ wᵢ·sᵢ / Σ wᵢ, each scorer's share wᵢ / Σ wᵢ); 0 when no weight is left."""
    total = float(sum(weights.values()))
    if total <= 0:
        return 0.0, dict.fromkeys(weights, 0.0)
    shares = {name: weight / total for name, weight in weights.items()}
    composite = sum(shares[name] * values[name] for name in weights)
    return float(min(1.0, max(0.0, composite))), {k: round(v, 6) for k, v in shares.items()}
