"""A copy index over many fingerprints: which earlier tracks is this clip a disguised copy of?

Two stages, because comparing a clip in full with a million tracks is far too slow:
1. Retrieval. Every stored track contributes one 64-bit code per window (every CODE_HOP
   frames): the signs of fixed random projections of the window's coarse shape (16 bands × 4
   time slices, normalised as in `fingerprint.normalise`). A query computes codes for a
   window every QUERY_HOP frames, each transposition and tempo ratio — over the whole query and
   over ≈ 6 s pieces of it normalised on their own (a splice's parts) — and a stored track is a
   candidate when codes agree on one of the BANDS_OF_BITS slices of bits up to two of its least
   certain bits (multi-probe locality-sensitive hashing), then within MAX_HAMMING on all 64.
   Candidates are voted for by query window groups: each ≈ 3 s region of the query brings its
   own best tracks (both sources of a splice), then the most-voted overall.
2. Verification. At most CANDIDATES are compared in full (`fingerprint.Query.compare`).

Stored codes are a function of the fingerprint alone; CODE_HOP went from 4 to 2 frames (D30),
so rows indexed before have every other window — still found, a little less often.

Pure and in-memory: the API keeps one per process fed from its database, the validator one
over its local history. The first track added with a given audio keeps it: a later identical
track is a copy of the first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tuneforge.scoring import fingerprint as fp

CODE_HOP = 2  # stored windows every ≈ 0.37 s ...
QUERY_HOP = 2  # ... and query windows too: ≤ 1 frame off (every frame found no more copies)
CODE_BITS = 64
BITS_PER_BAND = 16
BANDS_OF_BITS = CODE_BITS // BITS_PER_BAND
PROBE_FLIPS = 4  # per band, also probe with its 4 least certain bits flipped, 1 or 2 at a time
MAX_HAMMING = 14  # a hit counts when the whole 64-bit codes differ in at most 14 bits
POOL_BANDS = 3  # 48 semitone bands -> 16
POOL_FRAMES = 6  # 24 frames -> 4
QUERY_TRANSPOSITIONS = (-1, 0, 1)
QUERY_TEMPOS = (0.95, 1.0, 1.05)
CANDIDATES = 16  # stored tracks verified in full per query, at most
MIN_VOTES = 1  # query window groups that must find a track before it is verified
REGION_FRAMES = 16  # ≈ 3 s of query per region: each region's best tracks are verified ...
PER_REGION = 2  # ... this many of them
_PROJECTION = (
    np.random.default_rng(20261201)
    .standard_normal((CODE_BITS, (fp.BANDS // POOL_BANDS) * (fp.WINDOW_FRAMES // POOL_FRAMES)))
    .astype(np.float32)
)
# probe masks over a band's PROBE_FLIPS least certain bits: none, each one, each pair
_PROBES = np.array(
    [[0] * PROBE_FLIPS]
    + [[int(i == b) for i in range(PROBE_FLIPS)] for b in range(PROBE_FLIPS)]
    + [
        [int(i in (a, b)) for i in range(PROBE_FLIPS)]
        for a in range(PROBE_FLIPS)
        for b in range(a + 1, PROBE_FLIPS)
    ],
    dtype=np.int64,
)  # [probes, PROBE_FLIPS]
_BIT_WEIGHTS = np.uint64(1) << np.arange(CODE_BITS, dtype=np.uint64)
_BAND_MASK = np.uint64((1 << BITS_PER_BAND) - 1)


def window_projections(normalised: np.ndarray, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """(window starts, [windows, CODE_BITS] random projections) of the coarse shape of each
    window starting every `hop` frames (silent windows dropped)."""
    n = normalised.shape[1] - fp.WINDOW_FRAMES + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, CODE_BITS), dtype=np.float32)
    bands = fp.BANDS // POOL_BANDS
    pooled = normalised.reshape(bands, POOL_BANDS, -1).mean(axis=1)  # [16, frames]
    starts = np.arange(0, n, hop)
    # mean of each POOL_FRAMES slice of each window, via a running sum
    cumulative = np.concatenate([np.zeros((bands, 1)), np.cumsum(pooled, axis=1)], axis=1)
    parts = []
    for k in range(fp.WINDOW_FRAMES // POOL_FRAMES):
        first = starts + k * POOL_FRAMES
        parts.append((cumulative[:, first + POOL_FRAMES] - cumulative[:, first]) / POOL_FRAMES)
    shapes = np.stack(parts, axis=2).transpose(1, 0, 2).reshape(len(starts), -1)
    shapes -= shapes.mean(axis=1, keepdims=True)
    sounding = np.abs(shapes).sum(axis=1) > 1e-6
    return starts[sounding], (shapes[sounding] @ _PROJECTION.T).astype(np.float32)


def to_codes(projections: np.ndarray) -> np.ndarray:
    result: np.ndarray = ((projections > 0).astype(np.uint64) * _BIT_WEIGHTS).sum(
        axis=1, dtype=np.uint64
    )
    return result


def stored_codes(matrix: np.ndarray) -> np.ndarray:
    """The uint64 window codes a stored track contributes to the index."""
    normalised = fp.normalise(matrix, context=fp.CODE_EQ_CONTEXT_FRAMES)
    return np.unique(to_codes(window_projections(normalised, CODE_HOP)[1]))


def _band(codes: np.ndarray, band: int) -> np.ndarray:
    return ((codes >> np.uint64(band * BITS_PER_BAND)) & _BAND_MASK).astype(np.uint16)


def query_probes(matrix: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(full codes [w], window group [w], band keys to probe [BANDS_OF_BITS, w, probes]) per
    transposition, tempo and piece of the query (`fingerprint.query_pieces`): one window every
    QUERY_HOP frames, grouped by CODE_HOP frames of the query."""
    variants = []
    for first, end in fp.query_pieces(matrix.shape[1]):
        for semitones in QUERY_TRANSPOSITIONS:
            for tempo in QUERY_TEMPOS:
                piece = matrix[:, first:end]
                normalised = fp.normalise(piece, semitones, tempo, fp.CODE_EQ_CONTEXT_FRAMES)
                starts, projections = window_projections(normalised, QUERY_HOP)
                if len(projections) == 0:
                    continue
                codes = to_codes(projections)
                groups = (first + starts / tempo).astype(np.int64) // CODE_HOP
                keys = []
                for band in range(BANDS_OF_BITS):
                    base = _band(codes, band)
                    bits = slice(band * BITS_PER_BAND, (band + 1) * BITS_PER_BAND)
                    unsure = np.argsort(np.abs(projections[:, bits]), axis=1)[:, :PROBE_FLIPS]
                    masks = (np.int64(1) << unsure.astype(np.int64)) @ _PROBES.T  # distinct bits
                    keys.append(base[:, None] ^ masks.astype(np.uint16))
                variants.append((codes, groups, np.stack(keys)))
    return variants


def _ranked(tracks: np.ndarray, groups: np.ndarray) -> list[int]:
    """Candidates from (track, query window group) votes: the best tracks of each REGION_FRAMES
    stretch of the query first — so each part of a splice brings its own source, however many
    votes the other part's source has — then the rest by total votes; at most CANDIDATES."""
    keys, totals = np.unique(tracks, return_counts=True)
    eligible = set(keys[totals >= MIN_VOTES].tolist())
    total = dict(zip(keys.tolist(), totals.tolist(), strict=True))
    chosen: list[int] = []
    regions = groups * CODE_HOP // REGION_FRAMES
    for region in np.unique(regions):
        local, votes = np.unique(tracks[regions == region], return_counts=True)
        order = np.lexsort((-np.array([total[t] for t in local.tolist()]), -votes))
        picked = [int(t) for t in local[order] if int(t) in eligible][:PER_REGION]
        chosen += [t for t in picked if t not in chosen]
    rest = sorted(eligible - set(chosen), key=lambda t: -total[t])
    by_total = sorted(chosen, key=lambda t: -total[t])
    return (by_total + rest)[:CANDIDATES]


@dataclass(frozen=True)
class Found:
    """A stored track the query copies, with the comparison that proved it."""

    key: int  # the caller's id for the stored track
    match: fp.Match


class CopyIndex:
    """Window codes of stored tracks (append-only) and the search over them.

    `load(key)` returns a stored track's fingerprint matrix for verification (a dict lookup in
    memory, a database read in the API). Memory: 12 bytes per code plus 6 per code and band
    (≈ 36 bytes × ~20 codes per 30 s track)."""

    def __init__(self, load: Callable[[int], np.ndarray | None]) -> None:
        self._load = load
        self._pending_codes: list[np.ndarray] = []
        self._pending_keys: list[np.ndarray] = []
        self._codes = np.zeros(0, dtype=np.uint64)
        self._keys = np.zeros(0, dtype=np.int64)
        self._bands: list[tuple[np.ndarray, np.ndarray]] = []  # sorted band keys, code rows
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, key: int, matrix: np.ndarray) -> None:
        self.add_codes(key, stored_codes(matrix))

    def add_codes(self, key: int, codes: np.ndarray) -> None:
        self.add_many(np.full(len(codes), key, dtype=np.int64), codes, tracks=1)

    def add_many(self, keys: np.ndarray, codes: np.ndarray, tracks: int) -> None:
        """Bulk load: `codes[i]` belongs to track `keys[i]`; `tracks` distinct keys in all."""
        self._pending_codes.append(np.asarray(codes, dtype=np.uint64))
        self._pending_keys.append(np.asarray(keys, dtype=np.int64))
        self._size += tracks

    def _settle(self) -> None:
        """Merge pending codes into the sorted band tables (one sort per batch of adds)."""
        if not self._pending_codes:
            return
        self._codes = np.concatenate([self._codes, *self._pending_codes])
        self._keys = np.concatenate([self._keys, *self._pending_keys])
        self._pending_codes, self._pending_keys = [], []
        self._bands = []
        for band in range(BANDS_OF_BITS):
            keys = _band(self._codes, band)
            rows = np.argsort(keys, kind="stable").astype(np.int32)
            self._bands.append((keys[rows], rows))

    def candidates(self, matrix: np.ndarray, exclude: frozenset[int] = frozenset()) -> list[int]:
        """Stored tracks whose codes lie within MAX_HAMMING of codes of at least MIN_VOTES
        query window groups, most votes first."""
        self._settle()
        if not self._bands:
            return []
        found_keys, found_groups = [], []
        for codes, groups, probes in query_probes(matrix):
            per_probe = probes.shape[2]
            for band, (table, rows) in enumerate(self._bands):
                wanted = probes[band].ravel()
                lo = np.searchsorted(table, wanted, side="left")
                hits = np.searchsorted(table, wanted, side="right") - lo
                total = int(hits.sum())
                if total == 0:
                    continue
                # expand each [lo, lo + hits) range into (query window, stored code row) pairs
                first = np.cumsum(hits) - hits
                stored = rows[np.repeat(lo - first, hits) + np.arange(total)]
                window = np.repeat(np.arange(len(wanted)) // per_probe, hits)
                close = np.bitwise_count(codes[window] ^ self._codes[stored]) <= MAX_HAMMING
                found_keys.append(self._keys[stored[close]])
                found_groups.append(groups[window[close]])
        if not found_keys:
            return []
        pairs = np.unique(
            np.stack([np.concatenate(found_keys), np.concatenate(found_groups)]), axis=1
        )
        if exclude:
            pairs = pairs[:, ~np.isin(pairs[0], np.fromiter(exclude, dtype=np.int64))]
        return _ranked(pairs[0], pairs[1])

    def search(self, matrix: np.ndarray, exclude: frozenset[int] = frozenset()) -> list[Found]:
        """Stored tracks this query copies, most of the query first, each verified in full.

        A track that explains at least one window is a source when all such sources together
        explain `fingerprint.needed_seconds` of the query (one source, or a splice of several)."""
        keys = self.candidates(matrix, exclude)
        if not keys:
            return []
        query = fp.Query(matrix)
        sources = []
        inside = np.zeros(matrix.shape[1], dtype=bool)
        for key in keys:
            stored = self._load(key)
            if stored is None:
                continue
            match = query.compare(fp.prepare_reference(stored))
            if match.covered_s > 0:  # some window matched it (past its `window_bar`)
                sources.append(Found(key, match))
                inside |= match.inside
        if float(inside.sum()) * fp.STEP_S < fp.needed_seconds(query.seconds):
            return []
        return sorted(sources, key=lambda f: (-f.match.covered_s, -f.match.similarity))
