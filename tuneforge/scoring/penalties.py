"""Penalties: multipliers in [0, 1] (1 = nothing wrong) applied to the composite score.

`final = composite × Π penalties` (DESIGN.md §5). Each penalty class has `name` and
`penalty(clip, challenge, context, index) -> ScoreResult`; `fad_penalty` lives in `fad.py`.
Thresholds below are measured on synthesised music vs the same music degraded (see tests).
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.fft

from tuneforge.scoring import features, signal_quality
from tuneforge.scoring.base import Challenge, Penalty, RoundContext, ScoreResult
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.copy_index import CopyIndex, stored_codes
from tuneforge.scoring.envelope_features import flux_shape
from tuneforge.scoring.fingerprint import BANDS, fingerprint
from tuneforge.scoring.weights import duration_multiplier

if TYPE_CHECKING:
    from tuneforge.scoring.neural import NeuralModels

FINGERPRINT_HISTORY_LIMIT = 500  # earlier clips in the per-round copy index
# Abrupt cut-offs (envelope_features.FluxShape.decay_peakiness): no real clip of the tuning half
# exceeded 10.9 (95% under 7.7); dry synthesised notes measured 10-59 (median 21), time-reversed
# clips up to 150. The penalty starts above the real range and takes 60% at 30.
ABRUPT_DECAY_RANGE = (11.0, 30.0)
ABRUPT_DECAY_MAX_LOSS = 0.6
# ...unless those sharpest falls are releases that keep decaying (FluxShape.release_tail_db,
# D45): a fall followed by 5 dB more of decay within ~185 ms still costs in full, one followed
# by 8 dB or more (a room's reverberation) costs nothing. A dead stop is followed by a flat or
# rising mix: synth fakes of the tuning half measured at most 3.4 dB, reversed clips 1.6 dB.
RELEASE_TAIL_EXCUSES_DB = (5.0, 8.0)
# Envelopes played backwards (envelope_features.FluxShape.envelope_skewness): sounds that swell and
# stop dead. Real music of the tuning half measured 0.07-5.4 (never negative); the same clips
# reversed -2.5-0.65. A skewness of 0 is as many swells as decays, which no played take has, so
# the penalty starts there (D52; it started at -0.3 and let reversed legato strings and organ,
# at -0.3-0, through) and takes 50% at -1.5: a real clip just under 0 loses a percent or two.
BACKWARDS_SKEW_RANGE = (0.0, -1.5)
BACKWARDS_MAX_LOSS = 0.5


def _ramp(value: float, start: float, end: float) -> float:
    """0 at `start`, 1 at `end`, linear and clamped (either direction)."""
    if end == start:
        return float(value >= end)
    return float(np.clip((value - start) / (end - start), 0.0, 1.0))


class DurationPenalty(Penalty):
    """1.0 within ±5% of the requested duration, linear to 0.0 at ±50%."""

    name = "duration_penalty"

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        actual = clip.original.duration_seconds
        value = duration_multiplier(actual, challenge.duration_seconds)
        reason = (
            ""
            if value >= 1.0
            else (f"duration {actual:.2f} s vs requested {challenge.duration_seconds:.2f} s")
        )
        return ScoreResult(
            value,
            reason,
            {"duration_s": round(actual, 3), "requested_s": challenge.duration_seconds},
        )


# --- artifact detectors: each returns (multiplier, facts, complaint) ------------------------

SILENT_PEAK_DBFS = -60.0
# Sample-domain normalised autocorrelation: real takes stay below LOOP_NONE_AT (tuning half:
# 51 real clips at most 0.71, 95 % under 0.59, since even a repeated passage is played or
# rendered again, not pasted); bars pasted sample-for-sample over most of a clip reach 0.8-0.9.
LOOP_NONE_AT = 0.80
LOOP_FULL_AT = 0.97  # ...and a repeated loop (even with noise at 20 dB SNR) sits above it
LOOP_MULTIPLIER = 0.2  # what a clip that is one loop on repeat keeps
LOOP_MIN_LAG_S = 0.5


def loop_correlation(clip: Clip) -> tuple[float, float]:
    """(max normalised autocorrelation, its lag in s) over lags 0.5 s .. half the clip.

    Sample-domain, via FFT, so it is shift-invariant to the sample: a loop that starts at any
    offset still correlates ~1.0 with itself one loop length later."""

    def compute(c: Clip) -> tuple[float, float]:
        y = np.asarray(c.y, dtype=np.float64)
        n = len(y)
        lo, hi = int(LOOP_MIN_LAG_S * c.sr), n // 2
        if hi <= lo:
            return 0.0, 0.0
        y = y - y.mean()
        # Lags below `hi` need only n + hi points of padding to come out of the circular
        # correlation unwrapped; a size with small prime factors, not the next power of two
        # above 2n, is 4x faster on a 30 s clip (D65).
        size = scipy.fft.next_fast_len(n + hi, real=True)
        spectrum = scipy.fft.rfft(y, size)
        auto = scipy.fft.irfft(spectrum * np.conj(spectrum), size)[:hi]
        energy = np.concatenate([[0.0], np.cumsum(y * y)])
        lags = np.arange(lo, hi)
        head = energy[n - lags]  # energy of y[0 : n - lag]
        tail = energy[n] - energy[lags]  # energy of y[lag : n]
        peak_energy = max(float(energy[n]), 1e-20)
        # ignore lags whose overlap is (near) silent: 0/0 is not a loop
        valid = np.minimum(head, tail) > 1e-6 * peak_energy
        if not valid.any():
            return 0.0, 0.0
        r = np.where(valid, auto[lo:hi] / np.sqrt(np.maximum(head * tail, 1e-30)), 0.0)
        k = int(np.argmax(r))
        return float(np.clip(r[k], 0.0, 1.0)), float((lo + k) / c.sr)

    return clip.feature(compute)


CLICK_WINDOW_S = 0.0005  # a click's energy sits within half a millisecond...
CLICK_CONTEXT_S = (0.001, 0.010)  # ...while 1-10 ms before AND after it the signal is quieter
CLICK_RATIO = 50.0  # click energy over the louder of its two surroundings...
CLICK_LEVEL = 300.0  # ...and over the clip's mean impulsive energy: audible above the music.
# Both measured on fadtk's real generations (MusicGen's sharpest attacks reach ratio ~950 but
# level <= 160) against beat clicks (ratio > 10^4, level > 900).
CLICK_MERGE_S = 0.005
CLICKS_TOLERATED_PER_MINUTE = 20.0  # a stray click every few seconds is not yet a broken clip


def click_count(clip: Clip) -> int:
    """Clicks/discontinuities: bursts of second-difference energy (the signal's impulsive part)
    lasting under a millisecond that stand CLICK_RATIO above both the 1-10 ms before and the
    1-10 ms after them and CLICK_LEVEL above the clip's mean. A drum hit or a plucked note
    keeps sounding after its attack, so its "after" is loud and it is not a click; a step, a
    spike or a splice is gone at once.
    Hits closer than 5 ms are one click."""

    def compute(c: Clip) -> int:
        # The original, not the analysis signal: resampling smears a one-sample spike into
        # ringing that reaches the "after" window.
        y = np.asarray(c.original.mono(), dtype=np.float64)
        rate = c.original.sample_rate
        if len(y) < 64 or not np.all(np.isfinite(y)):
            return 0
        energy = np.diff(y, n=2) ** 2
        n = len(energy)
        half = max(1, int(CLICK_WINDOW_S * rate / 2))
        near, far = (max(half + 1, int(s * rate)) for s in CLICK_CONTEXT_S)
        # Running sums and positions, padded with their end values so that a window shifted
        # past either end is a slice that stops at the edge (slices, not gathers: D65).
        pad = far
        cumulative = np.concatenate([np.zeros(pad + 1), np.cumsum(energy)])
        cumulative = np.concatenate([cumulative, np.full(pad, cumulative[-1])])
        position = np.clip(np.arange(-pad, n + pad + 1), 0, n)

        def mean(start: int, stop: int, at: np.ndarray | None = None) -> np.ndarray:
            """Mean energy over [i + start, i + stop) for each i in `at` (every i: None),
            clipped to the clip."""
            if at is None:
                low: slice | np.ndarray = slice(pad + start, pad + start + n)
                high: slice | np.ndarray = slice(pad + stop, pad + stop + n)
            else:
                low, high = at + (pad + start), at + (pad + stop)
            count = np.maximum(position[high] - position[low], 1)
            means: np.ndarray = (cumulative[high] - cumulative[low]) / count
            return means

        level = float(np.mean(energy)) + 1e-12
        floor = 1e-4 * level  # digital silence around a click
        burst = mean(-half, half + 1)
        # only bursts loud enough to be heard need their surroundings (a few of n)
        loud = np.flatnonzero(burst > CLICK_LEVEL * level)
        before, after = mean(-far, -near, loud), mean(near, far, loud)
        hits = loud[burst[loud] > CLICK_RATIO * (np.maximum(before, after) + floor)]
        hits = hits[(hits >= far) & (hits < n - far)]  # both surroundings must exist
        if len(hits) == 0:
            return 0
        return 1 + int(np.sum(np.diff(hits) > int(CLICK_MERGE_S * rate)))

    return clip.feature(compute)


def spectral_holes(clip: Clip) -> list[tuple[float, float]]:
    """(low Hz, high Hz) of bands ≥ 300 Hz wide, inside the occupied bandwidth (100 Hz .. the
    99% rolloff), lying 40 dB under the spectrum's ±500 Hz maximum: notches a codec or a broken
    generator leaves, which music does not have once averaged over time."""

    def compute(c: Clip) -> list[tuple[float, float]]:
        from scipy.ndimage import maximum_filter1d

        spectrum = features.long_term_spectrum_db(c)
        freqs = features.fft_frequencies(c)
        power = 10.0 ** (spectrum / 10.0)
        cumulative = np.cumsum(power) / max(float(power.sum()), 1e-30)
        top = freqs[min(len(freqs) - 1, int(np.searchsorted(cumulative, 0.99)))]
        bin_hz = freqs[1] - freqs[0]
        reference = maximum_filter1d(spectrum, size=int(1000 / bin_hz) | 1)
        band = (freqs >= 100.0) & (freqs <= top)
        hole = band & (spectrum < reference - 40.0)
        padded = np.concatenate([[0], hole.astype(np.int8), [0]])
        edges = np.diff(padded)
        starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
        min_bins = int(300 / bin_hz)
        return [
            (float(freqs[s]), float(freqs[e - 1]))
            for s, e in zip(starts, ends, strict=True)
            if e - s >= min_bins
        ]

    return clip.feature(compute)


def noise_likeness(clip: Clip) -> tuple[float, float, float]:
    """(0..1 how much the clip is steady broadband noise, median flatness, frame-RMS CV).

    Noise is flat-spectrum AND steady; drums are flat-spectrum but pulse, music is not flat."""
    flatness = float(np.median(features.spectral_flatness(clip)))
    frame_rms = features.rms(clip)
    mean = float(frame_rms.mean())
    cv = float(frame_rms.std() / mean) if mean > 1e-9 else 0.0
    return _ramp(flatness, 0.15, 0.30) * _ramp(cv, 0.40, 0.20), flatness, cv


def backwards_multiplier(envelope_skewness: float) -> float:
    """What a clip keeps for envelopes that swell and stop dead: 1 for any positive skewness
    of its level changes, down to 1 - BACKWARDS_MAX_LOSS at BACKWARDS_SKEW_RANGE's end."""
    return 1.0 - BACKWARDS_MAX_LOSS * _ramp(envelope_skewness, *BACKWARDS_SKEW_RANGE)


class ArtifactPenalty(Penalty):
    """Silence, steady noise, hard clipping, clicks, spectral holes, dropouts, sounds that stop
    dead instead of decaying, envelopes played backwards, and loops.

    Multiplier = product of each detector's multiplier; details hold every measured fact."""

    name = "artifact_penalty"

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        details: dict[str, Any] = {}
        complaints: list[str] = []
        peak = signal_quality.true_peak(clip)
        details["true_peak_dbfs"] = round(peak, 2)
        if peak < SILENT_PEAK_DBFS:
            return ScoreResult(0.0, f"silent (peak {peak:.1f} dBFS)", details)
        samples = clip.original.samples
        ac_peak = float(np.abs(samples - samples.mean(axis=1, keepdims=True)).max())
        if ac_peak < 10.0 ** (SILENT_PEAK_DBFS / 20.0):  # a constant offset is silence too
            return ScoreResult(0.0, "silent (constant DC level)", details)

        multiplier = 1.0
        noise, flatness, cv = noise_likeness(clip)
        details.update(noise_likeness=round(noise, 3), flatness=round(flatness, 4))
        details["rms_cv"] = round(cv, 3)
        if noise > 0:
            multiplier *= 1.0 - noise
            complaints.append(f"steady broadband noise ({noise:.0%})")

        clipped = signal_quality.clipping_fraction(clip)
        details["clipped_fraction"] = round(clipped, 5)
        if clipped > 0.001:  # 0.1% of samples flat at full scale: audible
            multiplier *= 1.0 - 0.7 * _ramp(clipped, 0.001, 0.05)
            complaints.append(f"hard clipping on {clipped:.2%} of samples")

        clicks = click_count(clip)
        per_minute = clicks / max(clip.duration_seconds / 60.0, 1.0 / 60.0)
        details.update(clicks=clicks, clicks_per_minute=round(per_minute, 1))
        if per_minute > CLICKS_TOLERATED_PER_MINUTE:
            multiplier *= 1.0 - 0.7 * _ramp(per_minute, CLICKS_TOLERATED_PER_MINUTE, 120.0)
            complaints.append(f"{clicks} clicks/discontinuities")

        holes = spectral_holes(clip)
        details["spectral_holes_hz"] = [[round(lo), round(hi)] for lo, hi in holes]
        if holes:
            multiplier *= max(0.4, 1.0 - 0.2 * len(holes))
            complaints.append(f"{len(holes)} spectral hole(s)")

        gaps = signal_quality.dropouts(clip)
        details["dropouts"] = [[round(s, 3), round(d, 3)] for s, d in gaps]
        if gaps:
            multiplier *= max(0.3, 1.0 - 0.25 * len(gaps))
            complaints.append(f"{len(gaps)} dropout(s)")

        shape = flux_shape(clip)
        details["decay_peakiness"] = round(shape.decay_peakiness, 2)
        details["release_tail_db"] = round(shape.release_tail_db, 2)
        cutoffs = _ramp(shape.decay_peakiness, *ABRUPT_DECAY_RANGE) * (
            1.0 - _ramp(shape.release_tail_db, *RELEASE_TAIL_EXCUSES_DB)
        )
        if cutoffs > 0:
            multiplier *= 1.0 - ABRUPT_DECAY_MAX_LOSS * cutoffs
            complaints.append(
                f"sounds stop dead instead of decaying (peakiness {shape.decay_peakiness:.1f},"
                f" {shape.release_tail_db:.1f} dB of decay after)"
            )

        details["envelope_skewness"] = round(shape.envelope_skewness, 3)
        backwards = backwards_multiplier(shape.envelope_skewness)
        if backwards < 1.0:
            multiplier *= backwards
            complaints.append(
                f"sounds swell and stop dead, as if played backwards "
                f"(envelope skewness {shape.envelope_skewness:.2f})"
            )

        loop_r, loop_lag = loop_correlation(clip)
        details.update(loop_correlation=round(loop_r, 4), loop_lag_s=round(loop_lag, 3))
        loop_share = _ramp(loop_r, LOOP_NONE_AT, LOOP_FULL_AT)
        if loop_share > 0:
            multiplier *= 1.0 - (1.0 - LOOP_MULTIPLIER) * loop_share
            complaints.append(f"repeats itself every {loop_lag:.2f} s (r={loop_r:.3f})")

        return ScoreResult(multiplier, "; ".join(complaints), details)


class FingerprintPenalty(Penalty):
    """0.0 when the clip is a (disguised) copy of another clip of this round or of an earlier
    clip in the local history — tempo, pitch, noise, EQ, offset and splices included — else
    1.0. The network-wide index is consulted by the validator (validator/copies.py)."""

    name = "fingerprint_penalty"

    def __init__(self, models: NeuralModels | None = None) -> None:
        super().__init__(models)
        self._lock = threading.Lock()
        # history codes by fingerprint digest: a round re-reads the same history entries
        self._codes: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._round: tuple[weakref.ref[RoundContext], CopyIndex, list[str]] | None = None

    def _stored_codes(self, matrix: np.ndarray) -> np.ndarray:
        digest = hashlib.blake2b(matrix.tobytes(), digest_size=16).digest() + bytes(
            str(matrix.shape), "ascii"
        )
        codes = self._codes.get(digest)
        if codes is None:
            codes = stored_codes(matrix)
            self._codes[digest] = codes
            while len(self._codes) > 4 * FINGERPRINT_HISTORY_LIMIT:
                self._codes.popitem(last=False)
        return codes

    def _index(self, context: RoundContext) -> tuple[CopyIndex, list[str]]:
        """One index per round: the round's clips first (keys 0..n-1), then the history."""
        if self._round is not None and self._round[0]() is context:
            return self._round[1], self._round[2]
        matrices: list[np.ndarray] = []
        labels: list[str] = []
        for clip, hotkey in zip(context.clips, context.miner_hotkeys, strict=True):
            matrices.append(fingerprint(clip))
            labels.append(f"another clip of this round (from {hotkey})")
        for hotkey, earlier in context.history.fingerprints(FINGERPRINT_HISTORY_LIMIT):
            # entries of an older fingerprint format cannot be compared: skipped
            if earlier.dtype == np.uint8 and earlier.ndim == 2 and earlier.shape[0] == BANDS:
                matrices.append(earlier)
                labels.append(f"an earlier clip from {hotkey}")
        index = CopyIndex(lambda key: matrices[key])
        for key, matrix in enumerate(matrices):
            index.add_codes(key, self._stored_codes(matrix))
        self._round = (weakref.ref(context), index, labels)
        return index, labels

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        with self._lock:
            copy_index, labels = self._index(context)
            found = copy_index.search(fingerprint(clip), exclude=frozenset({index}))
        details: dict[str, Any] = {"compared_with": len(labels) - 1}
        if not found:
            return ScoreResult(1.0, "", details)
        best = found[0]
        match = best.match
        details.update(
            matched=labels[best.key],
            similarity=match.similarity,
            covered_s=match.covered_s,
            semitones=match.semitones,
            tempo=match.tempo,
        )
        return ScoreResult(
            0.0,
            f"copy of {labels[best.key]}: {match.covered_s:.1f} s match, similarity"
            f" {match.similarity:.2f}, {match.semitones:+d} semitones, tempo x{match.tempo:.3f}",
            details,
        )


class CataloguePenalty(Penalty):
    """The engine's side of the public catalogue check: 1.0 here, zeroed afterwards by the
    validator for a clip AcoustID knows (validator/catalogue.py; network lookups stay out of
    the engine)."""

    name = "catalogue_penalty"

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        return ScoreResult(1.0, "", {"catalogue": "looked up by the validator"})
