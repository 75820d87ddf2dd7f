"""The four core scorers: quality, production, speed, diversity."""

from __future__ import annotations

import pytest

from tests.helpers import signals
from tuneforge.core.audio import Audio, resample
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring.base import RoundContext
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.features import dsp_embedding
from tuneforge.scoring.history import InMemoryHistory
from tuneforge.scoring.scorers.diversity import DiversityScorer
from tuneforge.scoring.scorers.production import ProductionScorer, genre_target_lufs
from tuneforge.scoring.scorers.quality import QualityScorer
from tuneforge.scoring.scorers.speed import SpeedScorer

CHALLENGE = MusicGenerationSynapse(prompt="test", genre="pop", duration_seconds=10)


@pytest.fixture(scope="module")
def piece() -> Audio:
    return signals.tonal_piece("A minor", tempo_bpm=100, seconds=10)


def _context(clips: list[Clip], **kwargs: object) -> RoundContext:
    return RoundContext(
        clips,
        kwargs.get("hotkeys") or [f"m{i}" for i in range(len(clips))],  # type: ignore[arg-type]
        kwargs.get("generation_ms") or [None] * len(clips),  # type: ignore[arg-type]
        kwargs.get("history") or InMemoryHistory(),  # type: ignore[arg-type]
    )


def _score(scorer: object, audio: Audio) -> float:
    clip = Clip(audio)
    return scorer.run(clip, CHALLENGE, _context([clip]), 0).value  # type: ignore[attr-defined]


def test_original_beats_clipped_and_noisy_versions_on_quality(piece: Audio) -> None:
    quality = QualityScorer()
    original = _score(quality, piece)
    assert original > 0.9
    assert _score(quality, signals.clipped(piece, 8)) < original - 0.5
    assert _score(quality, signals.with_noise(piece, 10)) < original - 0.3
    assert _score(quality, signals.with_noise(piece, 20)) < original
    assert _score(quality, resample(piece, 8000)) < original - 0.5  # 4 kHz bandwidth


def test_quality_gives_silence_and_white_noise_zero_with_reasons() -> None:
    for audio, word in ((signals.silence(4), "silent"), (signals.white_noise(4), "noise floor")):
        clip = Clip(audio)
        result = QualityScorer().run(clip, CHALLENGE, _context([clip]), 0)
        assert result.value == 0.0 and word in result.reason


def test_production_rewards_genre_loudness_and_judges_stereo(piece: Audio) -> None:
    production = ProductionScorer()
    assert genre_target_lufs("Synth-Pop") == -10.0 and genre_target_lufs(None) == -14.0
    quiet, mastered = _score(production, piece), _score(production, signals.scaled(piece, 2.5))
    assert mastered > quiet  # -20 LUFS -> ~-12 LUFS, nearer pop's -10
    stereo = Clip(signals.stereo(piece))
    result = production.run(stereo, CHALLENGE, _context([stereo]), 0)
    assert "lr_correlation" in result.details and result.details["parts"]["stereo"] >= 0.8
    samples = stereo.original.samples.copy()
    samples[1] = -samples[0]  # right channel inverted: vanishes in mono
    inverted = Clip(Audio(samples, 32000))
    bad = production.run(inverted, CHALLENGE, _context([inverted]), 0)
    assert bad.details["parts"]["stereo"] == 0.0 and "stereo correlation" in bad.reason


@pytest.mark.parametrize(("ms", "expected"), [(4000.0, 1.0), (30000.0, 0.3), (90000.0, 0.0)])
def test_speed_follows_generation_time_over_requested_duration(
    piece: Audio, ms: float, expected: float
) -> None:
    clip = Clip(piece)
    result = SpeedScorer().run(clip, CHALLENGE, _context([clip], generation_ms=[ms]), 0)
    assert result.value == pytest.approx(expected)
    assert result.details["realtime_factor"] == pytest.approx(ms / 10000.0)


def test_speed_without_a_measured_generation_time_scores_zero(piece: Audio) -> None:
    clip = Clip(piece)
    result = SpeedScorer().run(clip, CHALLENGE, _context([clip]), 0)
    assert result.value == 0.0 and "no generation time" in result.reason


def test_diversity_punishes_repeating_own_history_and_copying_the_round(piece: Audio) -> None:
    scorer = DiversityScorer()
    history = InMemoryHistory()
    history.add_embedding("m0", dsp_embedding(Clip(piece)))
    repeat = Clip(signals.shifted(piece, 0.7))
    repeated = scorer.run(repeat, CHALLENGE, _context([repeat], history=history), 0)
    fresh = Clip(signals.tonal_piece("D major", 140, 10, seed=5))
    novel = scorer.run(fresh, CHALLENGE, _context([fresh], history=history), 0)
    assert repeated.value < 0.3 < 0.9 < novel.value
    assert "recent clips" in repeated.reason

    twins = [Clip(piece), Clip(signals.scaled(piece, 0.8)), fresh]
    context = _context(twins)
    values = [scorer.run(c, CHALLENGE, context, i).value for i, c in enumerate(twins)]
    assert values[0] < 0.3 and values[1] < 0.3 and values[2] > 0.9


def test_diversity_with_nothing_to_compare_is_full_novelty(piece: Audio) -> None:
    clip = Clip(piece)
    result = DiversityScorer().run(clip, CHALLENGE, _context([clip]), 0)
    assert result.value == 1.0 and "nothing earlier" in result.reason
