from datetime import UTC, datetime

import polars as pl

from mamcrawler.gaps import carry_lifecycle, find_series_gaps
from mamcrawler.library import Skipped, normalise_library, snapshot_rows

EXPECTED_SAMPLE = {
    "The Stormlight Archive": [3],
    "Mistborn": [2],
    "The Expanse": [3, 4],
    "Discworld": [3, 4, 5, 6, 7, *range(9, 41)],
    "Percy Jackson and the Olympians": [1, 2],
    "Dune": [1, 2],
}


def books_of(rows):
    """rows: (item_id, title, authors, [(series, sequence), ...])"""
    items = [
        {
            "id": item_id, "libraryId": "lib", "mediaType": "book", "relPath": f"{authors[0] if authors else ''}/{title}",
            "media": {"duration": 1.0, "metadata": {
                "title": title, "authors": [{"name": a} for a in authors],
                "series": [{"name": s, "sequence": q} for s, q in series],
            }},
        }
        for item_id, title, authors, series in rows
    ]
    skipped = Skipped()
    return normalise_library(snapshot_rows(items, skipped), skipped)


def gaps_by_series(books):
    gaps = find_series_gaps(books)
    return {s: sorted(g["position"].to_list()) for (s,), g in gaps.group_by("series")}


def test_sample_library_has_exactly_the_45_known_gaps(abs_items):
    skipped = Skipped()
    books = normalise_library(snapshot_rows(abs_items, skipped), skipped)
    gaps = find_series_gaps(books)
    assert gaps.height == 45
    assert gaps_by_series(books) == EXPECTED_SAMPLE
    assert set(gaps["reason"]) == {"series_gap"} and set(gaps["status"]) == {"identified"}
    assert gaps["title"].null_count() == 45
    discworld = gaps.filter(pl.col("series") == "Discworld").sort("priority")
    assert discworld["position"].head(3).to_list() == [3, 4, 5] and discworld["author"][0] == "Terry Pratchett"
    assert gaps["missing_id"].n_unique() == 45


def test_novellas_prequels_and_omnibuses():
    books = books_of([
        ("a", "Prequel", ["X"], [("S", "0")]),
        ("b", "Half", ["X"], [("S", "0.5")]),
        ("c", "Omnibus", ["X"], [("S", "1-3")]),
        ("d", "Novella", ["X"], [("S", "4.5")]),
        ("e", "Six", ["X"], [("S", "6")]),
    ])
    assert gaps_by_series(books) == {"S": [4, 5]}


def test_lowest_owned_position_three_misses_one_and_two():
    assert gaps_by_series(books_of([("a", "Three", ["X"], [("S", "3")])])) == {"S": [1, 2]}


def test_only_novellas_create_no_gaps():
    assert gaps_by_series(books_of([("a", "Novella", ["X"], [("S", "2.5")])])) == {}


def test_owned_under_another_membership_or_name_variant_is_not_missing():
    books = books_of([
        ("a", "One", ["X"], [("The Saga", "1")]),
        ("b", "Two", ["X"], [("Saga Series", "2")]),  # same series, name variant
        ("c", "Three", ["X"], [("Other", "1"), ("The Saga", "3")]),
    ])
    assert gaps_by_series(books) == {}


def test_unrelated_series_with_the_same_name_stay_apart():
    books = books_of([
        ("a", "A1", ["Alice Writer"], [("Legacy", "1")]),
        ("b", "A2", ["Alice Writer"], [("Legacy", "2")]),
        ("c", "B5", ["Bob Author"], [("Legacy", "5")]),
    ])
    gaps = find_series_gaps(books)
    assert sorted(gaps["position"].to_list()) == [1, 2, 3, 4] and set(gaps["author"]) == {"Bob Author"}


def test_co_written_book_joins_its_series():
    books = books_of([
        ("a", "One", ["Ann"], [("S", "1")]),
        ("b", "Two", ["Ann", "Ben"], [("S", "2")]),
        ("c", "Four", ["Ann"], [("S", "4")]),
    ])
    assert gaps_by_series(books) == {"S": [3]}


def test_lifecycle_survives_rebuilds():
    books = books_of([("a", "One", ["X"], [("S", "1")]), ("d", "Four", ["X"], [("S", "4")])])
    first = find_series_gaps(books, now=datetime(2026, 1, 1, tzinfo=UTC))
    queued = first.with_columns(pl.when(pl.col("position") == 2).then(pl.lit("queued")).otherwise("status").alias("status"))
    rebuilt = carry_lifecycle(find_series_gaps(books, now=datetime(2026, 2, 1, tzinfo=UTC)), queued)
    status = dict(zip(rebuilt["position"], rebuilt["status"]))
    assert status == {2: "queued", 3: "identified"}
    assert set(rebuilt["first_seen_at"]) == {datetime(2026, 1, 1, tzinfo=UTC)}
    # Position 3 bought meanwhile: its row leaves the table, the queued one stays.
    books = books_of([("a", "One", ["X"], [("S", "1")]), ("c", "Three", ["X"], [("S", "3")]), ("d", "Four", ["X"], [("S", "4")])])
    again = carry_lifecycle(find_series_gaps(books), rebuilt)
    assert again["position"].to_list() == [2] and again["status"].to_list() == ["queued"]
