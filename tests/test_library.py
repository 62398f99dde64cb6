import copy

import polars as pl
import pytest

from mamcrawler.library import Skipped, normalise_library, snapshot_rows
from mamcrawler.series_recovery import from_folder, from_subtitle, from_title


def books_from(items):
    skipped = Skipped()
    return normalise_library(snapshot_rows(items, skipped), skipped), skipped


def memberships(books, title):
    row = books.filter(pl.col("title") == title).row(0, named=True)
    return {(m["series"], m["position_raw"], m["source"]) for m in row["series"]}


def test_sample_library_is_normalised(abs_items):
    books, skipped = books_from(abs_items)
    assert books.height == 25 and skipped.total == 0
    assert memberships(books, "The Titan's Curse") == {("Percy Jackson and the Olympians", "3", "title")}
    assert memberships(books, "Children of Dune") == {("Dune", "3", "folder")}
    assert memberships(books, "The Three-Body Problem") == {
        ("The Three-Body Problem", "1", "abs"),
        ("Remembrance of Earth's Past", "1", "folder"),
    }
    assert memberships(books, "Guards! Guards!") == {("Discworld", "8", "abs"), ("Discworld - City Watch", "1", "abs")}
    # The subtitle "Mistborn Book One" agrees with the tag: no second membership.
    assert memberships(books, "The Final Empire") == {("Mistborn", "1", "abs")}
    edgedancer = books.filter(pl.col("title") == "Edgedancer")["series"][0][0]
    assert edgedancer["kind"] == "novella" and edgedancer["sort_key"] == 2.5
    for standalone in ("The Martian", "Project Hail Mary", "Artemis", "Solaris", "Good Omens", "The Hobbit"):
        assert memberships(books, standalone) == set()


def test_authors_are_split_and_folded(abs_items):
    books, _ = books_from(abs_items)
    row = lambda t: books.filter(pl.col("title") == t).row(0, named=True)  # noqa: E731
    assert row("Good Omens")["author_keys"] == ["terry pratchett", "neil gaiman"]
    assert row("The Cyberiad")["author_keys"] == row("Solaris")["author_keys"] == ["stanislaw lem"]
    assert row("The Cyberiad")["published_year"] == 1965 and "year_from_date" in row("The Cyberiad")["flags"]
    assert row("The Hobbit")["author"] is None and "no_author" in row("The Hobbit")["flags"]


@pytest.mark.parametrize(
    "title",
    ["Fahrenheit 451", "2001: A Space Odyssey", "Catch-22", "Slaughterhouse-Five", "The 7 Habits", "1984", "Apollo 13 (2015)"],
)
def test_numbers_in_titles_never_become_positions(title):
    assert from_title(title) is None
    assert from_subtitle(title) is None
    assert from_folder(f"Some Author/{title}", title) is None
    assert from_folder(f"Some Author/Some Series/{title}", title) is None


def test_recovery_patterns():
    assert from_title("The Titan's Curse (Percy Jackson and the Olympians, Book 3)").series == "Percy Jackson and the Olympians"
    assert from_title("Leviathan Wakes [The Expanse #1]").position == "1"
    assert from_subtitle("Mistborn Book One").position == "One"
    assert from_subtitle("Book Two of the Stormlight Archive").series == "the Stormlight Archive"
    assert from_folder("Frank Herbert/Dune Book 3 - Children of Dune", "Children of Dune").series == "Dune"
    # The folder's title must be the book's title: an unrelated folder invents nothing.
    assert from_folder("Frank Herbert/Dune Book 3 - Children of Dune", "Dune Messiah") is None
    assert from_folder("Arthur C. Clarke/Space Odyssey/2001 - A Space Odyssey", "A Space Odyssey") is None
    assert from_folder("A/Series/Book 2.5 - Novella {Narrator}", "Novella").position == "2.5"


def _item(item_id, title, **meta):
    base = {
        "id": item_id, "libraryId": "lib", "mediaType": "book", "relPath": f"x/{title}", "path": f"/a/{title}",
        "media": {"duration": 60.0, "metadata": {"title": title, "authors": [{"name": "Some Author"}], "series": []}},
    }
    base["media"]["metadata"].update(meta)
    return base


def test_bad_input_has_defined_outcomes(abs_items):
    items = copy.deepcopy(abs_items[:3])
    items += [
        _item("no-title", None),
        _item("no-author", "Orphan", authors=[]),
        _item("empty-seq", "Empty Sequence", series=[{"name": "S", "sequence": ""}]),
        _item("numeric-seq", "Numeric Sequence", series=[{"name": "S", "sequence": 2}]),
        _item("date-year", "Dated", publishedYear="1965-01-01"),
        _item("long", "Long Description", description="x" * 10_000),
        _item("emoji", "📚 Emoji Title 🚀", authors=[{"name": "Émile 🦄 Zola"}]),
        {"mediaType": "book", "media": {}},  # no id at all
        "not even an object",
        {"id": "podcast", "mediaType": "podcast", "media": {"metadata": {"title": "A show"}}},
    ]
    items.append(copy.deepcopy(items[0]))  # the same item twice (overlapping pages)
    books, skipped = books_from(items)
    assert skipped.counts == {"no_title": 1, "no_item_id": 2, "not_a_book": 1, "duplicate_item_id": 1}
    by_id = {r["item_id"]: r for r in books.iter_rows(named=True)}
    assert "no_author" in by_id["no-author"]["flags"]
    assert "empty_sequence" in by_id["empty-seq"]["flags"] and by_id["empty-seq"]["series"][0]["sort_key"] is None
    assert by_id["numeric-seq"]["series"][0]["position_raw"] == "2" and by_id["numeric-seq"]["series"][0]["kind"] == "main"
    assert by_id["date-year"]["published_year"] == 1965
    assert "long_description" in by_id["long"]["flags"]
    assert by_id["emoji"]["title"] == "📚 Emoji Title 🚀" and by_id["emoji"]["title_key"] == "emoji title"
    assert by_id["emoji"]["author_keys"] == ["emile zola"]


def test_same_book_in_two_folders_is_flagged(abs_items):
    twin = copy.deepcopy(abs_items[-1])
    twin["id"] = "twin"
    books, _ = books_from([abs_items[-1], twin])
    assert books.height == 2 and all("duplicate_book" in f for f in books["flags"])
