"""Key parsing, key distance and Krumhansl-Schmuckler key finding: pure functions on numbers."""

from __future__ import annotations

import numpy as np
import pytest

from tuneforge.scoring.keys import (
    MAJOR_PROFILE,
    MINOR_PROFILE,
    Key,
    KeyParseError,
    estimate_key,
    fifths_distance,
    key_correlations,
    key_relation,
    key_similarity,
    parse_key,
)


@pytest.mark.parametrize(
    ("text", "tonic", "minor"),
    [("A minor", 9, True), ("F# major", 6, False), ("Bb minor", 10, True), ("Db major", 1, False),
     ("c", 0, False), ("Ebm", 3, True), ("  G   MINOR ", 7, True)],
)  # fmt: skip
def test_key_strings_parse_to_tonic_and_mode(text: str, tonic: int, minor: bool) -> None:
    assert parse_key(text) == Key(tonic, minor)


@pytest.mark.parametrize("text", ["", "H major", "A dorian", "A# #minor", "major", "A minor 7"])
def test_malformed_key_strings_raise_key_parse_error(text: str) -> None:
    with pytest.raises(KeyParseError):
        parse_key(text)


def test_key_names_round_trip_through_parse() -> None:
    for index in range(24):
        key = Key(index % 12, index >= 12)
        assert parse_key(key.name) == key
    assert Key(3, False).name == "Eb major" and Key(9, True).name == "A minor"


def test_key_distance_ranks_exact_over_relative_over_neighbour_over_far() -> None:
    c_major = parse_key("C major")
    exact = key_similarity(c_major, parse_key("C major"))
    relative = key_similarity(c_major, parse_key("A minor"))
    parallel = key_similarity(c_major, parse_key("C minor"))
    neighbour = key_similarity(c_major, parse_key("G major"))
    neighbour_minor = key_similarity(c_major, parse_key("E minor"))  # relative of G major
    far = key_similarity(c_major, parse_key("F# major"))
    assert exact == 1.0
    assert exact > relative > neighbour > far
    assert relative >= parallel > neighbour == neighbour_minor
    assert far == 0.0


def test_key_relations_and_circle_of_fifths_distance() -> None:
    assert key_relation(parse_key("A minor"), parse_key("C major")) == "relative"
    assert key_relation(parse_key("A minor"), parse_key("A major")) == "parallel"
    assert key_relation(parse_key("A minor"), parse_key("E minor")) == "neighbour"
    assert key_relation(parse_key("D major"), parse_key("C major")) == "near"
    assert key_relation(parse_key("D major"), parse_key("Ab major")) == "far"
    assert fifths_distance(parse_key("C major"), parse_key("F# major")) == 6
    assert fifths_distance(parse_key("C major"), parse_key("F major")) == 1
    assert fifths_distance(parse_key("B major"), parse_key("C# major")) == 2


def test_key_finding_recovers_every_key_from_its_own_profile() -> None:
    for tonic in range(12):
        for minor, profile in ((False, MAJOR_PROFILE), (True, MINOR_PROFILE)):
            estimate = estimate_key(np.roll(profile, tonic))
            assert estimate.key == Key(tonic, minor)
            assert estimate.correlation == pytest.approx(1.0)
            assert estimate.margin > 0.0


def test_a_triad_with_its_scale_points_to_its_key() -> None:
    chroma = np.zeros(12)
    chroma[[9, 0, 4]] = 1.0  # A minor triad
    chroma[[2, 5, 7, 11]] = 0.3  # the rest of A natural minor
    assert estimate_key(chroma).key == parse_key("A minor")


def test_flat_or_empty_chroma_correlates_with_no_key() -> None:
    assert np.all(key_correlations(np.ones(12)) == 0.0)
    assert np.all(key_correlations(np.zeros(12)) == 0.0)
    columns = key_correlations(np.stack([np.ones(12), np.roll(MAJOR_PROFILE, 2)], axis=1))
    assert columns.shape == (24, 2)
    assert np.all(columns[:, 0] == 0.0) and int(np.argmax(columns[:, 1])) == 2
