"""Attribute scorer: does the clip have what the challenge asked for — tempo, key, instruments,
vocals? Each requested attribute is one part; the value is the mean of the parts that could be
measured (instruments need CLAP; without it that part is left out and the reason says so)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from tuneforge.scoring import features, transcription
from tuneforge.scoring.base import Challenge, RoundContext, Scorer, ScoreResult
from tuneforge.scoring.harmony_features import key_estimate
from tuneforge.scoring.keys import KeyParseError, key_relation, key_similarity, parse_key
from tuneforge.scoring.music_features import ramp, tempo_salience
from tuneforge.scoring.voice_activity import VoiceDetectorUnavailable, vocal_activity

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip
    from tuneforge.scoring.neural import NeuralModels

# Metrical readings of a detected tempo and their base credit: a beat tracker's octave is
# arbitrary, so half/double (and 3:2) readings earn partial credit, raised towards full when the
# onsets really do pulse at that period (tempo_salience).
TEMPO_READINGS = ((1.0, 1.0), (2.0, 0.5), (0.5, 0.5), (1.5, 0.25), (2.0 / 3.0, 0.25))
# Gaussian width of the tempo error: 2 % (tracker resolution) keeps 95 % of the credit, 6 % keeps
# 61 %, 12 % keeps 14 %.
TEMPO_TOLERANCE_PCT = 6.0

# Instruments the requested ones are ranked against (CLAP zero-shot): the question asked is
# "does the clip sound more like a <requested> than like these?", never an absolute threshold.
REFERENCE_INSTRUMENTS = (
    "piano", "acoustic guitar", "electric guitar", "bass guitar", "drums", "violin", "cello",
    "trumpet", "saxophone", "flute", "clarinet", "synthesizer", "organ", "harp", "choir",
    "banjo", "accordion", "harmonica", "marimba", "trombone", "french horn", "sitar",
    "steel drums", "tabla",
)  # fmt: skip


def instrument_prompt(instrument: str) -> str:
    return f"the sound of a {instrument.strip().lower()}"


def tempo_credit(
    detected_bpm: float, requested_bpm: float, salience: dict[float, float]
) -> tuple[float, float, float]:
    """(credit 0..1, reading bpm, factor) for the best metrical reading of `detected_bpm`.
    `salience` maps each factor to the onset pulse strength at detected*factor."""
    if detected_bpm <= 0 or requested_bpm <= 0:
        return 0.0, 0.0, 1.0
    best = (0.0, detected_bpm, 1.0)
    base_salience = max(salience.get(1.0, 0.0), 1e-6)
    for factor, base_credit in TEMPO_READINGS:
        reading = detected_bpm * factor
        error_pct = 100.0 * abs(math.log(reading / requested_bpm))
        closeness = math.exp(-0.5 * (error_pct / TEMPO_TOLERANCE_PCT) ** 2)
        weight = base_credit
        if factor != 1.0:
            weight += 0.45 * min(1.0, salience.get(factor, 0.0) / base_salience)
            weight = min(weight, 0.95)
        if weight * closeness > best[0]:
            best = (weight * closeness, reading, factor)
    return best


def instrument_ranks(
    audio_embedding: np.ndarray, requested: np.ndarray, references: np.ndarray
) -> np.ndarray:
    """For each requested instrument's text embedding (rows of `requested`), the share of
    reference instruments the clip resembles less than it (cosine): 1 = ranked above all."""
    audio = audio_embedding / max(float(np.linalg.norm(audio_embedding)), 1e-12)
    req = requested / np.maximum(np.linalg.norm(requested, axis=1, keepdims=True), 1e-12)
    ref = references / np.maximum(np.linalg.norm(references, axis=1, keepdims=True), 1e-12)
    req_sim, ref_sim = req @ audio, ref @ audio
    if ref_sim.size == 0:
        return np.ones(len(req_sim))
    shares: np.ndarray = (ref_sim[None, :] < req_sim[:, None]).mean(axis=1)
    return shares


def instrument_texts(instruments: list[str]) -> list[str]:
    """The CLAP captions an instrument request is ranked with: one per requested instrument, then
    the reference instruments not requested."""
    wanted = {i.strip().lower() for i in instruments}
    references = [instrument_prompt(i) for i in REFERENCE_INSTRUMENTS if i not in wanted]
    return [instrument_prompt(i) for i in instruments] + references


class AttributeScorer(Scorer):
    name = "attribute"
    needs_music = True
    requires = (transcription.ensure_available,)  # the key is read from transcribed notes

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        parts: dict[str, float] = {}
        notes: list[str] = []
        details: dict[str, Any] = {}

        raw_tempo = features.tempo_bpm(clip)
        details["raw_tempo_bpm"] = round(raw_tempo, 1)
        details["detected_tempo_bpm"] = round(raw_tempo, 1)
        if challenge.tempo_bpm:
            salience = {f: tempo_salience(clip, raw_tempo * f) for f, _ in TEMPO_READINGS}
            credit, reading, factor = tempo_credit(raw_tempo, float(challenge.tempo_bpm), salience)
            parts["tempo"] = credit
            details["detected_tempo_bpm"] = round(reading, 1)
            details["tempo_reading_factor"] = round(factor, 3)
            if raw_tempo <= 0:
                notes.append("no beat found")

        estimate = key_estimate(clip)
        details["detected_key"] = estimate.key.name
        details["key_correlation"] = round(estimate.correlation, 3)
        if challenge.key:
            try:
                requested = parse_key(challenge.key)
            except KeyParseError as error:
                notes.append(str(error))
            else:
                # An atonal clip's "best key" is noise: scale the credit by how tonal it is.
                tonal = ramp(estimate.correlation, 0.25, 0.55)
                parts["key"] = key_similarity(requested, estimate.key) * tonal
                details["key_relation"] = key_relation(requested, estimate.key)

        if challenge.instruments:
            part = self._instruments(clip, challenge.instruments, context.models, details)
            if part is None:
                notes.append("instruments not assessed: " + details["instruments_note"])
            else:
                parts["instruments"] = part

        try:
            activity = vocal_activity(clip)
        except VoiceDetectorUnavailable as error:
            notes.append(f"vocals not assessed: {error}")
        else:
            details["vocals_detected"] = activity.present
            details["vocal_fraction"] = round(activity.fraction, 3)
            if challenge.vocals:
                parts["vocals"] = ramp(activity.fraction, 0.02, 0.15)
            else:
                parts["vocals"] = 1.0 - ramp(activity.fraction, 0.04, 0.2)

        details["parts"] = {name: round(value, 3) for name, value in parts.items()}
        if not parts:
            return ScoreResult(0.0, "; ".join(notes) or "nothing measurable", details)
        value = float(np.mean(list(parts.values())))
        summary = ", ".join(f"{name} {value:.2f}" for name, value in parts.items())
        return ScoreResult(value, "; ".join([summary, *notes]), details)

    @staticmethod
    def _instruments(
        clip: Clip, instruments: list[str], models: NeuralModels | None, details: dict[str, Any]
    ) -> float | None:
        if models is None or not models.has("clap"):
            details["instruments_note"] = "no CLAP model loaded"
            return None
        clap_embedding = clip.neural.clap_embedding
        if clap_embedding is None:
            details["instruments_note"] = "clip has no CLAP embedding"
            return None
        texts = instrument_texts(instruments)
        embeddings = np.asarray(models.clap_text_embeddings(texts), dtype=np.float64)
        audio = np.asarray(clap_embedding, dtype=np.float64)
        ranks = instrument_ranks(audio.reshape(-1), embeddings[: len(instruments)],
                                 embeddings[len(instruments) :])  # fmt: skip
        details["instrument_ranks"] = {
            name: round(float(rank), 3) for name, rank in zip(instruments, ranks, strict=True)
        }
        return float(ranks.mean())
