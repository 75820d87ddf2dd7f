"""What one answer publishes: the contract's scored track, filled from a query outcome and its
score. Rounds (`round.py`) and customer jobs (`jobs.py`) publish this same shape (D51)."""

from __future__ import annotations

from typing import Any

from tuneforge.core.publication import scored_track
from tuneforge.scoring.base import ClipScore
from tuneforge.validator.query import QueryOutcome


def answer_track(
    outcome: QueryOutcome, score: ClipScore, fingerprint: str | None
) -> dict[str, Any]:
    """The scored track of one answer that carried audio (`publication.ScoredTrack`)."""
    if outcome.audio is None or outcome.audio_sha256 is None:
        raise ValueError(f"uid {outcome.uid} answered no audio: there is no track to publish")
    return scored_track(
        miner_uid=outcome.uid,
        miner_hotkey=outcome.hotkey,
        score_fields=score.published_fields(),
        generation_ms=outcome.elapsed_ms,  # measured here, never the miner's claim
        audio_sha256=outcome.audio_sha256,
        duration_seconds=outcome.audio.duration_seconds,
        sample_rate=outcome.audio.sample_rate,
        fingerprint=fingerprint,
    )
