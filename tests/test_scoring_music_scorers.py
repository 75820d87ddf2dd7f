"""The seven musical DSP scorers on synthesised signals (tests.helpers.signals): what they find,
what they prefer, and that degenerate input gives a finite score with a reason."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.helpers import signals
from tuneforge.core.audio import Audio
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring import features
from tuneforge.scoring.base import RoundContext, ScoreResult
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.history import InMemoryHistory
from tuneforge.scoring.keys import parse_key
from tuneforge.scoring.scorers.attribute import AttributeScorer, instrument_ranks, tempo_credit
from tuneforge.scoring.scorers.melody import MelodyScorer
from tuneforge.scoring.scorers.mix_separation import MixSeparationScorer, stereo_credit
from tuneforge.scoring.scorers.musicality import MusicalityScorer
from tuneforge.scoring.scorers.structural import StructuralScorer
from tuneforge.scoring.scorers.timbral import TimbralScorer
from tuneforge.scoring.scorers.vocal import VocalScorer

SCORERS = [
    AttributeScorer(),
    MusicalityScorer(),
    MelodyScorer(),
    StructuralScorer(),
    VocalScorer(),
    MixSeparationScorer(),
    TimbralScorer(),
]


def challenge(**fields: object) -> MusicGenerationSynapse:
    return MusicGenerationSynapse(prompt="a test piece", **fields)


def score(scorer: object, audio: Audio | Clip, **fields: object) -> ScoreResult:
    clip = audio if isinstance(audio, Clip) else Clip(audio)
    context = RoundContext([clip], ["hotkey"], [None], InMemoryHistory())
    return scorer.run(clip, challenge(**fields), context, 0)  # type: ignore[attr-defined]


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    features.warm_up()


@pytest.mark.parametrize(
    ("key", "tempo"),
    [("A minor", 100), ("C major", 120), ("F# major", 90), ("Eb minor", 140), ("G major", 75)],
)
def test_key_and_tempo_of_a_tonal_piece_are_found(key: str, tempo: int) -> None:
    piece = signals.tonal_piece(key, tempo, seconds=20, seed=1)
    result = score(AttributeScorer(), piece, key=key, tempo_bpm=tempo)
    assert parse_key(result.details["detected_key"]) == parse_key(key)
    assert result.details["detected_tempo_bpm"] == pytest.approx(tempo, rel=0.04)
    # The beat tracker may lock to half or double time; its raw reading is one octave off at most.
    ratio = result.details["raw_tempo_bpm"] / tempo
    assert min(abs(np.log2(ratio)), abs(np.log2(ratio) - 1), abs(np.log2(ratio) + 1)) < 0.06
    assert result.details["parts"]["key"] == 1.0
    # Full credit when the tracker agrees; a salient half/double reading keeps most of it.
    assert result.details["parts"]["tempo"] > (0.9 if abs(ratio - 1) < 0.04 else 0.7)


def test_tempo_credit_is_full_on_target_partial_at_half_time_and_zero_when_far() -> None:
    strong = {1.0: 0.9, 2.0: 0.9, 0.5: 0.9, 1.5: 0.1, 2.0 / 3.0: 0.1}
    weak = {1.0: 0.9, 2.0: 0.05, 0.5: 0.05, 1.5: 0.05, 2.0 / 3.0: 0.05}
    assert tempo_credit(100.0, 100.0, weak)[0] == pytest.approx(1.0)
    half_weak, reading, factor = tempo_credit(50.0, 100.0, weak)
    assert 0.4 < half_weak < 0.6 and reading == pytest.approx(100.0) and factor == 2.0
    half_strong = tempo_credit(50.0, 100.0, strong)[0]
    assert half_weak < half_strong < 1.0
    assert tempo_credit(100.0, 104.0, weak)[0] > tempo_credit(100.0, 110.0, weak)[0]
    assert tempo_credit(130.0, 100.0, weak)[0] < 0.05
    assert tempo_credit(100.0, 112.0, weak)[0] < 0.2
    assert tempo_credit(0.0, 100.0, weak)[0] == 0.0


def test_attribute_prefers_the_matching_challenge_for_the_same_audio() -> None:
    clip = Clip(signals.tonal_piece("A minor", 100, seconds=15, seed=2))
    matching = score(AttributeScorer(), clip, key="A minor", tempo_bpm=100, vocals=False)
    mismatched = score(AttributeScorer(), clip, key="F# major", tempo_bpm=130, vocals=True)
    assert matching.value > 0.9
    assert mismatched.value < 0.3
    assert matching.details["parts"]["vocals"] == 1.0
    assert mismatched.details["parts"]["vocals"] == 0.0


def test_instruments_are_left_out_without_clap_and_say_so() -> None:
    result = score(AttributeScorer(), signals.tonal_piece(seconds=5), instruments=["piano"])
    assert "instruments" not in result.details["parts"]
    assert "instruments not assessed" in result.reason
    assert "CLAP" in result.details["instruments_note"]


def test_instrument_ranking_is_relative_to_the_reference_instruments() -> None:
    rng = np.random.default_rng(0)
    references = rng.standard_normal((10, 16))
    piano = rng.standard_normal(16)
    audio = piano + 0.1 * rng.standard_normal(16)  # the clip "sounds like" the piano text
    ranks = instrument_ranks(audio, np.stack([piano, references[3]]), np.delete(references, 3, 0))
    assert ranks[0] == 1.0  # above every reference
    assert ranks[1] < 0.9  # a reference instrument is not singled out
    assert instrument_ranks(-audio, piano[None, :], references)[0] == 0.0


@pytest.fixture(scope="module")
def originals_and_shuffles() -> list[tuple[Clip, Clip]]:
    pairs = []
    for key, tempo, seed in (("A minor", 100, 3), ("D major", 90, 1)):
        piece = signals.tonal_piece(key, tempo, seconds=20, seed=seed)
        pairs.append((Clip(piece), Clip(signals.time_shuffled(piece, seed=seed))))
    return pairs


# Shuffling is for structural and musicality to catch (issue 10); melody's ranges are calibrated
# on real music, whose lines a 0.25 s shuffle does not always make less melodic.
@pytest.mark.parametrize("scorer", [MusicalityScorer(), StructuralScorer()])
def test_originals_beat_their_time_shuffled_versions(
    scorer: object, originals_and_shuffles: list[tuple[Clip, Clip]]
) -> None:
    for original, shuffled in originals_and_shuffles:
        good, bad = score(scorer, original), score(scorer, shuffled)
        assert good.value > bad.value + 0.1, (good.reason, bad.reason)
        assert good.value > 0.7


def test_noise_scores_low_on_musicality_and_melody() -> None:
    noise = Clip(signals.white_noise(seconds=10))
    piece = Clip(signals.tonal_piece("C major", 100, seconds=10))
    for scorer in (MusicalityScorer(), MelodyScorer()):
        assert score(scorer, noise).value < 0.15
        assert score(scorer, piece).value > 0.7
    assert score(MelodyScorer(), noise).details["voiced_fraction"] < 0.05


def test_timbral_prefers_instrument_spectra_over_noise() -> None:
    piece = score(TimbralScorer(), signals.in_room(signals.tonal_piece(seconds=10)))
    noise = score(TimbralScorer(), signals.white_noise(seconds=10))
    assert piece.value > 0.8 > 0.5 > noise.value
    assert -12 < piece.details["spectral_slope_db_per_octave"] < -4
    assert abs(noise.details["spectral_slope_db_per_octave"]) < 1.5


def test_a_hard_cut_at_full_level_is_not_a_real_ending() -> None:
    piece = signals.tonal_piece("A minor", 100, seconds=20, seed=0)
    cut = Audio(piece.samples[:, : piece.num_samples // 2], piece.sample_rate)
    faded = score(StructuralScorer(), piece).details
    chopped = score(StructuralScorer(), cut).details
    assert faded["parts"]["ending"] == 1.0
    assert chopped["parts"]["ending"] < 0.3
    assert chopped["end_level_db"] > faded["end_level_db"] + 20


def test_mix_separation_judges_stereo_only_when_there_is_stereo() -> None:
    piece = signals.tonal_piece(seconds=8)
    mono = score(MixSeparationScorer(), piece)
    assert "stereo" not in mono.details["parts"] and "not assessed" in mono.reason
    wide = score(MixSeparationScorer(), signals.stereo(piece, width=0.3))
    left = piece.samples[0]
    rng = np.random.default_rng(0)
    hollow = Audio(np.stack([left, -0.8 * left + 0.05 * rng.standard_normal(left.size)]), 32_000)
    hollow_result = score(MixSeparationScorer(), hollow)
    assert wide.details["parts"]["stereo"] > 0.9
    assert hollow_result.details["parts"]["stereo"] < 0.1
    assert hollow_result.details["mono_retention"] < 0.2


def test_a_mix_with_nothing_between_its_partials_is_too_clean() -> None:
    """Dry additive tones leave digital silence between their partials (valleys 35+ dB under
    the peaks); the same notes in a room fill them, as every recorded or rendered mix does."""
    dry_piece = signals.tonal_piece(seconds=8)
    dry = score(MixSeparationScorer(), dry_piece)
    room = score(MixSeparationScorer(), signals.in_room(dry_piece))
    assert dry.details["room_contrast_db"] > 34.0 > 30.0 > room.details["room_contrast_db"]
    assert dry.details["parts"]["room"] < 0.5 and room.details["parts"]["room"] == 1.0
    assert room.value > dry.value + 0.15


def test_a_wide_room_is_healthy_width_not_a_mono_risk() -> None:
    """Real stereo mixes with a wide room keep 0.6-0.8 of their energy in the mono downmix."""
    wide_room = {"correlation": 0.5, "side_mid_ratio": 0.33, "mono_retention": 0.72}
    cancelling = {"correlation": -0.2, "side_mid_ratio": 1.5, "mono_retention": 0.4}
    assert stereo_credit(wide_room) == 1.0
    assert stereo_credit(cancelling) == 0.0


def _degenerate_inputs() -> dict[str, Audio]:
    return {
        "one_sample": Audio(np.array([0.5], dtype=np.float32), 32_000),
        "silence": signals.silence(seconds=3),
        "dc": Audio(np.full(3 * 32_000, 0.5, dtype=np.float32), 32_000),
        "noise": signals.white_noise(seconds=3),
        "8khz": signals.tonal_piece(seconds=4, sr=8_000),
        "60s": signals.tonal_piece(seconds=60),
    }


@pytest.fixture(scope="module")
def degenerate_clips() -> dict[str, Clip]:
    return {name: Clip(audio) for name, audio in _degenerate_inputs().items()}


@pytest.mark.parametrize("name", list(_degenerate_inputs()))
def test_degenerate_input_gives_a_finite_score_with_a_reason(
    name: str, degenerate_clips: dict[str, Clip]
) -> None:
    clip = degenerate_clips[name]
    for scorer in SCORERS:
        result = score(scorer, clip, key="A minor", tempo_bpm=100, vocals=True)
        assert np.isfinite(result.value) and 0.0 <= result.value <= 1.0, scorer.name
        assert result.reason, scorer.name
        if name in ("one_sample", "silence", "dc"):
            assert result.value == 0.0, (scorer.name, result.reason)


def test_the_seven_scorers_stay_inside_their_cpu_budget_on_a_30_s_clip() -> None:
    clip = Clip(signals.stereo(signals.tonal_piece("A minor", 100, seconds=30, seed=1)))
    for name in ("stft_magnitude", "chroma", "onset_envelope", "beats", "rms", "mfcc"):
        getattr(features, name)(clip)  # shared features are the scoring core's budget
    score(AttributeScorer(), signals.tonal_piece(seconds=2))  # load the voice detector once
    start = time.process_time()
    for scorer in SCORERS:
        score(scorer, clip, key="A minor", tempo_bpm=100)
    # ~0.2 CPU-s measured; the brief's budget for the seven is 1.6 s.
    assert time.process_time() - start < 1.6


# ---------------------------------------------------------------- calibration on real music (D28)


def _reversed(audio: Audio) -> Audio:
    return Audio(audio.samples[:, ::-1].copy(), audio.sample_rate)


def test_envelopes_played_backwards_flip_their_skew_and_cost_the_artifact_penalty() -> None:
    from tuneforge.scoring.envelope_features import flux_shape
    from tuneforge.scoring.penalties import ArtifactPenalty

    piece = signals.in_room(signals.tonal_piece("D minor", tempo_bpm=96, seconds=12))
    forward, backward = Clip(piece), Clip(_reversed(piece))
    assert flux_shape(forward).envelope_skewness > 1.0
    assert flux_shape(backward).envelope_skewness < -1.0
    kept = score(ArtifactPenalty(), forward, duration_seconds=12.0)
    lost = score(ArtifactPenalty(), backward, duration_seconds=12.0)
    assert "backwards" not in kept.reason
    assert "backwards" in lost.reason and lost.value < kept.value


def test_the_note_change_envelope_hears_releases_as_well_as_attacks() -> None:
    """Beats and pulse read where notes change, releases included (legato music changes chord
    by stopping one and starting the next), so a reversed clip's dead stops cannot give it a
    clearer pulse than the music it came from."""
    sr = 22_050
    t = np.arange(2 * sr) / sr
    # a slow swell released over 20 ms at 1.0 s
    swell = np.minimum(1.0, t / 0.9) * np.clip((1.0 - t) / 0.02, 0.0, 1.0)
    clip = Clip(Audio((0.3 * swell * np.sin(2 * np.pi * 330.0 * t)).astype(np.float32), sr))
    stop = int(round(1.0 * sr / features.HOP))
    release = slice(stop + 2, stop + 6)  # the fall, after the onset detector's own frame
    changes, attacks = features.change_envelope(clip), features.onset_envelope(clip)
    assert changes[release].max() > 20.0 * np.median(changes)
    assert changes[release].max() > 10.0 * attacks[release].max()


def test_short_excerpts_need_neither_repetition_nor_section_changes() -> None:
    """A 15 s excerpt of through-composed music has not had time to repeat or change section."""
    sr, beat = 22_050, 0.6
    rng = np.random.default_rng(3)
    t = np.arange(int(beat * sr)) / sr
    bars = []
    for _ in range(25):  # 15 s of chords that never come back: random triads of C major
        notes = 60 + np.array([0, 2, 4, 5, 7, 9, 11])[rng.choice(7, 3, replace=False)]
        freqs = 440.0 * 2.0 ** ((notes - 69) / 12.0)
        bars.append(sum(np.sin(2 * np.pi * f * t) for f in freqs) * np.exp(-3.0 * t) * 0.2)
    piece = signals.in_room(Audio(np.concatenate(bars).astype(np.float32), sr))
    result = score(StructuralScorer(), piece, duration_seconds=15.0)
    assert result.details["parts"]["repetition"] == 1.0
    assert result.details["parts"]["sections"] == 1.0
