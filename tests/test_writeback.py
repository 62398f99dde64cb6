import json
import re

from hypothesis import given
from hypothesis import strategies as st

from mamcrawler.candidates import description_html
from mamcrawler.writeback import (
    current_values,
    earlier_writes,
    merge_names,
    merge_series,
    outcome_summary,
    plan_import_metadata,
    plan_writeback,
    survives_rescan,
)


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


def test_sequences_abs_reads_back_are_kept_verbatim_phrases_become_numbers():
    # "1.10" and "3.0" survive ABS's rescan of metadata.json as they are: the user's own text stays.
    current = (("Foo", "1.10"), ("Baz", "3.0"), ("Qux", "1a"))
    assert merge_series(current, ()) == current
    # A phrase ("Book 1", "3, Part 2") is lost on ABS's next rescan: sent as a number it survives.
    phrases = (("Discworld", "3, Part 2"), ("Bar", "Book One"), ("Omni", "Books 1 - 3"), ("Odd", "The Last One"))
    assert merge_series(phrases, ()) == (
        ("Discworld", "3,Part2"), ("Bar", "1"), ("Omni", "1-3"), ("Odd", "The Last One"),
    )
    assert all(survives_rescan(s) for _, s in merge_series(phrases[:3], ()))
    assert not survives_rescan("Book 1") and not survives_rescan("1#2") and survives_rescan("2.5")


def test_a_phrase_sequence_is_rescued_even_without_a_provider_row():
    body, corrections = plan_writeback("x", {"series": (("Red Rising", "Book Two"),)}, [], "HIGH")
    assert body == {"series": [{"name": "Red Rising", "sequence": "2"}]}
    assert [(c.field, c.provider, json.loads(c.old)) for c in corrections] == [
        ("series", "mamcrawler", [{"name": "Red Rising", "sequence": "Book Two"}])
    ]
    # and once numeric, nothing more to do
    assert plan_writeback("x", {"series": (("Red Rising", "2"),)}, [row("series", [("Red Rising", "Book 2")])], "HIGH") == ({}, [])


def test_genres_are_merged_never_replaced():
    current = current_values({**TITANS, "genres": ["Military", "Science Fiction"]})
    body, corrections = plan_writeback("t", current, [row("genres", ["science fiction", "Space Opera"])], "HIGH")
    assert body == {"genres": ["Military", "Science Fiction", "Space Opera"]}
    assert corrections[0].reason == "genres added; existing ones kept"
    assert merge_names(("A",), ("a", "B", "B")) == ("A", "B")


def test_the_import_title_drops_edition_noise_abs_kept():
    meta = {"title": "Iron Gold (Unabridged)", "authors": [{"name": "Pierce Brown"}], "series": []}
    wanted = {"title": "Iron Gold", "author": "Pierce Brown", "series": "Red Rising", "position_label": "Book Four"}
    assert plan_import_metadata(wanted, meta) == {
        "title": "Iron Gold", "series": [{"name": "Red Rising", "sequence": "4"}],
    }
    assert plan_import_metadata({**wanted, "title": "Iron Gold [MP3]"}, {**meta, "title": "Iron Gold"}) == {
        "series": [{"name": "Red Rising", "sequence": "4"}],
    }
    # No title wanted (no provider lists the position): ABS's own title loses its noise.
    assert plan_import_metadata({**wanted, "title": None}, meta)["title"] == "Iron Gold"


def test_descriptions_keep_their_html_without_anything_active():
    raw = '<p class="x">Roshar is <b>a world</b></p><script>alert(1)</script><img src=x onerror=y><br/>End'
    assert description_html(raw) == "<p>Roshar is <b>a world</b></p> <br/>End"
    assert description_html("plain  text") == "plain text" and description_html("<p> </p>") is None


@given(st.text())
def test_description_html_is_total_and_leaves_no_other_tag(text):
    out = description_html(text)
    assert out is None or (isinstance(out, str) and "<script" not in out.lower() and "\x00" not in out)
    assert out is None or re.sub(r"</?(p|br|b|i|em|strong|ul|ol|li)/?>", "", out).count("<") == 0


def test_a_value_written_earlier_stands_unless_a_high_offer_outranks_it():
    """The real-ABS round trip showed it: the subtitle written at LOW made the next run match
    another edition, whose subtitle came back at MEDIUM and replaced it."""
    from datetime import UTC, datetime

    at = datetime(2026, 1, 1, tzinfo=UTC)
    done = [
        {"item_id": "t", "field": "subtitle", "new": json.dumps("Book One"), "confidence": "LOW", "mode": "applied",
         "corrected_at": at},
        {"item_id": "t", "field": "subtitle", "new": json.dumps("Ignored"), "confidence": "LOW", "mode": "dry_run",
         "corrected_at": at},
        {"item_id": "t", "field": "year", "new": json.dumps("2010"), "confidence": "MEDIUM", "mode": "applied",
         "corrected_at": at},
    ]
    ours = earlier_writes(done)
    assert ours == {("t", "subtitle"): (json.dumps("Book One"), "LOW"), ("t", "year"): (json.dumps("2010"), "MEDIUM")}
    current = {**current_values(TITANS), "subtitle": "Book One", "year": 2010}
    for confidence in ("LOW", "MEDIUM"):
        offers = [row("subtitle", "Part One", confidence=confidence), row("year", 2011, confidence=confidence)]
        assert plan_writeback("t", current, offers, "LOW", ours) == ({}, [])
    body, _ = plan_writeback("t", current, [row("subtitle", "Part One"), row("year", 2011)], "LOW", ours)
    assert body == {"subtitle": "Part One", "publishedYear": "2011"}
    # A value the user changed since is not ours any more: the usual rules apply.
    body, _ = plan_writeback("t", {**current, "subtitle": "Mine"}, [row("subtitle", "Part One", "MEDIUM")], "LOW", ours)
    assert body == {"subtitle": "Part One"}
    # Without earlier writes, the same offers are written.
    assert plan_writeback("t", current, [row("subtitle", "Part One", confidence="MEDIUM")], "LOW")[0] == {"subtitle": "Part One"}


def test_outcomes_say_books_and_fields():
    assert outcome_summary({"applied": 2, "unchanged": 1, "item no longer in ABS": 1}, {"applied": 10, "unchanged": 1}) == (
        "applied: 2 books (10 fields); item no longer in ABS: 1 book; unchanged: 1 book (1 field)"
    )
    assert outcome_summary({}, {}) == "nothing to change"
