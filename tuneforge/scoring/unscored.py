"""The score of a clip that is not scored: no audio, undecodable, too short, or a failure outside
any one check. Nothing one clip does can fail the round: such a clip scores a final 0 with the
reason, and the breakdown still says which checks run on this validator."""

from __future__ import annotations

from tuneforge.scoring.base import ClipScore
from tuneforge.scoring.registry import ScorerSet
from tuneforge.scoring.weights import MIN_SCORABLE_SECONDS, PENALTY_NAMES, SCORER_NAMES


def failed_score(scorer_set: ScorerSet, error: str) -> ClipScore:
    """Final 0: every check that runs on this validator reads 0 (penalties 1), the rest null."""
    reason = f"no audio: {error}"
    not_run = {
        name: entry.not_run_reason
        for name, entry in {**scorer_set.scorers, **scorer_set.penalties}.items()
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
        degraded=scorer_set.degraded,
    )


def too_short_score(scorer_set: ScorerSet, seconds: float, sample_rate: int) -> ClipScore:
    """Final 0 for a clip shorter than MIN_SCORABLE_SECONDS, its length as every reason."""
    error = f"clip is {seconds:.3f} s, shorter than {MIN_SCORABLE_SECONDS} s: not scored"
    score = failed_score(scorer_set, error)
    score.reasons = {
        name: error if value is not None else score.reasons[name]
        for name, value in {**score.score_breakdown, **score.penalties}.items()
    }
    score.details = {"clip": {"duration_s": seconds, "sample_rate": sample_rate}}
    return score
