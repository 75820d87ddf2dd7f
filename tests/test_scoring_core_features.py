"""Shared DSP features measure what their docstrings say, once per clip."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import signals
from tuneforge.core.audio import Audio, integrated_lufs
from tuneforge.scoring import features, signal_quality
from tuneforge.scoring.clip import Clip


@pytest.fixture(scope="module")
def piece() -> Audio:
    return signals.tonal_piece("A minor", tempo_bpm=100, seconds=12)


def test_features_are_computed_once_and_shared(piece: Audio) -> None:
    clip = Clip(piece)
    assert features.stft_magnitude(clip) is features.stft_magnitude(clip)
    assert features.beats(clip) is features.beats(clip)
    cached = {qualname for _, qualname, _ in clip._cache}
    assert {"stft_magnitude.<locals>.compute", "onset_envelope.<locals>.compute"} <= cached


def test_tempo_of_a_100_bpm_piece_is_found(piece: Audio) -> None:
    beats = features.beats(Clip(piece))
    # the beat or its double: this piece's drums play quavers, and the metrical comb (D29)
    # reads them as the beat; the attribute scorer credits a salient octave reading
    assert min(abs(beats.tempo_bpm / 100 - 1), abs(beats.tempo_bpm / 200 - 1)) < 0.05
    assert len(beats.times) >= 15


def test_loudness_matches_pyloudnorm_and_true_peak_the_normalisation(piece: Audio) -> None:
    clip = Clip(piece)
    assert signal_quality.loudness(clip).integrated_lufs == pytest.approx(
        integrated_lufs(piece), abs=0.1
    )
    assert signal_quality.true_peak(clip) == pytest.approx(-3.0, abs=0.3)
    quieter = Clip(signals.scaled(piece, 0.5))
    assert signal_quality.loudness(quieter).integrated_lufs == pytest.approx(
        signal_quality.loudness(clip).integrated_lufs - 6.02, abs=0.1
    )


def test_dsp_embedding_is_unit_length_and_separates_pieces(piece: Audio) -> None:
    same = features.dsp_embedding(Clip(signals.shifted(piece, 1.3)))
    original = features.dsp_embedding(Clip(piece))
    other = features.dsp_embedding(Clip(signals.tonal_piece("C major", 130, 12, seed=4)))
    assert np.linalg.norm(original) == pytest.approx(1.0, abs=1e-5)
    assert 1 - original @ same < 0.01 < 1 - original @ other


def test_clipping_fraction_and_dropouts_find_only_real_defects(piece: Audio) -> None:
    clean = Clip(piece)
    assert signal_quality.clipping_fraction(clean) == 0.0 and signal_quality.dropouts(clean) == []
    assert signal_quality.clipping_fraction(Clip(signals.clipped(piece, 8))) > 0.05
    cut = piece.samples.copy()
    cut[:, 5 * 32000 : int(5.3 * 32000)] = 0.0
    gaps = signal_quality.dropouts(Clip(Audio(cut, 32000)))
    assert len(gaps) == 1 and gaps[0][0] == pytest.approx(5.0, abs=0.02)
    # silent intro/outro and decaying drum hits are not dropouts
    assert signal_quality.dropouts(Clip(signals.shifted(signals.drum_pattern(60, 8), -1.0))) == []


def test_floor_snr_orders_clean_noisy_and_noise(piece: Audio) -> None:
    clean = signal_quality.floor_snr_db(Clip(piece))
    noisy = signal_quality.floor_snr_db(Clip(signals.with_noise(piece, 10)))
    noise = signal_quality.floor_snr_db(Clip(signals.white_noise(5)))
    assert clean > 40 > noisy > 15 > noise


@pytest.mark.parametrize(
    ("length", "nperseg"), [(96_000, 4096), (5_000, 4096), (17, 17), (100, 33)]
)
def test_welch_psd_is_scipys_welch(length: int, nperseg: int) -> None:
    """The bandwidth check's long-term spectrum, computed on a strided view, is scipy's Welch."""
    from scipy.signal import welch

    signal = np.random.default_rng(length).standard_normal(length) + 0.25
    want_freqs, want = welch(signal, fs=32_000, nperseg=nperseg)
    freqs, psd = signal_quality.welch_psd(signal, 32_000, nperseg)
    assert np.array_equal(freqs, want_freqs)
    np.testing.assert_allclose(psd, want, rtol=1e-10, atol=1e-12 * float(want.max()))


def test_true_peak_is_the_peak_of_the_whole_oversampled_signal() -> None:
    """Blocks skipped by the bound never hold the peak: the value is scipy's, exactly, on a
    quiet signal with one loud burst, on a limited loud one and on a near-Nyquist pattern."""
    from scipy.signal import resample_poly

    from tuneforge.core.audio import true_peak_dbfs

    rng = np.random.default_rng(11)
    n = 32_000 * 6
    quiet = rng.standard_normal((2, n)).astype(np.float32) * 0.01
    quiet[1, n // 2 : n // 2 + 300] = 0.9 * np.sin(np.arange(300) * 2.9).astype(np.float32)
    loud = np.clip(rng.standard_normal((2, n)) * 0.5, -0.8, 0.8).astype(np.float32)
    pattern = np.tile(np.array([0.0, 0.7, 0.0, -0.7], dtype=np.float32), n // 4)[None] * 0.99
    pattern[0, : n // 3] *= 0.2
    for samples in (quiet, loud, pattern):
        want = 20.0 * np.log10(float(np.max(np.abs(resample_poly(samples, 4, 1, axis=1)))))
        assert true_peak_dbfs(Audio(samples, 32_000)) == want
