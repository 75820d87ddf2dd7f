"""Consensus constants: scorer weights, penalty names and curves, the preference weight rule.

Every validator must compute the same numbers from the same audio, so these live in one module
with no environment reads and no configuration (DESIGN.md §5). Changing one is a protocol change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The scorer table (DESIGN.md §5): name, relative weight, the class that measures it, the neural
# models it needs, and whether it is active network-wide. composite = Σ wᵢ·sᵢ / Σ wᵢ over the
# active scorers; an inactive scorer is not run anywhere (weight 0, breakdown null) and says why.
# Adding a scorer is one module under scorers/ plus one row here.


@dataclass(frozen=True)
class CheckSpec:
    """One row: a scorer (weight > 0) or a penalty (a multiplier, weight unused)."""

    name: str
    weight: float
    implementation: str  # "module:Class", imported when the scoring engine starts
    models: tuple[str, ...] = ()  # NeuralModels names it needs ("clap", "mert", "whisper", "mos")
    inactive: str = ""  # non-empty: inactive on every validator, and this is why

    @property
    def active(self) -> bool:
        return not self.inactive


_S = "tuneforge.scoring.scorers"
NOT_TRAINED = "inactive network-wide: no trained checkpoint ships inside the package yet"
PREFERENCE = "preference"
# The preference row's table default: the registry replaces it by the consensus rule below
# (`preference_inactive_reason`) on the networks a release has activated (D42).
PREFERENCE_GATED = (
    "inactive network-wide: no release has activated the preference scorer on this network "
    "(no trained checkpoint is used yet)"
)
# The public catalogue (AcoustID) check needs an application key on every validator; a network
# turns it on by emptying this reason (a protocol change, D31), and from then on a validator on
# test/finney refuses to start without a key.
NO_CATALOGUE_KEY = (
    "inactive network-wide: the AcoustID catalogue check is off until the network requires an "
    "AcoustID key of every validator"
)
CATALOGUE_PENALTY = "catalogue_penalty"

SCORERS: tuple[CheckSpec, ...] = (
    # prompt adherence (30)
    CheckSpec("clap", 19.0, f"{_S}.clap:ClapScorer", ("clap",)),
    CheckSpec("attribute", 11.0, f"{_S}.attribute:AttributeScorer", ("clap",)),
    # composition (21)
    CheckSpec("musicality", 9.0, f"{_S}.musicality:MusicalityScorer"),
    CheckSpec("melody", 6.0, f"{_S}.melody:MelodyScorer"),
    CheckSpec("structural", 6.0, f"{_S}.structural:StructuralScorer"),
    # production & fidelity (16)
    CheckSpec("production", 5.0, f"{_S}.production:ProductionScorer"),
    CheckSpec("neural_quality", 5.0, f"{_S}.neural_quality:NeuralQualityScorer", ("mert",)),
    CheckSpec("vocal", 4.0, f"{_S}.vocal:VocalScorer"),
    CheckSpec("quality", 2.0, f"{_S}.quality:QualityScorer"),
    # naturalness & mix (18)
    CheckSpec("vocal_lyrics", 8.0, f"{_S}.vocal_lyrics:VocalLyricsScorer", ("whisper",)),
    CheckSpec("mix_separation", 4.0, f"{_S}.mix_separation:MixSeparationScorer"),
    CheckSpec("timbral", 3.0, f"{_S}.timbral:TimbralScorer"),
    CheckSpec("learned_mos", 3.0, f"{_S}.learned_mos:LearnedMosScorer", ("mos",), NOT_TRAINED),
    # other (8)
    CheckSpec("diversity", 6.0, f"{_S}.diversity:DiversityScorer", ("mert",)),
    CheckSpec("speed", 2.0, f"{_S}.speed:SpeedScorer"),
    # preference (2-20% by held-out accuracy; the weight column is unused, see preference_weight)
    CheckSpec(
        PREFERENCE, 0.0, f"{_S}.preference:PreferenceScorer", ("preference",), PREFERENCE_GATED
    ),
)

PENALTIES: tuple[CheckSpec, ...] = (
    CheckSpec("duration_penalty", 1.0, "tuneforge.scoring.penalties:DurationPenalty"),
    CheckSpec("artifact_penalty", 1.0, "tuneforge.scoring.penalties:ArtifactPenalty"),
    CheckSpec("fad_penalty", 1.0, "tuneforge.scoring.fad:FadPenalty", ("mert",)),
    CheckSpec("fingerprint_penalty", 1.0, "tuneforge.scoring.penalties:FingerprintPenalty"),
    # looked up by the validator (validator/catalogue.py) while the engine scores
    CheckSpec(
        CATALOGUE_PENALTY,
        1.0,
        "tuneforge.scoring.penalties:CataloguePenalty",
        inactive=NO_CATALOGUE_KEY,
    ),
)

CHECKS: dict[str, CheckSpec] = {spec.name: spec for spec in (*SCORERS, *PENALTIES)}
# All 16 scorers, in the order results are reported; the relative weights of the fixed ones.
SCORER_NAMES: tuple[str, ...] = tuple(spec.name for spec in SCORERS)
SCORER_WEIGHTS: dict[str, float] = {s.name: s.weight for s in SCORERS if s.name != PREFERENCE}
PENALTY_NAMES: tuple[str, ...] = tuple(spec.name for spec in PENALTIES)
ACTIVE_SCORERS: tuple[str, ...] = tuple(s.name for s in SCORERS if s.active)
ACTIVE_PENALTIES: tuple[str, ...] = tuple(s.name for s in PENALTIES if s.active)
# Neural models every validator on a real network must load (it refuses to start otherwise).
REQUIRED_MODELS: tuple[str, ...] = tuple(
    sorted({m for s in (*SCORERS, *PENALTIES) if s.active for m in s.models})
)

# Preference model weight: 0 until it is trained; then a share of the total weight that grows
# linearly with held-out pairwise accuracy, from 2% at 0.55 to 20% at 0.80, capped at 20%.
PREFERENCE_MIN_ACCURACY = 0.55
PREFERENCE_FULL_ACCURACY = 0.80
PREFERENCE_MIN_SHARE = 0.02
PREFERENCE_MAX_SHARE = 0.20


def preference_share(held_out_accuracy: float | None) -> float:
    """Share of the total weight (0..0.2) the preference scorer gets at this held-out accuracy."""
    if held_out_accuracy is None or not math.isfinite(held_out_accuracy):
        return 0.0
    if held_out_accuracy < PREFERENCE_MIN_ACCURACY:
        return 0.0
    progress = (held_out_accuracy - PREFERENCE_MIN_ACCURACY) / (
        PREFERENCE_FULL_ACCURACY - PREFERENCE_MIN_ACCURACY
    )
    share = PREFERENCE_MIN_SHARE + progress * (PREFERENCE_MAX_SHARE - PREFERENCE_MIN_SHARE)
    return min(PREFERENCE_MAX_SHARE, share)


# The release gate (D37, D42): the networks on which the preference row follows the consensus
# rule, each with the embeddings its training recipe reads. Every other network keeps the row
# inactive whatever head a validator holds; a release activates a network by adding it here
# (a protocol change, like any row of this module). localnet has no CLAP model in general, so
# its recipe may read the model-free DSP embedding too.
PREFERENCE_NETWORKS: dict[str, tuple[str, ...]] = {
    "localnet": ("clap_embedding", "dsp_embedding"),
}


def preference_inactive_reason(
    network: str,
    embedding: str | None,
    heldout_accuracy: float | None,
    train_pairs: int,
    heldout_pairs: int,
) -> str:
    """ "" when the preference row is active on `network` for the head described, else why not.

    The consensus rule every validator of a network computes from public data (D42): the row
    is active when the network is activated, the head was fitted by the network's recipe (D37:
    one of its embeddings, whole blocks of the public feed, at least the minimum pairs, the
    recipe's held-out split) and its held-out accuracy reaches PREFERENCE_MIN_ACCURACY. Its
    weight is then `preference_weight(heldout_accuracy)`."""
    if network not in PREFERENCE_NETWORKS:
        return PREFERENCE_GATED
    if embedding is None:
        return "inactive: no preference head trained (tuneforge validator train-preference)"
    # The recipe's constants live beside the trainer (torch); only needed once a head exists.
    from tuneforge.scoring.preference_model import (
        HELDOUT_FRACTION,
        MIN_PAIRS,
        PAIR_STEP,
    )

    if embedding not in PREFERENCE_NETWORKS[network]:
        return f"inactive: the head reads {embedding}, the {network} recipe does not"
    pairs = train_pairs + heldout_pairs
    if pairs < MIN_PAIRS or pairs % PAIR_STEP:
        return (
            f"inactive: the head was fitted on {pairs} pairs, the recipe needs whole blocks of "
            f"{PAIR_STEP} and at least {MIN_PAIRS}"
        )
    if heldout_pairs != max(5, int(round(pairs * HELDOUT_FRACTION))):
        return f"inactive: the head's held-out split ({heldout_pairs} pairs) is not the recipe's"
    if heldout_accuracy is None or not math.isfinite(heldout_accuracy):
        return "inactive: the head has no held-out accuracy"
    if heldout_accuracy < PREFERENCE_MIN_ACCURACY:
        return (
            f"inactive: held-out accuracy {heldout_accuracy:.3f} is below {PREFERENCE_MIN_ACCURACY}"
        )
    return ""


def preference_weight(held_out_accuracy: float | None, other_total: float | None = None) -> float:
    """Weight w so that w / (other_total + w) equals `preference_share(accuracy)`.

    `other_total` defaults to the sum of the table (93)."""
    total = sum(SCORER_WEIGHTS.values()) if other_total is None else other_total
    share = preference_share(held_out_accuracy)
    return total * share / (1.0 - share) if share > 0 else 0.0


# Duration: within 5% of the request costs nothing; the multiplier then falls linearly to 0 at
# 50% off (a 15 s request answered with 7.5 s or 22.5 s scores 0).
DURATION_TOLERANCE = 0.05
DURATION_ZERO_AT = 0.50


def duration_multiplier(actual_seconds: float, requested_seconds: float) -> float:
    """1.0 within ±5% of the requested duration, linear down to 0.0 at ±50%."""
    if requested_seconds <= 0 or not math.isfinite(actual_seconds):
        return 0.0
    error = abs(actual_seconds - requested_seconds) / requested_seconds
    if error <= DURATION_TOLERANCE:
        return 1.0
    if error >= DURATION_ZERO_AT:
        return 0.0
    return 1.0 - (error - DURATION_TOLERANCE) / (DURATION_ZERO_AT - DURATION_TOLERANCE)


# Speed: generation time / audio duration ("real-time factor"). Piecewise linear through these
# points; faster than real time is full marks, 6x slower or worse is zero.
SPEED_CURVE: tuple[tuple[float, float], ...] = ((1.0, 1.0), (3.0, 0.3), (6.0, 0.0))


def speed_multiplier(realtime_factor: float) -> float:
    """1.0 at ≤1x real time, 0.3 at 3x, 0.0 at ≥6x, linear in between."""
    if not math.isfinite(realtime_factor):
        return 0.0
    xs = [x for x, _ in SPEED_CURVE]
    ys = [y for _, y in SPEED_CURVE]
    if realtime_factor <= xs[0]:
        return ys[0]
    for (x0, y0), (x1, y1) in zip(SPEED_CURVE, SPEED_CURVE[1:], strict=False):
        if realtime_factor <= x1:
            return y0 + (realtime_factor - x0) / (x1 - x0) * (y1 - y0)
    return ys[-1]


# Clips shorter than this are not music to score: final 0 with a reason, no scorer runs.
MIN_SCORABLE_SECONDS = 0.5
