"""Copy fingerprints that survive the cheap disguises: tempo ±5%, pitch ±1 semitone, noise, EQ,
a different start offset, and splices of several sources.

A fingerprint is the clip's log-frequency band energy over time: 48 semitone bands (131 Hz ..
2.1 kHz, where melody and harmony live) every 0.186 s, in dB below the clip's loudest cell,
quantised to 4 dB — small (≈ 5 KB of base64 for 30 s), and the same cells travel to the API
index (`encode` / `decode`).

Matching (`compare`) normalises both sides the same way — each band minus its own moving
average (an EQ is a fixed gain per band: gone), each frame z-scored across bands (gain and noise
floor: gone) — then slides windows of the query over the reference at every frame offset, for
each transposition (±1 semitone is a shift of one band) and tempo ratio (0.95 .. 1.05). A window
whose sounding frames correlate ≥ WINDOW_MATCH (SHIFTED_WINDOW_MATCH transposed) with some place
of the reference is "covered" (silent frames count neither way); the reference is a source of
the query when covered windows that agree on one alignment with it add up to MIN_COVERED_S (or
most of a short query). A splice of two sources covers part of the query from each: both are
named.

Retrieval among millions of references (`segment_codes` / `query_codes`) uses 32-bit sign codes
of coarse window summaries; only the references that share codes are compared in full.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field

import numpy as np

from tuneforge.core.errors import TuneForgeError
from tuneforge.scoring.clip import ANALYSIS_RATE, Clip

N_FFT = 4096
FRAME_HOP = 1024
FRAMES_PER_STEP = 4  # one fingerprint frame every 4 STFT hops (≈ 0.186 s) ...
SMOOTH_HOPS = 8  # ... averaging 8 (≈ 0.37 s): a copy cut half a frame off still lines up
STEP_S = FRAME_HOP * FRAMES_PER_STEP / ANALYSIS_RATE
LOW_HZ = 130.81  # C3
BANDS = 48  # four octaves of semitones: C3 .. B6
FLOOR_DB = 60.0  # cells quieter than this below the loudest are floor
DB_STEP = 4  # cells are kept in 4 dB steps (16 levels, one nibble each on the wire)
MAX_FRAMES = 1024  # ≈ 190 s: longer audio is fingerprinted on its first 190 s
FORMAT_VERSION = 1
_HEADER = struct.Struct("<BBH")  # version, bands, frames

# Matching. Measured on 60 real pieces (37 Bach/Monteverdi/Palestrina renders, fadtk's 23 real
# clips), 12 s excerpts compared in full with every piece (D30): at 0.62 every disguise was caught
# in ≥ 59/60 (pitch-shifted 10 s fadtk clips sit at 0.64-0.72, which 0.7 misses). But at 0.62
# distinct pieces answering one challenge (same key and tempo) matched each other: 8 of 24
# rule-based pieces of different seeds, against 2 of 24 at 0.70, so honest miners of one round
# would zero each other. 0.70 stays until matching separates those (D30).
WINDOW_FRAMES = 24  # ≈ 4.5 s of query per window
WINDOW_HOP = 8  # windows every ≈ 1.5 s
# A window's correlation is the mean over its sounding frames: `normalise` zeroes silent frames,
# and counting them as misses capped a window holding a 1.5 s rest at ≈ 0.62, so the parts of a
# splice (or a copy) with a rest in them matched nothing (D55). Never over fewer than this many
# frames (≈ 3 s): a window of mostly silence does not match on a few chords.
MIN_WINDOW_SOUNDING = 16
# Moving average removed from each band (an EQ is a fixed gain per band). Verification uses
# ≈ 3 s: a 6 s part of a splice, normalised alone, then sees the same band averages as its
# source around it (at ≈ 6 s, D30, short parts fell to 0.55-0.69 against their own source).
# Retrieval codes keep ≈ 6 s: stored codes in the API's database stay valid (D47).
EQ_CONTEXT_FRAMES = 17
CODE_EQ_CONTEXT_FRAMES = 33
TRANSPOSITIONS = (-1, 0, 1)  # semitones tried
TEMPO_RATIOS = (0.95, 0.975, 1.0, 1.025, 1.05)
WINDOW_MATCH = 0.70
# A window transposed by a semitone needs less (D67): only a pitch shifter puts one piece a
# semitone from another, and its smearing costs a copy 0.1-0.2; pieces alike by answering one
# challenge share its key. Tune half: copies' windows from 0.64, distinct pieces' at most 0.59.
SHIFTED_WINDOW_MATCH = 0.63
MIN_COVERED_S = 7.5
MIN_COVERED_SHARE = 0.4  # ... or this share of a long query
MAX_NEEDED_SHARE = 0.7  # a short query needs this share at most
MIN_ACTIVE_FRAMES = WINDOW_FRAMES  # less sounding audio than one window cannot be judged
SEGMENT_FRAMES = 32  # ≈ 6 s pieces of a query are also normalised on their own ...
SEGMENT_HOP = 16  # ... every ≈ 3 s (see query_pieces)
SPECTRUM_GRID = 32  # frames: FFT sizes of the comparison are multiples of this
ALIGNMENT_SLACK = 3  # frames: a copy 5% off in tempo drifts ≈ 3 frames over a 12 s query


class BadFingerprint(TuneForgeError, ValueError):
    """Bytes that are not a fingerprint of this format (hostile or corrupt input)."""

    status = 400
    code = "bad_fingerprint"


@dataclass(frozen=True)
class Match:
    """How much of a query one reference explains."""

    similarity: float  # best window correlation, 0..1
    covered_s: float  # seconds of the query explained by this reference
    query_s: float
    offset_s: float  # where in the reference the best window sits
    semitones: int  # the query's transposition from the reference (+1: a semitone higher)
    tempo: float  # ... and its tempo (1.05: 5% faster)
    # which query frames lie in a matched window (to add up the sources of a splice)
    inside: np.ndarray = field(default_factory=lambda: np.zeros(0, bool), repr=False, compare=False)

    @property
    def is_copy(self) -> bool:
        # only windows past their bar (`window_bar`) cover query frames
        return self.covered_s > 0 and self.covered_s >= needed_seconds(self.query_s)


def window_bar(semitones: np.ndarray) -> np.ndarray:
    """The correlation a window must reach to match, by its transposition."""
    return np.where(semitones == 0, WINDOW_MATCH, SHIFTED_WINDOW_MATCH)


def needed_seconds(query_s: float) -> float:
    """Seconds of a query that copies must explain before it counts as a copy: MIN_COVERED_S
    or MIN_COVERED_SHARE of it, whichever is more, but never more than most of a short query.
    (Every piece of some generators ends on the same tonic chord: one window is not enough.)"""
    return min(max(MIN_COVERED_S, MIN_COVERED_SHARE * query_s), MAX_NEEDED_SHARE * query_s)


# ---- extraction --------------------------------------------------------------------------


def _band_matrix(n_fft: int, rate: int) -> np.ndarray:
    """[BANDS, n_fft//2+1] triangular semitone filters on the FFT bins."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    centres = LOW_HZ * 2.0 ** (np.arange(-1, BANDS + 1) / 12.0)
    weights = np.zeros((BANDS, len(freqs)), dtype=np.float32)
    for b in range(BANDS):
        lo, mid, hi = centres[b], centres[b + 1], centres[b + 2]
        rising = (freqs - lo) / (mid - lo)
        falling = (hi - freqs) / (hi - mid)
        weights[b] = np.clip(np.minimum(rising, falling), 0.0, None)
    # bands narrower than an FFT bin still see their nearest bin
    for b in range(BANDS):
        if weights[b].sum() == 0:
            weights[b, int(np.argmin(np.abs(freqs - centres[b + 1])))] = 1.0
    normalised: np.ndarray = weights / weights.sum(axis=1, keepdims=True)
    return normalised


_BANDS_CACHE: dict[int, np.ndarray] = {}


def extract(y: np.ndarray, rate: int = ANALYSIS_RATE) -> np.ndarray:
    """uint8 [BANDS, frames]: dB below the loudest cell, 0 = loudest .. FLOOR_DB = floor."""
    from scipy.ndimage import uniform_filter1d
    from scipy.signal import stft

    if rate != ANALYSIS_RATE:
        raise ValueError(f"fingerprints are taken at {ANALYSIS_RATE} Hz, got {rate}")
    y = np.asarray(y, dtype=np.float32)[: (MAX_FRAMES * FRAMES_PER_STEP + 1) * FRAME_HOP]
    if len(y) < N_FFT:
        return np.full((BANDS, 0), FLOOR_DB, dtype=np.uint8)
    bands = _BANDS_CACHE.setdefault(rate, _band_matrix(N_FFT, rate))
    _, _, spectrum = stft(y, nperseg=N_FFT, noverlap=N_FFT - FRAME_HOP, boundary=None, padded=False)
    power = bands @ (np.abs(spectrum) ** 2)
    power = uniform_filter1d(power, size=SMOOTH_HOPS, axis=1, mode="nearest")
    power = power[:, SMOOTH_HOPS // 2 :: FRAMES_PER_STEP][:, :MAX_FRAMES]
    db = 10.0 * np.log10(power + 1e-12)
    below = np.clip(db.max(initial=-120.0) - db, 0.0, FLOOR_DB)
    cells: np.ndarray = (np.round(below / DB_STEP) * DB_STEP).astype(np.uint8)
    return cells


def fingerprint(clip: Clip) -> np.ndarray:
    """The clip's fingerprint (cached on the clip)."""
    return clip.feature(_extracted)


def _extracted(clip: Clip) -> np.ndarray:
    return extract(clip.y, clip.sr)


def encode(matrix: np.ndarray) -> str:
    """Base64 of a small header and the cells, two per byte (the wire `fingerprint` field):
    ≈ 5.2 KB for 30 s."""
    matrix = np.asarray(matrix, dtype=np.uint8)[:, :MAX_FRAMES]
    header = _HEADER.pack(FORMAT_VERSION, matrix.shape[0], matrix.shape[1])
    levels = (matrix // DB_STEP).ravel()
    if len(levels) % 2:
        levels = np.append(levels, 0)
    packed = (levels[0::2] << 4) | levels[1::2]
    return base64.b64encode(header + packed.astype(np.uint8).tobytes()).decode("ascii")


def _packed_bytes(bands: int, frames: int) -> int:
    return (bands * frames + 1) // 2


def encoded_limit() -> int:
    """The longest valid `encode` output, for request validation."""
    return 4 * ((_HEADER.size + _packed_bytes(BANDS, MAX_FRAMES) + 2) // 3)


def decode(text: str) -> np.ndarray:
    """The matrix of an `encode`d fingerprint; BadFingerprint for anything else."""
    if not isinstance(text, str) or len(text) > encoded_limit():
        raise BadFingerprint("fingerprint is not a string of bounded size")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise BadFingerprint("fingerprint is not base64") from exc
    if len(raw) < _HEADER.size:
        raise BadFingerprint("fingerprint is truncated")
    version, bands, frames = _HEADER.unpack_from(raw)
    if version != FORMAT_VERSION or bands != BANDS or frames > MAX_FRAMES:
        raise BadFingerprint(f"unsupported fingerprint (v{version}, {bands}x{frames})")
    if len(raw) != _HEADER.size + _packed_bytes(bands, frames):
        raise BadFingerprint("fingerprint length does not match its header")
    packed = np.frombuffer(raw, dtype=np.uint8, offset=_HEADER.size)
    levels = np.stack([packed >> 4, packed & 0x0F], axis=1).ravel()[: bands * frames]
    if levels.size and int(levels.max()) > FLOOR_DB // DB_STEP:
        raise BadFingerprint("fingerprint cell out of range")
    return (levels * DB_STEP).astype(np.uint8).reshape(bands, frames)


# ---- normalisation and comparison -------------------------------------------------------


def normalise(
    matrix: np.ndarray,
    semitones: int = 0,
    tempo: float = 1.0,
    context: int = EQ_CONTEXT_FRAMES,
) -> np.ndarray:
    """float32 [BANDS, frames']: EQ-, gain- and noise-floor-free frames (each band minus its
    `context`-frame moving average), optionally shifted by `semitones` bands and resampled in
    time as if played `tempo` times slower (so a copy played 5% fast, resampled with
    tempo=1.05, lines up with its source). Floor frames are zero."""
    from scipy.ndimage import uniform_filter1d

    level = -np.asarray(matrix, dtype=np.float32)  # dB, 0 = loudest
    if semitones:
        shifted = np.full_like(level, -FLOOR_DB)
        if semitones > 0:
            shifted[:-semitones] = level[semitones:]
        else:
            shifted[-semitones:] = level[:semitones]
        level = shifted
    frames = level.shape[1]
    if tempo != 1.0 and frames > 1:
        positions = np.arange(0.0, frames - 1, 1.0 / tempo)
        left = np.floor(positions).astype(int)
        frac = (positions - left).astype(np.float32)
        level = level[:, left] * (1 - frac) + level[:, np.minimum(left + 1, frames - 1)] * frac
    if level.shape[1] == 0:
        return level
    sounding = level.max(axis=0) > -FLOOR_DB + 20.0  # frames with content 20 dB over the floor
    flat = level - uniform_filter1d(level, size=context, axis=1, mode="nearest")
    flat -= flat.mean(axis=0, keepdims=True)
    norm = np.sqrt((flat**2).sum(axis=0, keepdims=True))
    out = np.where(norm > 1e-3, flat / np.maximum(norm, 1e-3), 0.0)
    out[:, ~sounding] = 0.0
    return out.astype(np.float32)


def query_pieces(frames: int) -> list[tuple[int, int]]:
    """(first, end) query frames normalised together for retrieval (`copy_index`): the whole
    query and, for a query long enough to hold a splice, overlapping SEGMENT_FRAMES pieces on
    their own — the band averages `normalise` removes would otherwise mix a spliced part with
    its neighbour's music, and its codes would find neither source."""
    pieces = [(0, frames)]
    if frames >= SEGMENT_FRAMES + SEGMENT_HOP:
        firsts = list(range(0, frames - SEGMENT_FRAMES + 1, SEGMENT_HOP))
        if firsts[-1] != frames - SEGMENT_FRAMES:
            firsts.append(frames - SEGMENT_FRAMES)  # the query's last piece, too
        pieces += [(a, a + SEGMENT_FRAMES) for a in firsts]
    return pieces


def window_starts(frames: int) -> np.ndarray:
    """Starts of the query windows compared in full: every WINDOW_HOP frames and one ending on
    the last frame — without it the tail of a short query (a 10 s clip's 7 s excerpt) lay in no
    window and could never be explained, so copies fell short of `needed_seconds` (D55)."""
    starts = list(range(0, frames - WINDOW_FRAMES + 1, WINDOW_HOP))
    if starts and starts[-1] != frames - WINDOW_FRAMES:
        starts.append(frames - WINDOW_FRAMES)
    return np.array(starts, dtype=np.int64)


@dataclass(frozen=True)
class Prepared:
    """A normalised reference: its frames and their spectrum, computed once per comparison
    batch."""

    frames: np.ndarray  # [BANDS, n]
    sounding: int


def prepare_reference(matrix: np.ndarray) -> Prepared:
    return Prepared(normalise(matrix), _sounding_frames(matrix))


class Query:
    """A query fingerprint with its windows normalised for every transposition and tempo once,
    so comparing it with many references costs one correlation each.

    Windows are cut from the whole query and from its `query_pieces` normalised on their own:
    the band averages `normalise` removes would otherwise mix the two parts of a splice near the
    joint, and neither part would match its source (D47). Every variant's windows are stacked
    into one array, so a comparison is one batched product per frequency and one inverse FFT,
    not one of each per variant (150 variants for a 30 s query; D65)."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.frames = matrix.shape[1]
        self.seconds = self.frames * STEP_S
        self.sounding = _sounding_frames(matrix)
        windows: list[np.ndarray] = []
        # per window: its variant (transposition, tempo, the piece's first query frame) and
        # its start in the piece's resampled frames
        owners: list[tuple[int, float, int, int]] = []
        for first, end in query_pieces(self.frames):
            for semitones in TRANSPOSITIONS:
                for tempo in TEMPO_RATIOS:
                    # resampled to the reference's time axis: tempo > 1 undoes a speed-up
                    q = normalise(matrix[:, first:end], semitones=semitones, tempo=tempo)
                    for start in window_starts(q.shape[1]).tolist():
                        windows.append(q[:, start : start + WINDOW_FRAMES])
                        owners.append((semitones, tempo, first, start))
        self.windows = np.stack(windows) if windows else np.zeros((0, BANDS, WINDOW_FRAMES))
        table = np.array(owners, dtype=np.float64).reshape(-1, 4)
        self._semitones = table[:, 0].astype(np.int64)
        self._bar = window_bar(self._semitones)
        self._tempo = table[:, 1]
        self._first = table[:, 2].astype(np.int64)
        self._starts = table[:, 3].astype(np.int64)
        sounding = (np.abs(self.windows).sum(axis=1) > 0).sum(axis=1)
        self._over = np.maximum(sounding, MIN_WINDOW_SOUNDING).astype(np.float64)
        self._spectra: dict[int, np.ndarray] = {}

    def _window_spectra(self, size: int) -> np.ndarray:
        """[frequency, window, band]: the windows' conjugate spectra at FFT size `size`
        (computed once per size)."""
        spectra = self._spectra.get(size)
        if spectra is None:
            spectra = np.conj(np.fft.rfft(self.windows, size, axis=2)).transpose(2, 0, 1)
            spectra = np.ascontiguousarray(spectra)
            self._spectra[size] = spectra
        return spectra

    def compare(self, reference: Prepared) -> Match:
        """How much of this query is a (disguised) copy of some part of `reference`: the query
        frames inside windows that match it along one alignment (`_aligned`)."""
        best = Match(0.0, 0.0, self.seconds, 0.0, 0, 1.0)
        n_ref = reference.frames.shape[1]
        if self.sounding < MIN_ACTIVE_FRAMES or reference.sounding < WINDOW_FRAMES:
            return best
        if n_ref < WINDOW_FRAMES or len(self.windows) == 0:
            return best
        # The lags read (window start + k < n_ref) never wrap once the FFT spans the reference;
        # sizes on a grid of SPECTRUM_GRID keep the windows' cached spectra few (D65).
        size = -(-n_ref // SPECTRUM_GRID) * SPECTRUM_GRID
        ref_spec = np.fft.rfft(reference.frames, size, axis=1)  # [band, frequency]
        # cross[w, k] = Σ_band Σ_t W[band, t] · R[band, t + k]: over the window's sounding
        # frames, the mean frame correlation
        per_frequency = np.matmul(self._window_spectra(size), ref_spec.T[:, :, None])[:, :, 0]
        cross = np.fft.irfft(per_frequency.T, size, axis=1)
        corr = cross[:, : n_ref - WINDOW_FRAMES + 1] / self._over[:, None]
        per_window = corr.max(axis=1)
        offsets = corr.argmax(axis=1)
        matched = np.nonzero(per_window >= self._bar)[0]
        tempo = self._tempo[matched]
        first = self._first[matched] + self._starts[matched] / tempo  # in query frames
        # where the reference would hold query frame 0 were this window a copy
        alignment = offsets[matched] - self._starts[matched] - self._first[matched] * tempo
        inside = _aligned(alignment, first, first + WINDOW_FRAMES / tempo, self.frames)
        # the first best window in variant order: of those that match, if any do
        shown = matched if len(matched) else np.arange(len(per_window))
        top = int(shown[np.argmax(per_window[shown])])
        if per_window[top] > best.similarity:
            best = Match(
                float(per_window[top]), 0.0, self.seconds, int(offsets[top]) * STEP_S,
                int(self._semitones[top]), float(self._tempo[top]),
            )  # fmt: skip
        return Match(
            round(max(0.0, best.similarity), 4),
            round(float(inside.sum()) * STEP_S, 3),
            self.seconds,
            best.offset_s,
            best.semitones,
            best.tempo,
            inside,
        )


def _aligned(alignment: np.ndarray, first: np.ndarray, end: np.ndarray, frames: int) -> np.ndarray:
    """Query frames inside matched windows that agree on one alignment with the reference.

    A copy keeps its source's timeline, so its windows all find the reference at one offset
    (within ALIGNMENT_SLACK frames: a tempo change drifts); windows of a different piece that
    happen to share a chord land at offsets of their own and are not added up. Of the matched
    windows, the first whose agreeing windows cover the most frames gives the answer."""
    if len(alignment) == 0:
        return np.zeros(frames, dtype=bool)
    agree = np.abs(alignment[None, :] - alignment[:, None]) <= ALIGNMENT_SLACK  # [hit, hit]
    # each hit's frames as +1 at its first frame and -1 after its last: a cumulative sum of the
    # agreeing hits' rows counts how many cover each frame
    low = np.clip(np.round(first).astype(np.int64), 0, frames)
    high = np.clip(np.ceil(end).astype(np.int64), 0, frames)
    edges = np.zeros((len(alignment), frames + 1))
    rows = np.nonzero(high > low)[0]
    np.add.at(edges, (rows, low[rows]), 1.0)
    np.add.at(edges, (rows, high[rows]), -1.0)
    covered = np.cumsum(agree.astype(np.float64) @ edges, axis=1)[:, :frames] > 0.5
    return np.asarray(covered[int(np.argmax(covered.sum(axis=1)))])


def compare(query: np.ndarray, reference: np.ndarray) -> Match:
    """How much of `query` is a (disguised) copy of some part of `reference` (both `extract`
    matrices)."""
    return Query(query).compare(prepare_reference(reference))


def _sounding_frames(matrix: np.ndarray) -> int:
    if matrix.shape[1] == 0:
        return 0
    return int((matrix.min(axis=0) < FLOOR_DB - 20).sum())
