"""`author_works`: an author's works from Hardcover and Open Library, against the in-process replays."""

from dataclasses import replace
from datetime import timedelta

from resources.audible import ReplayAudibleProvider
from resources.catalog import WORK_KEYS, _release_date, author_works
from resources.hardcover import HardcoverProvider, ReplayHardcoverProvider
from resources.metadata_provider import DailyBudget, ResponseCache
from resources.openlibrary import ReplayOpenLibraryProvider

PRATCHETT = ("terry pratchett", "hardcover", "9300002")
SANDERSON = ("brandon sanderson", "openlibrary", "OL990001A")


def run(refs, hardcover=None, openlibrary=None):
    lines: list[str] = []
    rows, stats, errors = author_works(
        ReplayAudibleProvider(),
        hardcover or ReplayHardcoverProvider(),
        openlibrary or ReplayOpenLibraryProvider(),
        refs,
        ResponseCache(None, timedelta(days=1)),
        DailyBudget(None),
        lines.append,
    )
    return rows, stats, errors, lines


class FivePerPageOpenLibrary(ReplayOpenLibraryProvider):
    """Asks for the author's works five at a time: the three recorded pages."""

    def author_works(self, session, author_key, page_size=5):
        return super().author_works(session, author_key, page_size)


class SideRolesHardcover(ReplayHardcoverProvider):
    """The recorded Pratchett plus rows where he only illustrated, translated or narrated."""

    def author_by_pk(self, session, author_id, max_books=100, page_size=25):
        author = super().author_by_pk(session, author_id, max_books, page_size)
        base = author.books[0]
        extra = (
            replace(base, book_id=9100901, title="Illustrated Only", contribution="Illustrator"),
            replace(base, book_id=9100902, title="Translated Only", contribution="Translator"),
            replace(base, book_id=9100903, title="Narrated Only", contribution="Narrator"),
            replace(base, book_id=9100904, title="Written As Author", contribution="Author"),
        )
        return replace(author, books=author.books + extra)


def test_pratchett_hardcover_works():
    rows, stats, errors, lines = run([PRATCHETT])
    assert errors == [] and set(stats) == {"hardcover"} and stats["hardcover"].requests == 1
    assert all(tuple(row) == WORK_KEYS for row in rows)
    by_title = {row["title"]: row for row in rows}
    assert len(rows) == 9 and len(by_title) == 9
    guards = by_title["Guards! Guards!"]
    assert guards == {
        "author_key": "terry pratchett", "provider": "hardcover", "provider_author": "9300002", "work_id": "9100033",
        "title": "Guards! Guards!", "series": "Discworld", "position_raw": "8", "release_date": "1989",
        "compilation": False, "contribution": None, "language": None,
    }
    omens = by_title["Good Omens"]  # co-written with Neil Gaiman, no series
    assert (omens["series"], omens["position_raw"], omens["work_id"]) == (None, None, "9100037")
    assert by_title["The Shepherd's Crown"]["position_raw"] == "41"
    assert all(row["contribution"] in (None, "Author") for row in rows)
    assert lines == ["hardcover: listed 1 author references"]


def test_side_roles_are_not_works_of_the_author():
    rows, _, errors, _ = run([PRATCHETT], hardcover=SideRolesHardcover())
    titles = {row["title"] for row in rows}
    assert errors == [] and len(rows) == 10
    assert "Written As Author" in titles
    assert not titles & {"Illustrated Only", "Translated Only", "Narrated Only"}


def test_sanderson_openlibrary_works_over_three_pages():
    rows, stats, errors, _ = run([SANDERSON], openlibrary=FivePerPageOpenLibrary())
    assert errors == [] and stats["openlibrary"].requests == 3  # limit=5: the three recorded pages
    assert len(rows) == 12 and len({row["work_id"] for row in rows}) == 12
    assert all(tuple(row) == WORK_KEYS and row["title"] for row in rows)
    assert rows[0] == {
        "author_key": "brandon sanderson", "provider": "openlibrary", "provider_author": "OL990001A",
        "work_id": "OL990010W", "title": "The Hero of Ages", "series": None, "position_raw": None,
        "release_date": "2008", "compilation": False, "contribution": None, "language": None,
    }
    by_title = {row["title"]: row for row in rows}
    assert by_title["The Way of Kings"]["release_date"] is None  # no first_publish_date in the entry
    assert by_title["Rhythm of War"]["release_date"] == "2020"
    assert rows[-1]["title"] == "Wind and Truth"
    # the default page size gets the same works in one request
    same, stats, _, _ = run([SANDERSON])
    assert same == rows and stats["openlibrary"].requests == 1


def test_unknown_authors_are_error_lines_and_the_others_go_on():
    refs = [("nobody", "openlibrary", "OL999999999A"), SANDERSON, ("nobody", "hardcover", "9399999"), PRATCHETT]
    rows, stats, errors, _ = run(refs)
    assert errors == [
        "hardcover author 9399999: hardcover: no author with id 9399999",
        "openlibrary author OL999999999A: openlibrary: no record at that key (HTTP 404)",
    ]
    assert {(row["provider"], row["author_key"]) for row in rows} == {
        ("hardcover", "terry pratchett"), ("openlibrary", "brandon sanderson"),
    }
    assert set(stats) == {"hardcover", "openlibrary"}


def test_a_disabled_provider_is_skipped_with_its_line():
    disabled = HardcoverProvider(token="")
    rows, stats, errors, lines = run([PRATCHETT, SANDERSON], hardcover=disabled)
    assert errors == [] and set(stats) == {"openlibrary"}
    assert {row["provider"] for row in rows} == {"openlibrary"} and len(rows) == 12
    assert lines[0] == disabled.disabled_reason and "token" in lines[0]


def test_refs_for_other_providers_are_ignored():
    rows, stats, errors, lines = run([("x", "goodreads", "123")])
    assert (rows, stats, errors, lines) == ([], {}, [], [])


def test_release_date_text():
    assert _release_date("2008") == "2008" and _release_date("2010-08-31") == "2010-08-31"
    assert _release_date("August 31, 2010") == "2010-08-31" and _release_date("Aug 31, 2010") == "2010-08-31"
    assert _release_date("Spring 1999") == "1999" and _release_date(None) is None and _release_date("n.d.") is None


def test_audible_lists_an_authors_audiobooks_newest_first():
    rows, _, errors, _ = run([("brandon sanderson", "audible", "Brandon Sanderson")])
    assert not errors and rows and all(set(r) == set(WORK_KEYS) for r in rows)
    titles = {r["title"]: r for r in rows}
    assert titles["The Way of Kings"]["series"] == "The Stormlight Archive" and titles["The Way of Kings"]["position_raw"] == "1"
    assert all(r["language"] == "English" for r in rows)
    dates = [r["release_date"] for r in rows if r["release_date"]]
    assert dates == sorted(dates, reverse=True)
    # A box set ("1-3") is flagged so completeness never asks for it.
    assert any(r["compilation"] for r in rows if "Trilogy" in r["title"] or r["position_raw"] == "1-3")
    assert all("Cixin" not in r["title"] for r in rows)  # only the author's own books
