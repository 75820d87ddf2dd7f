"""A plain passing ClipScore for tests that need a scored answer but not a real scoring run."""

from __future__ import annotations

from tuneforge.scoring.base import ClipScore


def passing_clip_score() -> ClipScore:
    """Final 0.8, every check passed (the copy checks then decide whether it stays)."""
    return ClipScore(
        final_score=0.8,
        composite=0.8,
        score_breakdown={"clap": 0.8},
        penalties={"fingerprint_penalty": 1.0},
        effective_weights={"clap": 1.0},
        reasons={"fingerprint_penalty": ""},
        details={},
        timings_ms={},
    )
