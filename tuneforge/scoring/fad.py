"""Fréchet Audio Distance: the math, reference statistics, a DSP frame embedding, and the
`fad_penalty` multiplier.

FAD (Kilgour et al. 2019; fadtk, Gui et al. 2024) fits a Gaussian to frame embeddings of the
audio under test and to a reference set of the SAME embedding model, and measures the Fréchet
distance between them. The penalty looks at a miner's recent window (this clip plus the frame
embeddings of its recent clips kept in history), so one odd clip moves it little and a miner that
keeps sending noise is penalised.

Reference statistics ship in tuneforge/scoring/reference/ (see the README there):
  mert_v1_95m_fma_pop.npz  fadtk 1.1.0's MERT-v1-95M (layer 12) statistics of FMA pop (MIT)
  dsp_real.npz             `dsp_frame_embeddings` of real music (a FAD without MERT): the tuning
                           half of the calibration set (fadtk's real generations + renders of
                           public-domain scores), never audio this repository generates
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view
from scipy import linalg

from tuneforge.core.errors import TuneForgeError
from tuneforge.scoring.base import Challenge, Penalty, RoundContext, ScoreResult

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip
    from tuneforge.scoring.neural import NeuralModels

REFERENCE_DIR = Path(__file__).parent / "reference"
DSP_EMBEDDING = "dsp-v1"
MERT_EMBEDDING = "MERT-v1-95M"  # fadtk's name: layer 12 of m-a-p/MERT-v1-95M
REFERENCE_FILES = {DSP_EMBEDDING: "dsp_real.npz", MERT_EMBEDDING: "mert_v1_95m_fma_pop.npz"}
MIN_FRAMES = 16  # fewer frames give a meaningless covariance: no penalty, with a reason
WINDOW_CLIPS = 8  # this clip + up to 7 recent clips of the same miner

# DSP embedding geometry (at the 22.05 kHz analysis rate): 2048-point STFT, 512 hop, 21 STFT
# frames (~0.49 s) per embedding frame.
DSP_N_FFT, DSP_HOP, DSP_BLOCK, DSP_MELS = 2048, 512, 21, 32
_OCTAVE_EDGES = (100, 200, 400, 800, 1600, 3200, 6400, 11025)


class FadError(TuneForgeError, ValueError):
    """Statistics that cannot be compared (shape mismatch, unreadable reference)."""

    status = 500
    code = "fad_failed"


@dataclass(frozen=True)
class FadCurve:
    """FAD -> multiplier: 1 up to `ok`, then falling linearly in log(FAD) to `floor` at `bad`."""

    ok: float
    bad: float
    floor: float = 0.2

    def __call__(self, distance: float) -> float:
        if not np.isfinite(distance):
            return self.floor
        if distance <= self.ok:
            return 1.0
        t = (np.log(distance) - np.log(self.ok)) / (np.log(self.bad) - np.log(self.ok))
        return float(1.0 - (1.0 - self.floor) * min(1.0, t))


# Calibrations (consensus constants). DSP, measured on single 10-16 s clips against dsp_real.npz
# (`tuneforge fad distance`, `tuneforge bench reward`): real clips of the tuning half 2-38
# (median 5.5), of the held-out half 2.5-35; the synth backend 17-49; beat-gated noise 58-87;
# arpeggios 78-117; a drone 128-168; clicks in silence 173-189. `ok` sits above every real clip
# of the tuning half (x1.2), `bad` near the drone.
# MERT: fadtk's samples_FAD_scores.csv gives per-clip FAD of 23 real 10 s generations
# (MusicGen, MusicLM, Mubert) vs fma_pop of 46-112 (median 66); `ok` sits above the worst of
# them and `bad` at 3x it (provisional until measured with the real MERT on noise).
CURVES = {
    DSP_EMBEDDING: FadCurve(ok=45.0, bad=150.0),
    MERT_EMBEDDING: FadCurve(ok=120.0, bad=360.0),
}


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)).

    Tr((C1 C2)^(1/2)) is computed as the sum of square roots of the eigenvalues of the symmetric
    PSD matrix C1^(1/2) C2 C1^(1/2) (same spectrum as C1 C2), via scipy's `eigh`: no complex
    parts and no failure on singular covariances, unlike a general sqrtm."""
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    cov1, cov2 = (
        np.atleast_2d(np.asarray(cov1, np.float64)),
        np.atleast_2d(np.asarray(cov2, np.float64)),
    )
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (len(mu1), len(mu1)):
        raise FadError(
            f"mismatched statistics {mu1.shape}/{cov1.shape} vs {mu2.shape}/{cov2.shape}"
        )
    root1 = _psd_sqrt(cov1)
    middle = root1 @ cov2 @ root1
    eig = linalg.eigvalsh((middle + middle.T) / 2.0)
    tr_covmean = float(np.sum(np.sqrt(np.clip(eig, 0.0, None))))
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_covmean)
    return max(0.0, value)


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    eig, vec = linalg.eigh((cov + cov.T) / 2.0)
    result: np.ndarray = (vec * np.sqrt(np.clip(eig, 0.0, None))) @ vec.T
    return result


def statistics(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of embedding frames [N, D]."""
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise FadError(f"need at least 2 frames [N, D], got {list(x.shape)}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


@dataclass(frozen=True)
class ReferenceStats:
    embedding: str
    mu: np.ndarray
    cov: np.ndarray
    num_frames: int
    source: str

    @property
    def dim(self) -> int:
        return len(self.mu)


def save_reference(path: str | Path, stats: ReferenceStats) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        embedding=np.array(stats.embedding),
        mu=stats.mu.astype(np.float64),
        cov=stats.cov.astype(np.float32),  # halves the shipped size; FAD error < 1e-4
        num_frames=np.array(stats.num_frames),
        source=np.array(stats.source),
    )
    return path


def load_reference(path: str | Path) -> ReferenceStats:
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            stats = ReferenceStats(
                embedding=str(data["embedding"]),
                mu=np.asarray(data["mu"], np.float64),
                cov=np.asarray(data["cov"], np.float64),
                num_frames=int(data["num_frames"]),
                source=str(data["source"]),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise FadError(f"unreadable FAD reference {path}: {exc}") from exc
    if stats.cov.shape != (stats.dim, stats.dim):
        raise FadError(f"{path}: covariance {stats.cov.shape} does not match mean ({stats.dim})")
    return stats


def load_references(directory: str | Path = REFERENCE_DIR) -> dict[str, ReferenceStats]:
    """Every shipped reference found in `directory`, keyed by embedding name."""
    out = {}
    for embedding, name in REFERENCE_FILES.items():
        if (Path(directory) / name).is_file():
            out[embedding] = load_reference(Path(directory) / name)
    return out


def dsp_frame_embeddings(y: np.ndarray, sr: int) -> np.ndarray:
    """Frames [K, 21] of a mono signal, one per ~0.5 s at 22.05 kHz, built to tell music from
    noise rather than one arrangement from another (so it is gain-, key- and mostly
    timbre-invariant): a coarse 4-band spectral tilt (half weight), spectral contrast in 7
    octave bands (tonal peaks over valleys), the 6 largest shares of the chroma vector (sorted:
    key-invariant tonality), log spectral flatness, and spectral-flux mean/spread and loudness
    spread (rhythmic activity)."""
    import librosa

    y = np.asarray(y, dtype=np.float64)
    rms = float(np.sqrt(np.mean(y**2))) if len(y) else 0.0
    if rms > 1e-8:
        y = y / rms
    if len(y) < DSP_N_FFT:
        y = np.pad(y, (0, DSP_N_FFT - len(y)))
    n_frames = 1 + (len(y) - DSP_N_FFT) // DSP_HOP
    frames = sliding_window_view(y, DSP_N_FFT)[::DSP_HOP] * np.hanning(DSP_N_FFT)
    spectrum = scipy.fft.rfft(frames, axis=1)
    power = spectrum.real**2 + spectrum.imag**2  # [T, F]; scipy's FFT: 87 -> 41 ms (D65)
    tilt_fb = librosa.filters.mel(sr=sr, n_fft=DSP_N_FFT, n_mels=4, fmin=30.0)
    tilt = np.log10(power @ tilt_fb.T + 1e-6)
    tilt -= tilt.mean(axis=1, keepdims=True)
    freqs = np.fft.rfftfreq(DSP_N_FFT, 1.0 / sr)
    contrast_bands = []
    for lo, hi in zip(_OCTAVE_EDGES[:-1], _OCTAVE_EDGES[1:], strict=True):
        # the log is monotonic: sort the powers, take the logs of the ends only (D65)
        band = np.sort(power[:, (freqs >= lo) & (freqs < hi)], axis=1)
        k = max(1, band.shape[1] // 10)
        peaks, valleys = np.log10(band[:, -k:] + 1e-10), np.log10(band[:, :k] + 1e-10)
        contrast_bands.append(peaks.mean(axis=1) - valleys.mean(axis=1))
    contrast = np.stack(contrast_bands, axis=1)
    chroma = power @ librosa.filters.chroma(sr=sr, n_fft=DSP_N_FFT).T
    chroma /= chroma.sum(axis=1, keepdims=True) + 1e-12
    geometric = np.exp(np.mean(np.log(power + 1e-12), axis=1))
    flatness = np.log10(geometric / (np.mean(power, axis=1) + 1e-12) + 1e-10)
    energy = np.log10(power.sum(axis=1) + 1e-10)
    mel_fb = librosa.filters.mel(sr=sr, n_fft=DSP_N_FFT, n_mels=DSP_MELS, fmin=30.0)
    log_mel = np.log10(power @ mel_fb.T + 1e-6)
    flux = np.concatenate([[0.0], np.maximum(np.diff(log_mel, axis=0), 0.0).mean(axis=1)])
    rows = []
    for b in range(max(1, n_frames // DSP_BLOCK)):
        s = slice(b * DSP_BLOCK, (b + 1) * DSP_BLOCK)
        top_chroma = np.sort(chroma[s].mean(axis=0))[::-1][:6]
        rows.append(
            np.concatenate(
                [
                    0.5 * tilt[s].mean(axis=0),
                    contrast[s].mean(axis=0),
                    5.0 * top_chroma,  # scaled so tonality weighs like the other dims
                    [flatness[s].mean(), flux[s].mean(), flux[s].std(), energy[s].std()],
                ]
            )
        )
    return np.asarray(rows, dtype=np.float32)


def clip_fad_frames(clip: Clip, prefer_mert: bool) -> tuple[str, np.ndarray]:
    """(embedding name, frames) this clip contributes to a FAD window: MERT layer-12 frames when
    NeuralModels stored them and `prefer_mert`, else DSP frames (computed once per clip)."""
    if prefer_mert and clip.neural.mert_fad_frames is not None:
        return MERT_EMBEDDING, np.asarray(clip.neural.mert_fad_frames)
    return DSP_EMBEDDING, clip.feature(_dsp_frames)


def _dsp_frames(clip: Clip) -> np.ndarray:
    return dsp_frame_embeddings(clip.y, clip.sr)


class FadPenalty(Penalty):
    """`fad_penalty`: FAD of the miner's recent frame window vs the reference of the same
    embedding, through that embedding's calibrated curve."""

    name = "fad_penalty"

    def __init__(
        self,
        models: NeuralModels | None = None,
        references: dict[str, ReferenceStats] | None = None,
        window_clips: int = WINDOW_CLIPS,
        curves: dict[str, FadCurve] | None = None,
    ) -> None:
        super().__init__(models)
        self.references = load_references() if references is None else references
        self.window_clips = window_clips
        self.curves = CURVES if curves is None else curves

    def _embedding_for(self, clip: Clip, context: RoundContext) -> tuple[str, np.ndarray]:
        mert = self.references.get(MERT_EMBEDDING)
        frames = clip.neural.mert_fad_frames
        prefer_mert = mert is not None and frames is not None and frames.shape[-1] == mert.dim
        return clip_fad_frames(clip, prefer_mert)

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        embedding, frames = self._embedding_for(clip, context)
        reference = self.references.get(embedding)
        if reference is None:
            return ScoreResult(1.0, reason=f"no FAD reference statistics for {embedding}")
        if frames.ndim != 2 or frames.shape[1] != reference.dim:
            return ScoreResult(1.0, reason=f"{embedding} frames do not match the reference")
        # The frames this penalty measured, for the engine to record in history (so the next
        # window is built from the same embedding even when MERT frames were present but unused).
        clip.fad_frames_used = frames
        # History mixes kinds (1-D clip vectors for diversity, frames of other models): ask for
        # more than the window and keep only frames of this reference's embedding.
        recent = context.history.recent_embeddings(
            context.miner_hotkeys[index], 4 * self.window_clips
        )
        past = [np.asarray(e) for e in recent]
        past = [e for e in past if e.ndim == 2 and e.shape[1] == reference.dim]
        past = past[: self.window_clips - 1]
        window = np.concatenate([frames, *past]) if past else frames
        details = {"embedding": embedding, "frames": len(window), "window_clips": 1 + len(past)}
        if len(window) < MIN_FRAMES:
            return ScoreResult(
                1.0, reason=f"too few embeddings ({len(window)} < {MIN_FRAMES})", details=details
            )
        distance = frechet_distance(*statistics(window), reference.mu, reference.cov)
        value = self.curves[embedding](distance)
        details["fad"] = round(distance, 3)
        reason = "" if value >= 1.0 else f"FAD {distance:.1f} vs {embedding} reference"
        return ScoreResult(value, reason=reason, details=details)
