"""Copy fingerprints: the wire format refuses hostile bytes; disguised copies match, different
pieces do not; the index finds originals (and both sources of a splice) among other tracks."""

from __future__ import annotations

import base64
import struct

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from tests.helpers import signals
from tuneforge.core.audio import Audio, resample
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring import fingerprint as fp
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.copy_index import CopyIndex


def _print(audio: Audio) -> np.ndarray:
    return fp.fingerprint(Clip(audio))


def _synth(seed: int, key: str = "A minor", tempo: int = 90, seconds: float = 12) -> Audio:
    from tuneforge.generation.synth import SynthBackend

    challenge = MusicGenerationSynapse(
        prompt="lofi", key=key, tempo_bpm=tempo, duration_seconds=seconds, seed=seed
    )
    return SynthBackend().generate(challenge)


def _speed(audio: Audio, ratio: float) -> Audio:
    """Played `ratio` times faster: tempo x ratio AND pitch up 12·log2(ratio) semitones."""
    slowed = Audio(audio.samples, int(round(audio.sample_rate * ratio)))
    return resample(slowed, audio.sample_rate)


def _excerpt(audio: Audio, start_s: float, seconds: float) -> Audio:
    a = int(start_s * audio.sample_rate)
    return Audio(audio.samples[:, a : a + int(seconds * audio.sample_rate)], audio.sample_rate)


@pytest.fixture(scope="module")
def original() -> Audio:
    return _synth(seed=11, seconds=24)


def test_fingerprint_round_trips_through_the_wire_format(original: Audio) -> None:
    matrix = _print(original)
    assert matrix.shape[0] == fp.BANDS and matrix.dtype == np.uint8
    encoded = fp.encode(matrix)
    assert len(encoded) < 6_000  # ≈ 5 KB for 24 s
    assert np.array_equal(fp.decode(encoded), matrix)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        struct.pack("<BBH", 9, fp.BANDS, 1) + b"\x00" * 24,  # unknown version
        struct.pack("<BBH", 1, 12, 1) + b"\x00" * 6,  # wrong band count
        struct.pack("<BBH", 1, fp.BANDS, 4) + b"\x00" * 10,  # shorter than its header says
        struct.pack("<BBH", 1, fp.BANDS, fp.MAX_FRAMES + 1) + b"\x00" * 10,  # too long
    ],
)
def test_hostile_fingerprints_are_refused(raw: bytes) -> None:
    with pytest.raises(fp.BadFingerprint):
        fp.decode(base64.b64encode(raw).decode())


def test_non_base64_and_oversized_text_is_refused() -> None:
    for text in ("not base64 !!", "A" * (fp.encoded_limit() + 4), "ünïcode"):
        with pytest.raises(fp.BadFingerprint):
            fp.decode(text)


def test_disguised_copies_match_their_original(original: Audio) -> None:
    reference = fp.prepare_reference(_print(original))
    excerpt = _excerpt(original, 3.3, 12)
    band_pass = butter(2, [300, 3000], "bandpass", fs=excerpt.sample_rate, output="sos")
    disguises = {
        "offset, gain and 20 dB noise": signals.scaled(signals.with_noise(excerpt, 20), 0.5),
        "EQ": Audio(sosfilt(band_pass, excerpt.samples).astype(np.float32), 32000),
        "5% faster and higher": _speed(_excerpt(original, 3.3, 12.6), 1.05),
        "5% slower and lower": _speed(_excerpt(original, 3.3, 11.4), 0.95),
    }
    for name, copy in disguises.items():
        match = fp.Query(_print(copy)).compare(reference)
        assert match.is_copy, f"{name}: {match}"


def test_a_match_names_the_copy_s_transposition_from_its_original(original: Audio) -> None:
    """Played faster is higher: the reason a miner reads says +1 semitone, not -1."""
    reference = fp.prepare_reference(_print(original))
    faster = fp.Query(_print(_speed(_excerpt(original, 3.3, 12.6), 1.05))).compare(reference)
    slower = fp.Query(_print(_speed(_excerpt(original, 3.3, 11.4), 0.95))).compare(reference)
    assert (faster.semitones, slower.semitones) == (1, -1)
    assert faster.tempo > 1.0 > slower.tempo


def test_a_transposed_window_matches_at_a_lower_bar_than_an_untransposed_one() -> None:
    """A pitch shifter's smearing costs a copy 0.1-0.2 of correlation, and only a pitch
    shifter puts one piece a semitone from another (D67): the same degraded likeness is a
    copy one band up and not a copy in place."""
    rng = np.random.default_rng(5)
    reference = (rng.integers(0, 12, (fp.BANDS, 160)) * fp.DB_STEP).astype(np.uint8)
    smeared = reference[:, 20:84] + rng.normal(0.0, 16.0, (fp.BANDS, 64))
    in_place = np.clip(np.round(smeared / fp.DB_STEP) * fp.DB_STEP, 0, fp.FLOOR_DB)
    in_place = in_place.astype(np.uint8)
    higher = np.full_like(in_place, int(fp.FLOOR_DB))
    higher[1:] = in_place[:-1]  # one band up: a semitone higher
    level = fp.compare(in_place, reference)
    assert fp.SHIFTED_WINDOW_MATCH <= level.similarity < fp.WINDOW_MATCH
    assert not level.is_copy, level
    shifted = fp.compare(higher, reference)
    assert fp.SHIFTED_WINDOW_MATCH <= shifted.similarity < fp.WINDOW_MATCH
    assert shifted.is_copy and shifted.semitones == 1, shifted


def test_different_pieces_in_the_same_key_and_tempo_are_not_copies() -> None:
    prints = [_print(_synth(seed)) for seed in range(5)]
    for i, query in enumerate(prints):
        q = fp.Query(query)
        for j, other in enumerate(prints):
            if i != j:
                match = q.compare(fp.prepare_reference(other))
                assert not match.is_copy, f"seed {i} vs seed {j}: {match}"


def test_silence_and_noise_are_never_copies() -> None:
    silence = _print(signals.silence(12))
    noise = _print(signals.white_noise(12))
    assert not fp.Query(silence).compare(fp.prepare_reference(silence)).is_copy
    assert (
        not fp.Query(noise)
        .compare(fp.prepare_reference(_print(signals.white_noise(12, seed=3))))
        .is_copy
    )


def test_index_names_the_original_among_other_tracks_and_both_halves_of_a_splice(
    original: Audio,
) -> None:
    kinds = [(1, "C major", 120), (2, "E minor", 100), (3, "A minor", 90), (4, "D major", 110)]
    others = [_synth(seed, key, tempo, 24) for seed, key, tempo in kinds]
    tracks = [_print(original), *(_print(o) for o in others)]
    index = CopyIndex(lambda key: tracks[key])
    for key, matrix in enumerate(tracks):
        index.add(key, matrix)

    copy = signals.with_noise(_speed(_excerpt(original, 2.1, 12.6), 1.05), 20)
    found = index.search(_print(copy))
    assert [f.key for f in found][:1] == [0]

    splice = Audio(
        np.concatenate(
            [_excerpt(original, 1.0, 7).samples, _excerpt(others[0], 4.0, 7).samples], axis=1
        ),
        32000,
    )
    assert {f.key for f in index.search(_print(splice))} == {0, 1}

    fresh = _print(_synth(seed=99, seconds=12))
    assert index.search(fresh) == []


def _with_rests(audio: Audio, starts_s: tuple[float, ...], seconds: float = 1.6) -> Audio:
    samples = audio.samples.copy()
    for start in starts_s:
        samples[:, int(start * audio.sample_rate) : int((start + seconds) * audio.sample_rate)] = 0
    return Audio(samples, audio.sample_rate)


def test_a_splice_whose_part_holds_a_rest_names_both_sources(original: Audio) -> None:
    """A rest is no evidence against a copy: the 6 s part of a splice with a 1.6 s rest in it
    still names its source. (Silent frames used to count as misses, capping every window of
    that part at ≈ 0.66, below WINDOW_MATCH.)"""
    rested = _with_rests(_synth(seed=2, key="E minor", tempo=100, seconds=24), (5.0, 11.0))
    tracks = [_print(original), _print(rested)]
    index = CopyIndex(lambda key: tracks[key])
    for key, matrix in enumerate(tracks):
        index.add(key, matrix)
    for first, second in ((1.0, 3.5), (2.0, 9.5)):  # the rest 1.5 s into the second part
        parts = [_excerpt(original, first, 6).samples, _excerpt(rested, second, 6).samples]
        splice = Audio(np.concatenate(parts, axis=1), rested.sample_rate)
        assert {f.key for f in index.search(_print(splice))} == {0, 1}, (first, second)


def test_each_region_of_a_query_brings_its_own_candidates() -> None:
    """A splice's second source, found by few windows of the query's second half, is verified
    even when many tracks out-vote it over the first half."""
    from tuneforge.scoring import copy_index

    frames_per_group = copy_index.REGION_FRAMES // copy_index.CODE_HOP
    early = np.arange(3 * frames_per_group)  # window groups of the query's first regions
    late = np.arange(6 * frames_per_group, 7 * frames_per_group)
    crowd = np.arange(100, 100 + 2 * copy_index.CANDIDATES)
    tracks = np.concatenate([np.repeat(crowd, len(early)), np.full(2, 7)])
    groups = np.concatenate([np.tile(early, len(crowd)), late[:2]])
    chosen = copy_index._ranked(tracks, groups)
    assert 7 in chosen and len(chosen) == copy_index.CANDIDATES


def test_a_query_long_enough_for_a_splice_is_also_coded_in_pieces_of_its_own() -> None:
    assert fp.query_pieces(40) == [(0, 40)]
    pieces = fp.query_pieces(63)
    assert pieces[0] == (0, 63) and pieces[-1] == (63 - fp.SEGMENT_FRAMES, 63)
    assert all(end - first == fp.SEGMENT_FRAMES for first, end in pieces[1:])


def test_the_bench_counts_a_piece_that_plays_the_same_notes_as_shared_not_false() -> None:
    from tuneforge.tools.bench.copies import RATE, shares_material

    rng = np.random.default_rng(4)
    other = rng.standard_normal(RATE * 20).astype(np.float32)
    assert shares_material(other[3 * RATE : 15 * RATE] * 0.5, other)
    assert not shares_material(rng.standard_normal(RATE * 12).astype(np.float32), other)


def _markov(seed: int, key: str = "A minor", tempo: int = 90) -> Audio:
    from tuneforge.calibration.heldout import markov_piece

    challenge = MusicGenerationSynapse(
        prompt="lofi", key=key, tempo_bpm=tempo, duration_seconds=15, seed=seed
    )
    return markov_piece(challenge)


def test_pieces_written_for_one_challenge_do_not_name_each_other() -> None:
    """Same key, tempo, comping and drums, different seeds: the progression and melody differ,
    and matched windows (a shared chord here and there) do not agree on one alignment."""
    tracks = [_print(_markov(seed)) for seed in (4, 5)]
    index = CopyIndex(lambda key: tracks[key])
    for key, matrix in enumerate(tracks):
        index.add(key, matrix)
    for key, matrix in enumerate(tracks):
        excerpt = matrix[:, 5 : 5 + 64]  # ≈ 12 s, off the stored frames' grid by 5
        assert index.search(excerpt, exclude=frozenset({key})) == [], f"seed {key}"
        assert [f.key for f in index.search(excerpt)][:1] == [key]  # its own source is found


def test_the_bench_cuts_short_queries_and_pools_one_challenge_groups() -> None:
    """One-challenge pieces are also searched with SHORT_QUERY_S excerpts (a short answer's
    coverage rule differs); each group's flags add up into one rate."""
    from tuneforge.tools.bench.copies import RATE, SHORT_QUERY_S, _pooled, disguise

    y = np.random.default_rng(5).standard_normal(RATE * 15).astype(np.float32)
    excerpt = disguise("offset", y, y, np.random.default_rng(1), SHORT_QUERY_S)
    assert len(excerpt) == int(SHORT_QUERY_S * RATE)
    groups = [
        {"flagged": 1, "of": 6, "pairs": ["a ~ b"]},
        {"flagged": 0, "of": 6, "pairs": []},
    ]
    assert _pooled(groups) == {"flagged": 1, "of": 12, "rate": 0.0833, "pairs": ["a ~ b"]}  # type: ignore[arg-type]
