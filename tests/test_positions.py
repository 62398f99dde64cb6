import pytest
from hypothesis import given
from hypothesis import strategies as st

from mamcrawler.positions import format_position, parse_position


@pytest.mark.parametrize(
    ("raw", "sort_key", "kind"),
    [
        ("1", 1, "main"), ("01", 1, "main"), ("Book 1", 1, "main"), ("#3", 3, "main"), ("2.0", 2, "main"),
        ("Book Two", 2, "main"), ("Vol. 4", 4, "main"), ("III", 3, "main"), ("third", 3, "main"),
        ("2.5", 2.5, "novella"), ("0", 0, "prequel"), ("0.5", 0.5, "prequel"), ("41", 41, "main"),
    ],
)
def test_parse_positions(raw, sort_key, kind):
    pos = parse_position(raw)
    assert pos is not None and pos.raw == raw
    assert pos.sort_key == sort_key and pos.kind == kind


def test_omnibus_covers_its_range():
    pos = parse_position("1-3")
    assert pos.kind == "omnibus" and (pos.lo, pos.hi) == (1, 3) and pos.covered == [1, 2, 3]
    assert parse_position("Books 4–6").covered == parse_position("4–6").covered == [4, 5, 6]


def test_parts_and_nonsense():
    pos = parse_position("3, Part 2")
    assert pos.sort_key == 3 and pos.part == 2
    assert parse_position(None) is None and parse_position("  ") is None
    assert parse_position("soon").kind == "unknown" and parse_position("soon").covered == []
    assert parse_position("-1").kind == "unknown"
    assert parse_position("2015").kind == "main"  # ABS keeps what the tag says; < 10,000 stays a number
    assert parse_position("123456").kind == "unknown"
    assert parse_position(3).sort_key == 3  # a numeric sequence from a bad PATCH


def test_novellas_and_prequels_cover_nothing():
    assert parse_position("2.5").covered == [] and parse_position("0").covered == []


@given(st.integers(min_value=1, max_value=9999))
def test_integers_round_trip(n):
    for raw in (str(n), f"{n:03d}", f"Book {n}", f"#{n}"):
        pos = parse_position(raw)
        assert pos.sort_key == n and pos.kind == "main" and pos.covered == [n]
    assert format_position(float(n)) == str(n)


@given(st.integers(min_value=1, max_value=500), st.integers(min_value=1, max_value=9))
def test_decimals_are_novellas(n, d):
    pos = parse_position(f"{n}.{d}")
    assert pos.kind == "novella" and n < pos.sort_key < n + 1
    assert format_position(pos.sort_key) == f"{n}.{d}"


@given(st.integers(min_value=1, max_value=100), st.integers(min_value=1, max_value=50))
def test_ranges(lo, width):
    pos = parse_position(f"{lo}-{lo + width}")
    assert pos.kind == "omnibus" and pos.covered == list(range(lo, lo + width + 1))


@given(st.text(max_size=40))
def test_never_crashes(text):
    pos = parse_position(text)
    assert pos is None or pos.raw == text.strip()
