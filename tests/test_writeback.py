import json

from mamcrawler.writeback import current_values, merge_series, plan_writeback


def row(field, value, confidence="HIGH", provider="audible", agreeing=("audible", "hardcover")):
    if field == "series":
        value = [{"name": n, "sequence": s} for n, s in value]
    return {"field": field, "value_json": json.dumps(value), "confidence": confidence, "provider": provider, "agreeing": list(agreeing)}


TITANS = {
    "item_id": "t", "title": "The Titan's Curse (Percy Jackson and the Olympians, Book 3)", "subtitle": None,
    "authors": ["Rick Riordan"], "narrators": ["Jesse Bernstein"], "series": [], "published_year": "2007",
    "publisher": None, "isbn": None, "asin": None, "language": None, "genres": ["Fantasy"], "description": "Mine.",
}


def test_series_are_merged_never_dropped():
    current = (("Mistborn", "3"), ("Cosmere", None))
    assert merge_series(current, (("Mistborn", "3"),)) == current
    # A name variant of a series the book has is not a new membership; a new series is.
    assert merge_series(current, (("Cosmere", "3.5"), ("The Mistborn Saga", "3"), ("Scadrial", "1"))) == (
        ("Mistborn", "3"), ("Cosmere", "3.5"), ("Scadrial", "1"),
    )
    assert merge_series((), (("Discworld", "8.0"),)) == (("Discworld", "8"),)  # a string ABS keeps


def test_plan_fills_and_cleans_with_confident_values_only():
    fields = [
        row("title", "The Titan's Curse"),
        row("series", [("Percy Jackson and the Olympians", "3")]),
        row("asin", "B0FAKE0063"),
        row("year", 2007),  # same as ABS: nothing to do
        row("publisher", "Disney", confidence="MEDIUM"),  # below the threshold
        row("description", "Theirs."),  # ABS has one: descriptions are only filled
        row("narrators", ["Somebody Else"]),  # ABS has some: only filled
    ]
    body, corrections = plan_writeback("t", current_values(TITANS), fields, "HIGH")
    assert body == {
        "title": "The Titan's Curse",
        "series": [{"name": "Percy Jackson and the Olympians", "sequence": "3"}],
        "asin": "B0FAKE0063",
    }
    assert all(isinstance(s["sequence"], str) for s in body["series"])
    by_field = {c.field: c for c in corrections}
    assert by_field["asin"].reason == "filled an empty field" and by_field["asin"].old == "null"
    assert by_field["title"].reason.startswith("providers agree") and "Book 3" in by_field["title"].old
    body, _ = plan_writeback("t", current_values(TITANS), fields, "MEDIUM")
    assert body["publisher"] == "Disney"


def test_nothing_to_change_gives_an_empty_body():
    fields = [row("title", TITANS["title"]), row("year", 2007), row("genres", ["fantasy"])]
    assert plan_writeback("t", current_values(TITANS), fields, "LOW") == ({}, [])


def test_the_books_own_sequences_are_kept_verbatim():
    current = (("Discworld", "3, Part 2"), ("Foo", "1.10"), ("Bar", "Book 1"))
    assert merge_series(current, ()) == current
    fields = [row("series", [("Bar", "1")])]
    assert plan_writeback("x", {"series": (("Bar", "Book 1"),)}, fields, "HIGH") == ({}, [])
