"""SynthBackend (tonal, in tempo and key, seeded, with an ending), prompt and post-processing."""

from __future__ import annotations

import numpy as np
import pytest

from tuneforge.core.audio import Audio, integrated_lufs, true_peak_dbfs
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.generation.base import GenerationError
from tuneforge.generation.factory import create_backend
from tuneforge.generation.postprocess import finish
from tuneforge.generation.prompt import build_prompt
from tuneforge.generation.settings import GenerationSettings
from tuneforge.generation.synth import STEPS, SynthBackend, _motif, parse_key, tempo_for

RATE = 32_000
NOTES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
# Krumhansl-Kessler key profiles.
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _request(**fields: object) -> MusicGenerationSynapse:
    return MusicGenerationSynapse(**{"prompt": "a simple tune", "duration_seconds": 12.0, **fields})


def _estimated_key(mono: np.ndarray, sr: int) -> str:
    import librosa

    chroma = librosa.feature.chroma_stft(y=mono, sr=sr, n_fft=4096).mean(axis=1)
    scored = [
        (np.corrcoef(chroma, np.roll(profile, shift))[0, 1], f"{NOTES[shift]} {mode}")
        for profile, mode in ((MAJOR, "major"), (MINOR, "minor"))
        for shift in range(12)
    ]
    return max(scored)[1]


def _enharmonic(key: str) -> str:
    tonic, mode = parse_key(key)
    return f"{NOTES[tonic]} {mode}"


@pytest.mark.parametrize(
    ("tempo", "key", "seed"), [(120, "A minor", 1), (90, "D major", 2), (140, "F# minor", 3)]
)
def test_synth_is_in_the_requested_tempo_and_key(tempo: int, key: str, seed: int) -> None:
    import librosa

    audio = SynthBackend().generate(_request(tempo_bpm=tempo, key=key, seed=seed))
    mono = librosa.resample(audio.mono(), orig_sr=RATE, target_sr=22_050)
    estimated, _ = librosa.beat.beat_track(y=mono, sr=22_050)
    assert float(np.atleast_1d(estimated)[0]) == pytest.approx(tempo, rel=0.04)
    assert _estimated_key(mono, 22_050) == _enharmonic(key)


def test_synth_defaults_to_genre_tempo_and_c_major() -> None:
    assert tempo_for("Lo-fi hip hop") == 85
    assert tempo_for("polka") == 100
    assert parse_key(None) == (0, "major")
    assert parse_key("Eb major") == parse_key("D# major")


def test_synth_is_deterministic_by_seed_and_seeds_give_different_pieces() -> None:
    import librosa

    backend = SynthBackend()
    pieces = [backend.generate(_request(seed=seed, duration_seconds=12.0)) for seed in (5, 5, 6, 7)]
    np.testing.assert_array_equal(pieces[0].samples, pieces[1].samples)
    # Same tempo and key, so compare the notes, chroma frame by frame, over the first four bars
    # (4 x 2.4 s at 100 BPM; the rest is the shared closing tonic chord).
    chroma = [
        librosa.feature.chroma_stft(y=piece.mono()[: int(9.6 * RATE)], sr=RATE, n_fft=4096).ravel()
        for piece in pieces[1:]
    ]
    similarity = np.corrcoef(np.stack(chroma))
    assert similarity[0, 1] < 0.75 and similarity[0, 2] < 0.75 and similarity[1, 2] < 0.75


def test_synth_has_exact_length_target_loudness_and_fades_out_at_the_end() -> None:
    audio = SynthBackend().generate(_request(seed=9, duration_seconds=7.3))
    assert audio.sample_rate == RATE
    assert audio.samples.shape == (2, round(7.3 * RATE))
    assert integrated_lufs(audio) == pytest.approx(-14.0, abs=0.5)
    assert true_peak_dbfs(audio) <= -1.0 + 0.05
    mono = audio.mono()
    middle_rms = np.sqrt(np.mean(mono[RATE * 2 : RATE * 4] ** 2))
    last_rms = np.sqrt(np.mean(mono[-RATE // 20 :] ** 2))
    assert last_rms < 0.02 * middle_rms


def test_synth_melody_moves_mostly_by_step() -> None:
    rng = np.random.default_rng(0)
    steps = []
    for _ in range(200):
        degrees = [degree for _, degree in _motif(rng, 0)]
        steps += [abs(b - a) for a, b in zip(degrees, degrees[1:], strict=False)]
    assert max(STEPS) == 2
    assert np.mean(np.array(steps) <= 1) > 0.7


def test_factory_builds_the_named_backend_without_loading_models() -> None:
    synth = create_backend(GenerationSettings(backend="synth"))
    assert synth.name == "synth" and synth.sample_rate == RATE
    musicgen = create_backend(GenerationSettings(model="/nonexistent/model"))
    assert musicgen.name == "musicgen" and musicgen.model_id == "/nonexistent/model"


def test_audiocraft_backend_without_the_package_is_a_clear_error() -> None:
    import importlib.util

    if importlib.util.find_spec("audiocraft") is not None:
        pytest.skip("audiocraft is installed here")
    with pytest.raises(GenerationError, match="pip install"):
        create_backend(GenerationSettings(backend="audiocraft"))


def test_settings_refuse_an_overlap_as_long_as_the_window() -> None:
    with pytest.raises(ValueError, match="overlap"):
        GenerationSettings(window_seconds=10, overlap_seconds=10)


def test_prompt_joins_structured_fields_into_one_caption() -> None:
    request = _request(
        prompt="chill beat with vinyl crackle",
        genre="lo-fi hip hop",
        mood="calm",
        tempo_bpm=85,
        key="A minor",
        instruments=["piano", "drums"],
        lyrics="these words are not sung",
    )
    assert build_prompt(request) == (
        "lo-fi hip hop, calm mood, 85 BPM, in A minor, with piano and drums. "
        "Chill beat with vinyl crackle."
    )
    assert build_prompt(_request(prompt="just text")) == "just text"
    sung = _request(prompt="a ballad", instruments=["guitar"], vocals=True)
    assert build_prompt(sung) == "with guitar, with vocals. A ballad."


def test_finish_keeps_channels_fixes_length_and_limits_true_peak() -> None:
    t = np.arange(int(1.5 * RATE)) / RATE
    loud = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 660 * t)]) + 0.2
    out = finish(Audio(loud.astype(np.float32), RATE), 2.0, -14.0, -1.0)
    assert out.samples.shape == (2, 2 * RATE)
    assert true_peak_dbfs(out) <= -1.0 + 0.05
    assert abs(float(out.samples[:, : RATE // 2].mean())) < 1e-3  # DC removed
    mono = finish(Audio(loud[:1].astype(np.float32), RATE), 1.0, -14.0, -1.0)
    assert mono.samples.shape == (1, RATE)
    with pytest.raises(GenerationError, match="NaN"):
        finish(Audio(np.full((1, RATE), np.nan, dtype=np.float32), RATE), 1.0, -14.0, -1.0)


def test_variant_gives_miners_sharing_a_backend_distinct_but_seeded_pieces() -> None:
    request = _request(seed=4, duration_seconds=3.0)
    plain = SynthBackend(GenerationSettings(backend="synth")).generate(request).samples
    one = SynthBackend(GenerationSettings(backend="synth", variant=1))
    two = SynthBackend(GenerationSettings(backend="synth", variant=2))
    np.testing.assert_array_equal(one.generate(request).samples, one.generate(request).samples)
    assert not np.array_equal(one.generate(request).samples, plain)
    assert not np.array_equal(one.generate(request).samples, two.generate(request).samples)
    assert GenerationSettings(variant=0).seed_for(4) == 4
    assert 0 <= GenerationSettings(variant=3).seed_for(2**31 - 1) < 2**31
