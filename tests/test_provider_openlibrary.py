"""Open Library provider against a loopback server replaying the recorded Open Library answers."""


import httpx
import pytest

from mamcrawler.candidates import BookQuery
from resources.openlibrary import (
    SEARCH_FIELDS,
    OpenLibraryNotFoundError,
    OpenLibraryProvider,
    ReplayOpenLibraryProvider,
    doc_candidate,
)
from resources.replay.openlibrary import OpenLibraryReplay
from resources.replay.recorded import load
from tests.servers import serve


def provider(url, **kw):
    kw.setdefault("concurrency", 1)
    return OpenLibraryProvider(base_url=url, requests_per_second=50, backoff_s=0.01, **kw)


def test_search_maps_docs_to_candidates():
    replay = OpenLibraryReplay()
    with serve(replay) as url, provider(url).session() as session:
        found = provider(url).search(session, BookQuery("item-1", "The Way of Kings", "Brandon Sanderson"))
    sent = httpx.URL(replay.requests[0].removeprefix("GET ")).params
    assert (sent["title"], sent["author"], sent["limit"], sent["fields"]) == (
        "The Way of Kings", "Brandon Sanderson", "5", SEARCH_FIELDS,
    )
    assert [c.title for c in found] == [
        "The Way of Kings", "The Way of Kings, Part One", "The Way of Kings, Part Two", "The Way of Kings Prime",
    ]
    novel = found[0]
    assert (novel.provider, novel.provider_id, novel.authors) == ("openlibrary", "OL990001W", ("Brandon Sanderson",))
    assert (novel.year, novel.language, novel.is_audiobook) == (2010, "English", False)
    assert novel.cover == "https://covers.openlibrary.org/b/id/99000101-L.jpg"
    assert novel.extra == {
        "author_ids": {"Brandon Sanderson": "OL990001A"}, "author_keys": ["OL990001A"], "edition_count": 61,
    }
    assert found[3].cover is None and found[3].year == 2020


def test_search_asks_only_for_the_mapped_fields():
    replay = OpenLibraryReplay()
    with serve(replay) as url, httpx.Client(base_url=url) as client:
        body = client.get("/search.json", params={"title": "The Way of Kings", "author": "Brandon Sanderson", "fields": "key,title", "limit": 2}).json()
        unrecorded = client.get("/search.json", params={"title": "The Way of Kings"}).json()
    assert body["numFound"] == 4 and [set(d) for d in body["docs"]] == [{"key", "title"}] * 2
    assert unrecorded["numFound"] == 0 and unrecorded["docs"] == []  # not recorded without the author


def test_author_narrows_a_title_search_and_spellings_fold():
    with serve(OpenLibraryReplay()) as url:
        found, _, errors = provider(url).enrich([
            BookQuery("hobbit", "The Hobbit", "J. R. R. Tolkien"),
            BookQuery("annotated", "The Hobbit", "Douglas A. Anderson"),
            BookQuery("none", "zzzz no such book"),
        ])
    assert errors == []
    assert [(c.title, c.subtitle) for c in found["hobbit"]] == [
        ("The Hobbit", "or There and Back Again"), ("The Annotated Hobbit", None), ("The Hobbit", "Graphic Novel"),
    ]
    assert found["hobbit"][0].authors == ("J.R.R. Tolkien",) and found["hobbit"][0].year == 1937
    assert found["annotated"][0].extra["author_ids"] == {"J. R. R. Tolkien": "OL990009A", "Douglas A. Anderson": "OL990060A"}
    assert [c.provider_id for c in found["annotated"]] == ["OL990051W"]
    assert found["none"] == []


def test_requested_fields_isbn_publisher_subject_language():
    # The recordings hold Open Library's default fields; these are the extra fields we ask
    # for (`isbn`, `publisher`, `subject` in works.py's all_fields), in search-doc form.
    doc = {
        "key": "/works/OL990001W", "title": "The Way of Kings", "author_name": ["Brandon Sanderson"],
        "isbn": ["123", "9780765326356", "0765326353", "9780765326355"], "publisher": ["Tor", "Gollancz"],
        "language": ["ger", "eng"], "subject": ["a", "b", "c", "d", "e", "f"], "cover_i": -1,
    }
    candidate = doc_candidate(doc)
    assert candidate.isbn == "9780765326355"  # first valid one, as ISBN-13
    assert (candidate.publisher, candidate.language, candidate.cover) == ("Tor", "German", None)
    assert candidate.genres == ("a", "b", "c", "d", "e")


def test_author_works_follows_next_over_three_pages():
    replay = OpenLibraryReplay()
    with serve(replay) as url, provider(url).session() as session:
        works = provider(url).author_works(session, "/authors/OL990001A", page_size=5)
    assert replay.requests == [
        "GET /authors/OL990001A/works.json?limit=5",
        "GET /authors/OL990001A/works.json?limit=5&offset=5",
        "GET /authors/OL990001A/works.json?limit=5&offset=10",
    ]
    assert len(works) == 12 and len({w["key"] for w in works}) == 12
    assert works[0] == {"key": "/works/OL990010W", "title": "The Hero of Ages", "first_publish_date": "2008", "first_publish_year": 2008}
    assert works[1]["first_publish_date"] is None and works[-1]["title"] == "Wind and Truth"


def test_replayed_pages_are_the_recorded_pages():
    replay = OpenLibraryReplay()
    with httpx.Client(base_url="http://ol", transport=httpx.MockTransport(replay)) as client:
        for page, offset in enumerate((None, 5, 10), start=1):
            params = {"limit": 5} if offset is None else {"limit": 5, "offset": offset}
            served = client.get("/authors/OL990001A/works.json", params=params).json()
            assert served == load("openlibrary", f"author_works_sanderson_page{page}.json")
        default = client.get("/authors/OL990001A/works.json").json()
    assert len(default["entries"]) == 12 and set(default["links"]) == {"self", "author"}


def test_work_redirect_is_followed():
    replay = OpenLibraryReplay()
    with serve(replay) as url, provider(url).session() as session:
        work = provider(url).work(session, "OL990099W")
    assert replay.requests == ["GET /works/OL990099W.json", "GET /works/OL990001W.json"]
    assert (work["key"], work["redirected_from"], work["title"]) == ("/works/OL990001W", "/works/OL990099W", "The Way of Kings")
    assert work["covers"] == [99000101, 99000104]  # the -1 placeholder dropped
    assert work["first_publish_year"] == 2010 and work["author_keys"] == ["/authors/OL990001A"]
    assert work["description"].endswith("hides something older. Book one of The Stormlight Archive.")


def test_plain_string_description_and_missing_records():
    replay = OpenLibraryReplay()
    with serve(replay) as url, provider(url).session() as session:
        hero = provider(url).work(session, "/works/OL990010W")
        missing = provider(url).work(session, "/works/OL999999999W")
        with pytest.raises(OpenLibraryNotFoundError) as err:
            provider(url).author_works(session, "OL999999999A")
    assert hero["description"] == "Fixture: The world is ending under ash and mist." and hero["redirected_from"] is None
    assert missing is None
    assert err.value.reason == "not_found"
    assert session.stats.requests == 3  # 404s are not retried


def test_replay_provider_runs_in_process():
    found, stats, errors = ReplayOpenLibraryProvider(requests_per_second=50).enrich(
        [BookQuery("item-1", "The Way of Kings", "Brandon Sanderson")]
    )
    assert errors == [] and stats.requests == 1 and found["item-1"][0].provider_id == "OL990001W"
