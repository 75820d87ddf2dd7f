"""NeuralModels and the clap / neural_quality / vocal_lyrics scorers, on tiny random models of
the real classes (ClapModel, HubertModel for MERT, WhisperForConditionalGeneration) loaded back
from directories exactly as production loads a checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import signals
from tests.helpers.tiny_models import tiny_model_dirs
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring.base import RoundContext, ScorerUnavailable
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.history import InMemoryHistory
from tuneforge.scoring.neural import ModelLoadError, NeuralModels, Transcript
from tuneforge.scoring.scorers.clap import ClapScorer, challenge_text
from tuneforge.scoring.scorers.neural_quality import NeuralQualityScorer, layer_coherence
from tuneforge.scoring.scorers.vocal_lyrics import (
    VocalLyricsScorer,
    word_error_rate,
    words,
)


@pytest.fixture(scope="module")
def models() -> NeuralModels:
    dirs = tiny_model_dirs()
    return NeuralModels.load(str(dirs.clap), str(dirs.mert), str(dirs.whisper), None, "cpu")


def _clips() -> list[Clip]:
    return [
        Clip(signals.tonal_piece(seconds=5, seed=1)),
        Clip(signals.white_noise(4)),
        Clip(signals.stereo(signals.tonal_piece("C major", 120, seconds=4, seed=2))),
    ]


def _context(clips: list[Clip], models: NeuralModels | None) -> RoundContext:
    hotkeys = [f"miner{i}" for i in range(len(clips))]
    return RoundContext(clips, hotkeys, [1000.0] * len(clips), InMemoryHistory(), models)


CHALLENGE = MusicGenerationSynapse(
    prompt="a calm piano piece", genre="ambient", mood="calm", instruments=["piano"], seed=1
)


def test_prepare_round_stores_normalised_clap_and_pooled_mert_features(models):
    clips = _clips()
    models.prepare_round(clips)
    for clip in clips:
        clap = clip.neural.clap_embedding
        assert clap.shape == (16,)
        assert np.linalg.norm(clap) == pytest.approx(1.0, abs=1e-5)
        layers = clip.neural.mert_layer_means
        assert layers.shape == (3, 32)  # one row per hooked encoder layer
        np.testing.assert_allclose(clip.neural.mert_embedding, layers.mean(axis=0))
        segments = clip.neural.mert_segments
        assert segments.shape[0] == 3 and segments.shape[2] == 32
        assert abs(segments.shape[1] - round(clip.duration_seconds)) <= 1  # ~1 s segments
        assert clip.neural.mert_fad_frames.shape[1] == 32
    assert not np.allclose(clips[0].neural.clap_embedding, clips[1].neural.clap_embedding)


def test_embeddings_are_deterministic_and_independent_of_the_batch(models):
    dirs = tiny_model_dirs()
    reloaded = NeuralModels.load(str(dirs.clap), str(dirs.mert), None, None, "cpu")
    together = _clips()
    models.prepare_round(together)
    alone = _clips()[0]
    reloaded.prepare_round([alone])
    for name in ("clap_embedding", "mert_embedding"):
        np.testing.assert_allclose(
            together[0].neural.embedding(name), alone.neural.embedding(name), rtol=1e-4, atol=1e-5
        )


def test_text_embeddings_are_normalised_cached_and_distinct(models):
    texts = ["calm piano", "loud metal with screaming guitars", "calm piano"]
    first = models.clap_text_embeddings(texts)
    assert first.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(first[0], first[2])
    assert not np.allclose(first[0], first[1])
    np.testing.assert_array_equal(models.clap_text_embeddings(["calm piano"])[0], first[0])


def test_missing_model_raises_at_load_unless_allowed(tmp_path: Path):
    dirs = tiny_model_dirs()
    with pytest.raises(ModelLoadError, match="mert"):
        NeuralModels.load(None, str(tmp_path / "nope"), None, None, "cpu")
    models = NeuralModels.load(
        str(dirs.clap), str(tmp_path / "nope"), None, None, "cpu", allow_missing=True
    )
    assert models.has("clap") and not models.has("mert") and not models.has("whisper")
    described = models.describe()
    assert described["mert"].startswith("missing: ")
    assert described["whisper"] == "not configured"
    assert described["clap"].startswith("loaded ")
    with pytest.raises(ScorerUnavailable, match="mert model missing"):
        NeuralQualityScorer(models=models)


def test_clap_scorer_is_in_range_deterministic_and_uses_the_prompt(models):
    clips = _clips()
    context = _context(clips, models)
    scorer = ClapScorer(models=models)
    results = [scorer.run(c, CHALLENGE, context, i) for i, c in enumerate(clips)]
    again = [scorer.run(c, CHALLENGE, context, i) for i, c in enumerate(clips)]
    other = CHALLENGE.model_copy(update={"prompt": "aggressive drum and bass", "genre": "dnb"})
    cosines = {r.details["cosine"] for r in results}
    for r, r2 in zip(results, again, strict=True):
        assert 0.0 <= r.value <= 1.0
        assert -1.0 <= r.details["cosine"] <= 1.0
        assert r.details == r2.details
    assert len(cosines) == 3
    assert scorer.run(clips[0], other, context, 0).details != results[0].details


def test_challenge_text_names_every_requested_attribute():
    text = challenge_text(
        CHALLENGE.model_copy(update={"tempo_bpm": 90, "key": "A minor", "vocals": True})
    )
    for part in ("a calm piano piece", "ambient music", "calm mood", "piano", "90 BPM", "A minor"):
        assert part in text
    assert "with vocals" in text


def test_neural_scorers_are_excluded_without_models():
    for cls in (ClapScorer, NeuralQualityScorer, VocalLyricsScorer):
        with pytest.raises(ScorerUnavailable, match="no neural models"):
            cls(models=None)


def test_neural_quality_is_in_range_and_deterministic(models):
    clips = _clips()
    context = _context(clips, models)
    scorer = NeuralQualityScorer(models=models)
    first = [scorer.run(c, CHALLENGE, context, i) for i, c in enumerate(clips)]
    second = [scorer.run(c, CHALLENGE, context, i) for i, c in enumerate(clips)]
    for a, b in zip(first, second, strict=True):
        assert 0.0 <= a.value <= 1.0
        assert a.value == b.value
    assert "coherence" in first[0].details


def test_layer_coherence_rewards_smooth_evolution_over_shuffled_segments():
    rng = np.random.default_rng(0)
    path = np.cumsum(rng.standard_normal((20, 16)), axis=0)  # a slowly wandering trajectory
    shuffled = path[rng.permutation(20)]
    stationary = rng.standard_normal((20, 16))
    assert layer_coherence(path) > 0.3
    assert layer_coherence(path) > layer_coherence(shuffled) + 0.2
    assert abs(layer_coherence(stationary)) < 0.15


def test_whisper_transcribes_the_round_once_in_one_batch(models):
    clips = _clips()
    transcript = models.transcript(clips[1], clips)
    assert isinstance(transcript, Transcript)
    assert all(c.neural.transcript is not None for c in clips)  # batched over the round
    assert 0.0 <= transcript.no_speech_prob <= 1.0
    assert transcript.avg_logprob <= 0.0
    assert models.transcript(clips[1], clips) is transcript  # cached, not recomputed
    fresh = _clips()[1]
    assert models.transcript(fresh).text == transcript.text  # greedy: deterministic


def test_vocal_lyrics_scores_each_kind_of_request(models):
    clips = _clips()
    context = _context(clips, models)
    scorer = VocalLyricsScorer(models=models)
    sung = CHALLENGE.model_copy(update={"vocals": True, "lyrics": "hold me close tonight"})
    hummed = CHALLENGE.model_copy(update={"vocals": True, "lyrics": None})
    for challenge in (sung, hummed, CHALLENGE):
        result = scorer.run(clips[0], challenge, context, 0)
        assert 0.0 <= result.value <= 1.0
        assert "transcript" in result.details
    assert "wer" in scorer.run(clips[0], sung, context, 0).details


def test_word_error_rate_counts_word_edits_and_ignores_music_tags():
    assert word_error_rate("hold me close tonight", "Hold me, close tonight!") == 0.0
    assert word_error_rate("hold me close tonight", "hold me tonight") == pytest.approx(0.25)
    assert word_error_rate("hold me close tonight", "fold me close tonight") == pytest.approx(0.25)
    assert word_error_rate("a b", "a b c d") == pytest.approx(1.0)
    assert word_error_rate("", "") == 0.0
    assert words("[Music] ♪ la la (applause) don't") == ["la", "la", "don't"]


def test_instrumental_with_confident_speech_scores_below_silence():
    quiet = Transcript(text="", avg_logprob=0.0, no_speech_prob=0.9, num_tokens=0)
    hallucination = Transcript("thank you", avg_logprob=-1.5, no_speech_prob=0.8, num_tokens=3)
    speech = Transcript(
        "I will tell you a story", avg_logprob=-0.1, no_speech_prob=0.02, num_tokens=7
    )
    assert not quiet.is_speech and not hallucination.is_speech and speech.is_speech
    from tuneforge.scoring.scorers.vocal_lyrics import speech_confidence

    assert speech_confidence(quiet) == 0.0
    assert speech_confidence(speech) > 0.8


def test_engine_runs_the_neural_scorers_and_excludes_absent_ones_with_reasons(models):
    from tuneforge.scoring.base import Submission
    from tuneforge.scoring.engine import ScoringEngine

    engine = ScoringEngine.create(InMemoryHistory(), models=models)
    challenge = CHALLENGE.model_copy(update={"duration_seconds": 5.0})
    submissions = [
        Submission("miner0", signals.tonal_piece(seconds=5, seed=3), 900.0),
        Submission("miner1", signals.white_noise(5), 900.0),
    ]
    results = engine.score_round(challenge, submissions)
    for result in results:
        for name in ("clap", "neural_quality", "vocal_lyrics"):
            assert not result.reasons[name].startswith("excluded"), result.reasons[name]
            assert result.effective_weights[name] > 0
        # untrained heads are inactive on every validator: null, weight 0, with the reason
        for name in ("learned_mos", "preference"):
            assert result.score_breakdown[name] is None
            assert result.reasons[name].startswith("inactive network-wide")
            assert result.effective_weights[name] == 0.0
        assert not result.degraded  # CLAP, MERT and Whisper loaded: the whole active set
        assert 0.0 <= result.penalties["fad_penalty"] <= 1.0
        assert result.details["fad_penalty"]["embedding"] == "dsp-v1"


def test_a_neural_round_scores_in_workers_exactly_like_one_process(models, monkeypatch):
    """With the models loaded, their batched pass runs in this process a batch of clips at a
    time, and the clips are scored in worker processes from what the models computed — the
    same result bit for bit as one process, every neural check run (D68)."""
    from tuneforge.scoring.base import Submission
    from tuneforge.scoring.engine import ScoringEngine
    from tuneforge.scoring.neural import BATCH_SIZE

    batches: list[int] = []
    prepare = models.prepare_round

    def counted(clips):
        batches.append(len(clips))
        return prepare(clips)

    monkeypatch.setattr(models, "prepare_round", counted)
    challenge = CHALLENGE.model_copy(update={"duration_seconds": 4.0})
    pieces = [signals.tonal_piece(seconds=4, seed=seed) for seed in range(BATCH_SIZE)]
    submissions = [Submission(f"miner{i}", audio, 900.0) for i, audio in enumerate(pieces)]
    submissions += [
        Submission("noise", signals.white_noise(4), 900.0),
        Submission("gone", None, error="timeout"),
        Submission("quieter", signals.scaled(pieces[0], 0.5), 900.0),
    ]
    serial = ScoringEngine.create(InMemoryHistory(), models=models)
    parallel = ScoringEngine.create(InMemoryHistory(), models=models, workers=2)
    try:
        assert parallel.workers == 2
        one = serial.score(challenge, submissions)
        many = parallel.score(challenge, submissions)
    finally:
        parallel.close()
    # the models saw each scorable clip once, never more than a batch of them decoded at once
    assert max(batches) <= BATCH_SIZE and sum(batches) == 2 * (BATCH_SIZE + 2)

    def comparable(score):
        facts = score.to_dict()
        facts.pop("timings_ms")
        return facts

    assert [comparable(s) for s in many.scores] == [comparable(s) for s in one.scores]
    assert [c.diversity.tobytes() for c in many.memory.clips] == [
        c.diversity.tobytes() for c in one.memory.clips
    ]
    for score in many.scores[:BATCH_SIZE]:
        for name in ("clap", "neural_quality", "vocal_lyrics"):
            assert score.score_breakdown[name] is not None and name not in score.failures
    assert many.scores[-2].error == "timeout"


def test_a_failed_neural_pass_fails_its_checks_closed(models, monkeypatch):
    """The models raising on a batch costs those clips their neural checks (0, with the
    reason), never the round, and nothing computes them late in another way."""
    from tuneforge.scoring.base import Submission
    from tuneforge.scoring.engine import ScoringEngine

    def broken(clips):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(models, "prepare_round", broken)
    challenge = CHALLENGE.model_copy(update={"duration_seconds": 4.0})
    engine = ScoringEngine.create(InMemoryHistory(), models=models)
    [score] = engine.score(
        challenge, [Submission("miner0", signals.tonal_piece(seconds=4, seed=1), 900.0)]
    ).scores
    assert score.error is None
    for name in ("clap", "neural_quality"):
        assert score.score_breakdown[name] == 0.0 and name in score.failures
    assert "vocal_lyrics" not in score.failures  # Whisper ran apart from the failed pass
