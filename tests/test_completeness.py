"""Completeness against catalogues: the rules a collector must be able to trust."""

from datetime import UTC, date, datetime

import polars as pl
import pytest

from mamcrawler.catalog import AUTHOR_CATALOG_SCHEMA, CATALOG_SCHEMA, catalog_rows
from mamcrawler.completeness import (
    CompletenessSettings,
    change_overrides,
    find_missing,
    looks_like_adaptation,
    looks_like_compilation,
)
from mamcrawler.frames import frame_from_rows
from mamcrawler.gaps import series_memberships
from tests.test_gaps import books_of

TODAY = date(2026, 11, 25)
SETTINGS = CompletenessSettings(today=TODAY, follow_min_books=2)


def catalog(books, series_name, members, provider="audible"):
    """members: (sequence, title[, release_date[, compilation]])"""
    sid = series_memberships(books).filter(pl.col("series") == series_name)["series_id"][0]
    rows = catalog_rows(sid, provider, "S1", [
        {"sequence": m[0], "title": m[1], "release_date": m[2] if len(m) > 2 else "2020-01-01",
         "compilation": m[3] if len(m) > 3 else False} for m in members
    ])
    return frame_from_rows(rows, CATALOG_SCHEMA)


def authors(rows):
    base = dict.fromkeys(AUTHOR_CATALOG_SCHEMA) | {"provider": "hardcover", "compilation": False, "release_date": "2015"}
    return frame_from_rows([base | r for r in rows], AUTHOR_CATALOG_SCHEMA)


def missing_of(result):
    return {(r["series"], r["position_label"], r["title"]) for r in result.missing.iter_rows(named=True)}


def test_catalogue_positions_omnibus_novellas_and_upcoming():
    books = books_of([
        ("a", "Omnibus One to Three", ["Ann Writer"], [("Saga", "1-3")]),
        ("b", "Five", ["Ann Writer"], [("Saga", "5")]),
    ])
    cat = catalog(books, "Saga", [
        ("1", "One"), ("2", "Two"), ("3", "Three"), ("1-3", "The First Omnibus", "2019", True),
        ("3.5", "A Novella"), ("4", "Four"), ("5", "Five"), ("6", "Six"), ("7", "Seven", "2031-01-01"),
    ])
    result = find_missing(books, cat, None, None, SETTINGS)
    assert missing_of(result) == {("Saga", "4", "Four"), ("Saga", "6", "Six"), ("Saga", "3.5", "A Novella")}
    lines = dict(zip(result.missing["position_label"], result.missing["line"]))
    priority = dict(zip(result.missing["position_label"], result.missing["priority"]))
    assert lines["3.5"] == "novella" and priority == {"6": 1, "4": 2, "3.5": 3}  # next after the highest owned first
    assert result.upcoming["title"].to_list() == ["Seven"]
    row = result.series.row(0, named=True)
    assert (row["total"], row["owned"], row["missing"], row["upcoming"], row["status"]) == (6, 4, 2, 1, "partial")
    with_novellas = find_missing(books, cat, None, None, CompletenessSettings(today=TODAY, include_novellas=True))
    assert with_novellas.series.row(0, named=True)["total"] == 7


def test_owned_under_another_title_series_or_identifier_is_not_missing():
    books = books_of([
        ("a", "The Three-Body Problem", ["Cixin Liu"], [("The Three-Body Problem", "1")]),
        ("b", "The Dark Forest", ["Cixin Liu"], [("Remembrance of Earth's Past", "2")]),
        ("c", "DEATH'S END (Unabridged)", ["Cixin Liu"], []),
    ])
    cat = catalog(books, "Remembrance of Earth's Past", [
        ("1", "The Three-Body Problem"), ("2", "The Dark Forest"), ("3", "Death's End"),
    ])
    assert missing_of(find_missing(books, cat, None, None, SETTINGS)) == set()


def test_sequel_numbers_are_never_confused():
    books = books_of([
        ("a", "Save State Hero 3", ["Sam Player"], []),
        ("b", "Remnant II", ["Rae Mnant"], [("Remnant", "2")]),
    ])
    cat = catalog(books, "Remnant", [("1", "Remnant"), ("2", "Remnant II"), ("3", "Remnant III")])
    works = authors([
        {"author_key": "sam player", "title": "Save State Hero 3"},
        {"author_key": "sam player", "title": "Save State Hero 5"},
    ])
    result = find_missing(books, cat, works, None, CompletenessSettings(today=TODAY, follow_min_books=1))
    titles = {t for _, _, t in missing_of(result)}
    assert titles == {"Remnant", "Remnant III", "Save State Hero 5"}


def test_author_gaps_for_followed_authors_only_translations_and_box_sets_skipped():
    books = books_of([("a", "Novel A", ["Pat Author"], []), ("b", "Novel B", ["Pat Author"], []),
                      ("c", "Lonely", ["Solo Writer"], [])])
    works = authors([
        {"author_key": "pat author", "title": "Novel C"},
        {"author_key": "pat author", "title": "Roman C", "language": "German"},
        {"author_key": "pat author", "title": "The Complete Box Set"},
        {"author_key": "pat author", "title": "Novel A"},
        {"author_key": "pat author", "title": "Future Novel", "release_date": "2030-05-01"},
        {"author_key": "solo writer", "title": "Not Followed"},
    ])
    result = find_missing(books, None, works, None, SETTINGS)
    assert missing_of(result) == {(None, None, "Novel C")}
    assert result.missing["reason"].to_list() == ["author_gap"] and result.missing["line"].to_list() == ["standalone"]
    pat = result.authors.filter(pl.col("author_key") == "pat author").row(0, named=True)
    assert (pat["total"], pat["owned"], pat["upcoming"], pat["author"]) == (2, 1, 1, "Pat Author")
    followed = find_missing(books, None, works, change_overrides(None, [{"kind": "follow_author", "target": "Solo Writer"}], []), SETTINGS)
    assert (None, None, "Not Followed") in missing_of(followed)


def test_overrides():
    books = books_of([("a", "One", ["X Y"], [("Saga", "1")]), ("d", "Four", ["X Y"], [("Saga", "4")]),
                      ("e", "Alpha", ["X Y"], [("Other", "2")])])
    base = find_missing(books, None, None, None, SETTINGS)
    assert len(base.missing) == 3
    two = base.missing.filter(pl.col("position") == 2.0).filter(pl.col("series") == "Saga")["missing_id"][0]
    overrides = change_overrides(None, [
        {"kind": "ignore_book", "target": two},
        {"kind": "series_complete", "target": "Other"},
    ], [])
    result = find_missing(books, None, None, overrides, SETTINGS)
    status = {(r["series"], r["position_label"]): r["status"] for r in result.missing.iter_rows(named=True)}
    assert status == {("Saga", "2"): "ignored", ("Saga", "3"): "identified"}
    other = result.series.filter(pl.col("series") == "Other").row(0, named=True)
    assert other["status"] == "complete" and other["missing"] == 0
    ignored = find_missing(books, None, None, change_overrides(overrides, [{"kind": "ignore_series", "target": "Saga"}], []), SETTINGS)
    assert ignored.missing.is_empty() and "Saga" not in ignored.series["series"].to_list()
    assert change_overrides(overrides, [], [{"kind": "series_complete", "target": "Other"}]).height == 1
    with pytest.raises(ValueError, match="kind must be one of"):
        change_overrides(None, [{"kind": "delete_everything", "target": "x"}], [])


def test_bad_catalogues_never_crash_or_invent_gaps():
    books = books_of([("a", "One", ["X Y"], [("Saga", "1")]), ("b", "Two", ["X Y"], [("Saga", "2")])])
    cat = catalog(books, "Saga", [
        ("1", "One"), ("1", "One (Dramatized)"), ("1a", "Odd"), ("Part 2 of 3", "Weird"), ("Book Two", "Two"),
        (None, "Unnumbered"), ("2", None),
    ] + [(str(i), f"Book {i}") for i in range(3, 501)])
    result = find_missing(books, cat, None, None, SETTINGS)
    positions = result.missing["position"].to_list()
    assert len(positions) == len(set(positions)) == 498 and min(positions) == 3
    assert result.skipped["catalogue entry without a usable position"] >= 2


def test_compilation_and_adaptation_titles():
    assert looks_like_adaptation("The Way of Kings (Part 1 of 6)", "The Stormlight Archive (Dramatized Adaptation)")
    assert looks_like_adaptation("The Hobbit", "BBC Full-Cast Dramatisation") and not looks_like_adaptation("Part One", None)
    assert looks_like_compilation("Mistborn Trilogy Boxed Set") and looks_like_compilation("The Expanse Books 1-3")
    assert not looks_like_compilation("The Final Empire") and not looks_like_compilation("Collected Works of Nobody")
    # A series note names the series: a book of "The Century Trilogy" is one book.
    assert not looks_like_compilation("Fall of Giants (The Century Trilogy, #1)")
    assert looks_like_compilation("The Century Trilogy Boxed Set (The Century Trilogy, #1-3)")


def test_rows_keep_identity_across_runs():
    books = books_of([("a", "One", ["X Y"], [("Saga", "1")]), ("c", "Three", ["X Y"], [("Saga", "3")])])
    first = find_missing(books, None, None, None, SETTINGS, now=datetime(2026, 1, 1, tzinfo=UTC)).missing
    again = find_missing(books, catalog(books, "Saga", [("2", "Two")]), None, None, SETTINGS).missing
    assert first["missing_id"].to_list() == again["missing_id"].to_list() and again["title"].to_list() == ["Two"]


def test_a_renamed_series_is_an_alias_but_a_sub_series_is_not():
    books = books_of([
        ("a", "Guards! Guards!", ["Terry Pratt"], [("Discworld", "8"), ("City Watch", "1")]),
        ("b", "Feet of Clay", ["Terry Pratt"], [("Discworld", "19"), ("City Watch", "3")]),
        ("c", "First", ["Terry Pratt"], [("Old Name", "4")]),
    ])
    cat = catalog(books, "Discworld", [("8", "Guards! Guards!"), ("15", "Men at Arms"), ("19", "Feet of Clay")])
    works = authors([{"author_key": "terry pratt", "title": "First", "series": "New Name", "position_raw": "4"}])
    result = find_missing(books, cat, works, None, SETTINGS)
    missing = {(r["series"], r["position_label"]) for r in result.missing.iter_rows(named=True)}
    assert ("City Watch", "2") in missing  # its own numbering: a real hole
    assert not any(series == "Old Name" for series, _ in missing)  # the same positions elsewhere: an alias
    assert ("Discworld", "15") in missing


def test_review_cases():
    from mamcrawler.gaps import carry_lifecycle

    # An ignore_book override wins over the stored status, and lifting it gives the book back.
    books = books_of([("a", "One", ["X Y"], [("Saga", "1")]), ("c", "Three", ["X Y"], [("Saga", "3")])])
    first = carry_lifecycle(find_missing(books, None, None, None, SETTINGS).missing, None)
    ignore = change_overrides(None, [{"kind": "ignore_book", "target": first["missing_id"][0]}], [])
    ignored = carry_lifecycle(find_missing(books, None, None, ignore, SETTINGS).missing, first)
    assert ignored["status"].to_list() == ["ignored"]
    assert carry_lifecycle(find_missing(books, None, None, None, SETTINGS).missing, ignored)["status"].to_list() == ["identified"]

    # A co-author joining later does not rename the series: ids (and statuses) survive.
    more = books_of([("a", "One", ["Xavier Young"], [("Saga", "1")]), ("c", "Three", ["Xavier Young"], [("Saga", "3")]),
                     ("d", "Four", ["Xavier Young", "Anna Co"], [("Saga", "4")])])
    solo = books_of([("a", "One", ["Xavier Young"], [("Saga", "1")]), ("c", "Three", ["Xavier Young"], [("Saga", "3")])])
    assert find_missing(more, None, None, None, SETTINGS).missing["missing_id"].to_list() == \
        find_missing(solo, None, None, None, SETTINGS).missing["missing_id"].to_list()

    # A full date beats a bare year from another source.
    saga = books_of([("a", "One", ["Ann Writer"], [("Saga", "1")])])
    cat = catalog(saga, "Saga", [("1", "One"), ("2", "Two", "2026-03-01")])
    works = authors([{"author_key": "ann writer", "title": "Two", "series": "Saga", "position_raw": "2", "release_date": "2026"}])
    result = find_missing(saga, cat, works, None, CompletenessSettings(today=date(2026, 6, 1), follow_min_books=1))
    assert result.missing["title"].to_list() == ["Two"] and result.upcoming.is_empty()

    # Another author's "Legacy" does not hide a followed author's "Legacy" book.
    mixed = books_of([("a", "A", ["Pat Author"], []), ("b", "B", ["Pat Author"], []), ("h", "Heirs", ["Other Person"], [("Legacy", "1")])])
    works = authors([{"author_key": "pat author", "title": "Legacy Rising", "series": "Legacy", "position_raw": "1"}])
    titles = find_missing(mixed, None, works, None, SETTINGS).missing["title"].to_list()
    assert titles == ["Legacy Rising"]
    ignored = find_missing(mixed, None, works, change_overrides(None, [{"kind": "ignore_series", "target": "Legacy"}], []), SETTINGS)
    assert ignored.missing.is_empty()
