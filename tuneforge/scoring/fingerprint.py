"""Local audio fingerprints: is this clip (nearly) a copy of another one, shifted or rescaled?

Two kinds, never compared with each other:
- chromaprint (libchromaprint via pyacoustid): a uint32 sub-fingerprint every ~0.124 s. Matching
  slides one over the other and takes the lowest bit error rate (BER) over the overlap: a copy with
  gain/noise sits near 0.0-0.1, unrelated music near 0.4-0.5.
- a numpy landmark hash (the fallback when libchromaprint is absent): spectral peak pairs hashed
  as (f1, f2, dt), matched by counting hashes that agree on one time offset.
Both are gain-invariant and shift-invariant.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from loguru import logger

from tuneforge.scoring.clip import Clip

CHROMAPRINT_ITEM_S = 4096 / 3 / 11025  # chromaprint's sub-fingerprint hop (≈0.124 s)
MIN_OVERLAP_S = 4.0  # a match must cover at least this much audio (or the shorter clip)
# Chromaprint emits its first item only after ~2.6 s of audio, so a 3-4 s clip yields 3-11 items
# and unrelated short pieces then "match" by chance (measured: synth seeds at 4 s, similarity
# 1.0). Fewer items than this cannot be judged: such pairs count as no match.
MIN_CHROMAPRINT_ITEMS = 16
# similarity = 1 - BER/0.5 over the best overlap, so unrelated audio ≈ 0. Measured: copies
# shifted, rescaled, low-passed or with noise down to 10 dB SNR ≥ 0.86; independent synth pieces
# in the same key, tempo and genre ≤ 0.5 (they share accompaniment patterns). Threshold between.
MATCH_SIMILARITY = 0.7


@cache
def chromaprint_available() -> bool:
    try:
        import chromaprint  # noqa: F401
    except ImportError as exc:
        logger.warning("libchromaprint not found ({}); using the numpy landmark fingerprint", exc)
        return False
    return True


def fingerprint(clip: Clip) -> np.ndarray:
    """The clip's fingerprint (cached): uint32 [items] from chromaprint, else int64 [n, 2]
    landmark (hash, frame) rows."""

    def compute(c: Clip) -> np.ndarray:
        if chromaprint_available():
            return chromaprint_fingerprint(c.y, c.sr)
        return landmark_fingerprint(c)

    return clip.feature(compute)


def chromaprint_fingerprint(y: np.ndarray, sr: int) -> np.ndarray:
    """Raw chromaprint sub-fingerprints of mono float audio."""
    import chromaprint

    pcm = (np.clip(y, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    try:
        printer = chromaprint.Fingerprinter()
        printer.start(sr, 1)
        printer.feed(pcm)
        encoded = printer.finish()
        if not encoded:
            return np.zeros(0, dtype=np.uint32)
        raw, _ = chromaprint.decode_fingerprint(encoded)
    except chromaprint.FingerprintError as exc:  # too little audio: nothing to match on
        logger.debug("chromaprint failed: {}", exc)
        return np.zeros(0, dtype=np.uint32)
    return np.asarray(raw, dtype=np.uint32)


def landmark_fingerprint(clip: Clip) -> np.ndarray:
    """Peak-pair hashes [n, 2] = (hash, anchor frame) from the clip's shared STFT."""
    from scipy.ndimage import maximum_filter

    from tuneforge.scoring.features import stft_magnitude

    log_mag = np.log(stft_magnitude(clip)[:512] + 1e-6)  # bins up to ~5.5 kHz
    peaks = (log_mag == maximum_filter(log_mag, size=(15, 9))) & (log_mag > log_mag.mean() + 2.0)
    freq, frame = np.nonzero(peaks)
    order = np.argsort(frame, kind="stable")
    freq, frame = freq[order], frame[order]
    fan_out, max_dt = 6, 63
    hashes, anchors = [], []
    for k in range(1, fan_out + 1):  # pair each peak with the next `fan_out` peaks in time
        dt = frame[k:] - frame[:-k]
        keep = (dt > 0) & (dt <= max_dt)
        f1, f2 = freq[:-k][keep].astype(np.int64), freq[k:][keep].astype(np.int64)
        hashes.append((f1 << 15) | (f2 << 6) | dt[keep])
        anchors.append(frame[:-k][keep])
    if not hashes:
        return np.zeros((0, 2), dtype=np.int64)
    return np.stack([np.concatenate(hashes), np.concatenate(anchors)], axis=1).astype(np.int64)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """How much `a` and `b` look like the same audio, 0 (unrelated) .. 1 (identical)."""
    if a.ndim != b.ndim or a.dtype != b.dtype or len(a) == 0 or len(b) == 0:
        return 0.0
    if a.ndim == 1:
        return _chromaprint_similarity(a, b)
    return _landmark_similarity(a, b)


def _signed_bits(items: np.ndarray) -> np.ndarray:
    """[n] uint32 -> [n, 32] float of ±1 (bit set / clear)."""
    bits = np.unpackbits(items.astype("<u4").view(np.uint8).reshape(-1, 4), axis=1)
    return bits.astype(np.float32) * 2.0 - 1.0


def _chromaprint_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """1 - (lowest BER over every alignment with enough overlap) / 0.5, clamped to [0, 1].

    Agreeing bits at every offset at once: the ±1 bit planes cross-correlated by FFT."""
    n, m = len(a), len(b)
    if min(n, m) < MIN_CHROMAPRINT_ITEMS:
        return 0.0
    min_items = max(1, int(min(MIN_OVERLAP_S / CHROMAPRINT_ITEM_S, n, m)))
    size = 1 << int(np.ceil(np.log2(n + m)))
    spectrum_a = np.fft.rfft(_signed_bits(a), size, axis=0)
    spectrum_b = np.fft.rfft(_signed_bits(b), size, axis=0)
    # cross[k] = Σ_t Σ_bit A[t + k]·B[t]; negative k wrap to the end of the array
    cross = np.fft.irfft((spectrum_a * np.conj(spectrum_b)).sum(axis=1), size)
    lags = np.concatenate([np.arange(0, n), np.arange(-(m - 1), 0)])
    values = np.concatenate([cross[:n], cross[size - (m - 1) :]]) if m > 1 else cross[:n]
    overlap = np.where(lags >= 0, np.minimum(n - lags, m), np.minimum(m + lags, n))
    valid = overlap >= min_items
    if not valid.any():
        return 0.0
    agreement = (values[valid] / (32.0 * overlap[valid]) + 1.0) / 2.0
    best_ber = float(np.clip(1.0 - agreement.max(), 0.0, 0.5))
    return float(max(0.0, 1.0 - best_ber / 0.5))


def _landmark_similarity(a: np.ndarray, b: np.ndarray) -> float:
    common, index_a, index_b = np.intersect1d(a[:, 0], b[:, 0], return_indices=True)
    if len(common) == 0:
        return 0.0
    # intersect1d keeps one row per hash; enough to find a consistent offset
    offsets = a[index_a, 1] - b[index_b, 1]
    _, counts = np.unique(offsets, return_counts=True)
    aligned = int(counts.max())
    unique_a, unique_b = len(np.unique(a[:, 0])), len(np.unique(b[:, 0]))
    # x3: a noisy copy keeps ~30% of its hashes aligned, unrelated music ~1%
    return float(min(1.0, aligned / max(1, min(unique_a, unique_b)) * 3.0))
