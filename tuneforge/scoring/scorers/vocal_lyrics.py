"""`vocal_lyrics`: does the singing (or its absence) match the request, by Whisper transcript.

- vocals with lyrics: 1 - word error rate of the transcript against the requested lyrics;
- vocals without lyrics: an intelligibility proxy, Whisper's confidence that it heard words
  (mean token probability x (1 - no-speech probability));
- instrumental: no spurious speech: 1 when Whisper hears none (empty transcript or its own
  no-speech rule), else 1 - that same confidence.
Whisper is asked for English; tags Whisper prints for music ("[Music]", "♪") are not words.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from tuneforge.scoring.base import Challenge, RoundContext, Scorer, ScoreResult
from tuneforge.scoring.neural import require_model

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip
    from tuneforge.scoring.neural import NeuralModels
    from tuneforge.scoring.whisper import Transcript

_TAGS = re.compile(r"\[[^\]]*\]|\([^)]*\)|♪")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def words(text: str) -> list[str]:
    """Lower-cased words, without bracketed tags, punctuation or music symbols."""
    return _WORD.findall(_TAGS.sub(" ", text).lower())


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance over words (substitutions, insertions, deletions cost 1)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp_word in enumerate(hypothesis, start=1):
            current[j] = min(
                previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)
            )
        previous = current
    return previous[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word edits needed to turn the hypothesis into the reference, per reference word
    (0 = perfect; can exceed 1 when the hypothesis is much longer)."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return edit_distance(ref, hyp) / len(ref)


def speech_confidence(transcript: Transcript) -> float:
    """[0, 1]: how sure Whisper is that it heard words."""
    if not words(transcript.text):
        return 0.0
    return math.exp(transcript.avg_logprob) * (1.0 - transcript.no_speech_prob)


class VocalLyricsScorer(Scorer):
    name = "vocal_lyrics"

    def __init__(self, models: NeuralModels | None = None) -> None:
        super().__init__(require_model(models, "whisper"))

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        models = require_model(context.models or self.models, "whisper")
        transcript = models.transcript(clip, context.clips)
        confidence = speech_confidence(transcript)
        details = {
            "transcript": transcript.text[:500],
            "no_speech_prob": round(transcript.no_speech_prob, 4),
            "avg_logprob": round(transcript.avg_logprob, 4),
        }
        if challenge.vocals and challenge.lyrics and words(challenge.lyrics):
            wer = word_error_rate(challenge.lyrics, transcript.text)
            details["wer"] = round(wer, 4)
            reason = "" if wer < 1.0 else "sung words do not match the lyrics"
            return ScoreResult(1.0 - wer, reason=reason, details=details)
        if challenge.vocals:
            reason = "" if confidence > 0 else "no intelligible vocals heard"
            return ScoreResult(confidence, reason=reason, details=details)
        if not words(transcript.text) or not transcript.is_speech:
            return ScoreResult(1.0, details=details)
        return ScoreResult(1.0 - confidence, reason="speech in an instrumental", details=details)
