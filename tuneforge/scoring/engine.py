"""ScoringEngine: one round of submissions in, one ClipScore per submission out.

Each audio is decoded once into a `Clip`; neural embeddings are batched per round
(`NeuralModels.prepare_round`); then every scorer and penalty runs on every clip with its own
timing. A scorer that cannot run is EXCLUDED with its reason (weight 0), never a silent neutral
value. composite = Σ wᵢ·sᵢ / Σ wᵢ over the scorers that ran; final = composite × Π penalties.
After scoring, each clip's embedding and fingerprint go into the history for later rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from loguru import logger

from tuneforge.audio import Audio
from tuneforge.scoring.base import (
    Challenge,
    ClipScore,
    RoundContext,
    ScoreResult,
    ScorerUnavailable,
    ScoringHistory,
    Submission,
)
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.fingerprint import fingerprint
from tuneforge.scoring.registry import Loaded, load_penalties, load_scorers
from tuneforge.scoring.scorers.diversity import diversity_embedding
from tuneforge.scoring.weights import (
    MIN_SCORABLE_SECONDS,
    PENALTY_NAMES,
    PREFERENCE,
    SCORER_NAMES,
    SCORER_WEIGHTS,
    preference_weight,
)

# Frames the FAD penalty measured (fad.USED_FRAMES_FEATURE) come first: history must hold the
# embedding the penalty actually compares, even when MERT frames of another size were present.
FAD_FRAME_FEATURES = ("fad_window_frames", "mert_fad_frames", "fad_dsp_frames")


@dataclass
class Outcome:
    """One scorer's or penalty's result on one clip, or why it was excluded."""

    value: float
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
    ms: float = 0.0
    excluded: bool = False


class ScoringEngine:
    """Scores rounds with the 16 scorers and 4 penalties named in `weights.py`."""

    def __init__(
        self,
        history: ScoringHistory,
        models: Any | None,
        scorers: dict[str, Loaded],
        penalties: dict[str, Loaded],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.history = history
        self.models = models
        self._scorers = scorers
        self._penalties = penalties
        self._clock = clock  # timings_ms use it: wall time by default, CPU time in the benchmark

    @classmethod
    def create(
        cls,
        history: ScoringHistory,
        models: Any | None = None,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> ScoringEngine:
        """Load every scorer and penalty; the ones that cannot load are excluded with a reason."""
        return cls(history, models, load_scorers(models), load_penalties(models), clock)

    @property
    def scorer_names(self) -> list[str]:
        return list(SCORER_NAMES)

    @property
    def penalty_names(self) -> list[str]:
        return list(PENALTY_NAMES)

    @property
    def excluded(self) -> dict[str, str]:
        """Scorers/penalties that failed to load: name -> reason."""
        loaded = {**self._scorers, **self._penalties}
        return {n: entry.excluded_reason for n, entry in loaded.items() if entry.instance is None}

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
        from tuneforge.protocol import MusicGenerationSynapse
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
        kept, self.history = self.history, InMemoryHistory()
        try:
            self.score_round(challenge, [Submission("warm-up", audio, generation_ms=1.0)])
        finally:
            self.history = kept
        return time.perf_counter() - started

    def score_round(self, challenge: Challenge, submissions: list[Submission]) -> list[ClipScore]:
        """One ClipScore per submission, in the same order."""
        results: list[ClipScore | None] = [None] * len(submissions)
        clips: list[Clip] = []
        owners: list[int] = []  # submission index of each decoded clip
        decode_ms: list[float] = []
        for i, submission in enumerate(submissions):
            if submission.audio is None:
                results[i] = self._failed(submission.error or "no audio")
                continue
            started = self._clock()
            try:
                clip = Clip(submission.audio)
            except Exception as exc:  # hostile audio that the decoder let through
                logger.bind(hotkey=submission.miner_hotkey).warning("undecodable clip: {}", exc)
                results[i] = self._failed(f"undecodable audio: {type(exc).__name__}: {exc}")
                continue
            if clip.original.duration_seconds < MIN_SCORABLE_SECONDS:
                results[i] = self._too_short(clip, challenge)
                continue
            clips.append(clip)
            owners.append(i)
            decode_ms.append((self._clock() - started) * 1000.0)

        prepare_ms = self._prepare(clips)
        context = RoundContext(
            clips=clips,
            miner_hotkeys=[submissions[i].miner_hotkey for i in owners],
            generation_ms=[submissions[i].generation_ms for i in owners],
            history=self.history,
            models=self.models,
        )
        for index, owner in enumerate(owners):
            score = self._score_clip(challenge, context, index)
            score.timings_ms["decode"] = round(decode_ms[index], 2)
            score.timings_ms["prepare_round"] = round(prepare_ms, 2)
            results[owner] = score
        self._record(context)
        return [r for r in results if r is not None]

    def _prepare(self, clips: list[Clip]) -> float:
        if self.models is None or not clips:
            return 0.0
        started = self._clock()
        try:
            self.models.prepare_round(clips)
        except Exception as exc:  # neural scorers then exclude themselves with their reason
            logger.opt(exception=exc).error("neural prepare_round failed: {}", exc)
        return (self._clock() - started) * 1000.0

    def _score_clip(self, challenge: Challenge, context: RoundContext, index: int) -> ClipScore:
        hotkey = context.miner_hotkeys[index]
        clip = context.clips[index]
        started = self._clock()
        scored = {
            name: self._run(self._scorers[name], "score", clip, challenge, context, index, hotkey)
            for name in SCORER_NAMES
        }
        penalized = {
            name: self._run(
                self._penalties[name], "penalty", clip, challenge, context, index, hotkey
            )
            for name in PENALTY_NAMES
        }
        weights = {
            name: 0.0 if outcome.excluded else self.weight_of(name)
            for name, outcome in scored.items()
        }
        reasons = {name: outcome.reason for name, outcome in {**scored, **penalized}.items()}
        if PREFERENCE in weights and weights[PREFERENCE] == 0 and not scored[PREFERENCE].excluded:
            reasons[PREFERENCE] = "weight 0: preference accuracy below 0.55"
        composite, effective = composite_score({n: o.value for n, o in scored.items()}, weights)
        multiplier = float(np.prod([o.value for o in penalized.values()]))
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
            score_breakdown={n: round(o.value, 6) for n, o in scored.items()},
            penalties={n: round(o.value, 6) for n, o in penalized.items()},
            effective_weights=effective,
            reasons=reasons,
            details=details,
            timings_ms=timings,
        )

    def _run(
        self,
        entry: Loaded,
        method: str,
        clip: Clip,
        challenge: Challenge,
        context: RoundContext,
        index: int,
        hotkey: str,
    ) -> Outcome:
        """Run one scorer/penalty; exclusion and crashes become an excluded Outcome.

        Excluded scorers report 0.0 (and weigh 0); excluded penalties report 1.0 (no penalty)."""
        neutral = 1.0 if method == "penalty" else 0.0
        if entry.instance is None:
            return Outcome(neutral, f"excluded: {entry.excluded_reason}", excluded=True)
        started = self._clock()
        try:
            result: ScoreResult = getattr(entry.instance, method)(clip, challenge, context, index)
            if not isinstance(result, ScoreResult):
                raise TypeError(f"returned {type(result).__name__}, not ScoreResult")
        except ScorerUnavailable as exc:
            ms = (self._clock() - started) * 1000.0
            return Outcome(neutral, f"excluded: {exc}", ms=ms, excluded=True)
        except Exception as exc:  # one broken scorer must not sink the round: visible, logged
            ms = (self._clock() - started) * 1000.0
            logger.bind(hotkey=hotkey).opt(exception=exc).error("{} failed: {}", entry.name, exc)
            reason = f"excluded: error {type(exc).__name__}: {exc}"
            return Outcome(neutral, reason, ms=ms, excluded=True)
        ms = (self._clock() - started) * 1000.0
        return Outcome(result.value, result.reason, dict(result.details), ms)

    def _record(self, context: RoundContext) -> None:
        """Store each scored clip's embedding(s) and fingerprint for later rounds."""
        for clip, hotkey in zip(context.clips, context.miner_hotkeys, strict=True):
            self.history.add_embedding(hotkey, diversity_embedding(clip)[1])
            for name in FAD_FRAME_FEATURES:
                if clip.has_feature(name):
                    frames = np.asarray(clip.feature(name, _absent))
                    self.history.add_embedding(hotkey, frames)
                    break
            self.history.add_fingerprint(hotkey, fingerprint(clip))

    # ---- clips that are not scored ----------------------------------------------------------
    def _failed(self, error: str) -> ClipScore:
        reason = f"no audio: {error}"
        return ClipScore(
            final_score=0.0,
            composite=0.0,
            score_breakdown=dict.fromkeys(SCORER_NAMES, 0.0),
            penalties=dict.fromkeys(PENALTY_NAMES, 1.0),
            effective_weights=dict.fromkeys(SCORER_NAMES, 0.0),
            reasons={name: reason for name in (*SCORER_NAMES, *PENALTY_NAMES)},
            details={},
            timings_ms={},
            error=error,
        )

    def _too_short(self, clip: Clip, challenge: Challenge) -> ClipScore:
        seconds = clip.original.duration_seconds
        error = f"clip is {seconds:.3f} s, shorter than {MIN_SCORABLE_SECONDS} s: not scored"
        score = self._failed(error)
        score.reasons = {name: error for name in score.reasons}
        score.details = {"clip": {"duration_s": seconds, "sample_rate": clip.original.sample_rate}}
        return score


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


def _absent(_clip: Clip) -> Any:
    raise KeyError("feature")
