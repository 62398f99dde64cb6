"""The Hardcover provider against a loopback server replaying the recorded GraphQL answers."""

import copy
from datetime import timedelta

import httpx
import pytest

from mamcrawler.candidates import BookQuery
from resources.hardcover import (
    AUTHOR_BY_PK,
    BOOK_BY_PK,
    SEARCH_BOOKS,
    SERIES_BY_PK,
    HardcoverProvider,
    ReplayHardcoverProvider,
    book_candidate,
    position_text,
    ranked_hits,
)
from resources.metadata_provider import ProviderAuthError, ProviderResponseError, ResponseCache
from resources.replay.hardcover import HardcoverReplay, recorded_queries
from resources.replay.recorded import load
from tests.servers import serve

TOKEN = "fake-hc-token-9"
WAY_OF_KINGS = BookQuery("wok", "The Way of Kings", "Brandon Sanderson")


def provider(url, **kw):
    kw.setdefault("token", TOKEN)
    return HardcoverProvider(base_url=url, requests_per_second=50, backoff_s=0.01, **kw)


def test_query_texts_are_the_recorded_ones():
    assert recorded_queries() == {
        "SearchBooks": SEARCH_BOOKS, "BookByPk": BOOK_BY_PK, "SeriesByPk": SERIES_BY_PK, "AuthorByPk": AUTHOR_BY_PK,
    }


def test_way_of_kings_takes_the_audiobook_edition_and_both_series():
    replay = HardcoverReplay(token=TOKEN)
    with serve(replay) as url, provider(url).session() as session:
        candidates = provider(url).search(session, WAY_OF_KINGS)
    assert len(candidates) == 1
    book = candidates[0]
    assert book.provider == "hardcover" and book.provider_id == "9100001"
    assert book.title == "The Way of Kings" and book.authors == ("Brandon Sanderson",)
    assert book.series == (("The Stormlight Archive", "1"), ("The Cosmere", None))
    assert book.asin == "B0TEST0001" and book.duration_s == 164477 and book.is_audiobook
    assert book.narrators == ("Michael Kramer", "Kate Reading") and book.publisher == "Macmillan Audio"
    assert book.isbn == "9780765326355"  # the English print edition: the audio edition has none
    assert book.year == 2010 and book.language == "English"
    assert book.genres == ("Fantasy", "Fiction", "Epic Fantasy", "Science Fiction")
    assert book.description.startswith("Roshar is a world of stone")  # only the search document has it
    assert book.cover.endswith("/cover.jpeg")
    assert book.extra["series_ids"] == {"The Stormlight Archive": 9200001, "The Cosmere": 9200020}
    assert book.extra["author_ids"] == {"Brandon Sanderson": "9300001"}  # primary authors only, ids as text
    # The other hits ("The Way of Kings Prime", "Words of Radiance") are other titles: not fetched.
    assert replay.requests == [
        ("SearchBooks", {"query": "The Way of Kings Brandon Sanderson", "perPage": 5, "page": 1}),
        ("BookByPk", {"id": 9100001}),
    ]


def test_guards_guards_has_two_series_featured_first():
    with serve(HardcoverReplay(token=TOKEN)) as url, provider(url).session() as session:
        book = provider(url).book(session, 9100033)
    assert book.series == (("Discworld - City Watch", "1"), ("Discworld", "8"))
    assert book.asin == "B0FAKE0045" and book.duration_s == 38441 and book.narrators == ("Nigel Planer",)
    assert book.isbn == "9798999902115" and book.year == 1989
    assert book.extra["author_ids"] == {"Terry Pratchett": "9300002"}


def test_an_asin_we_hold_picks_that_edition():
    query = BookQuery("wok-es", "The Way of Kings", "Brandon Sanderson", asin="b0fake0201")
    with serve(HardcoverReplay(token=TOKEN)) as url, provider(url).session() as session:
        (book,) = provider(url).search(session, query)
    assert book.asin == "B0FAKE0201" and book.duration_s == 178212 and book.language == "Spanish"
    assert book.narrators == ("Fixture Narrador",)
    assert book.isbn is None  # no Spanish edition has an ISBN; the English one is not ours


def test_a_print_isbn_in_another_language_is_not_an_audiobook():
    query = BookQuery("wok-de", "The Way of Kings", "Brandon Sanderson", isbn="979-8-9999-0202-3")
    with serve(HardcoverReplay(token=TOKEN)) as url, provider(url).session() as session:
        (book,) = provider(url).search(session, query)
    assert book.isbn == "9798999902023" and book.language == "German" and book.publisher == "Heyne"
    assert not book.is_audiobook and book.asin is None and book.duration_s is None


def test_author_ids_name_only_the_primary_authors():
    book = load("hardcover", "book_by_pk_way_of_kings.json")["data"]["books_by_pk"]
    book["contributions"] += [
        {"contribution": "Author", "author": {"id": 9300077, "name": "A Co-Author", "slug": "a-co-author"}},
        {"contribution": "Illustrator", "author": {"id": 9300078, "name": "An Illustrator", "slug": "an-illustrator"}},
    ]
    candidate = book_candidate(book, {})
    assert candidate.authors == ("Brandon Sanderson", "A Co-Author")
    assert candidate.extra["author_ids"] == {"Brandon Sanderson": "9300001", "A Co-Author": "9300077"}


def test_hits_listing_the_isbn_we_hold_come_first():
    search = load("hardcover", "search_way_of_kings.json")["data"]["search"]
    assert [i for i, _ in ranked_hits(search)] == [9100001, 9100090, 9100002]
    doctored = copy.deepcopy(search)
    doctored["results"]["hits"][2]["document"]["isbns"] = ["0-00-000000-?", "9798999902214"]
    query = BookQuery("x", "Words of Radiance", isbn="9798999902214")
    assert [i for i, _ in ranked_hits(doctored, query)] == [9100002, 9100001, 9100090]


def test_no_hits_and_unknown_ids():
    replay = HardcoverReplay(token=TOKEN)
    with serve(replay) as url, provider(url).session() as session:
        assert provider(url).search(session, BookQuery("x", "zzzz no such book", "qqqq")) == []
        assert provider(url).book(session, 9199999) is None
        assert provider(url).series_by_pk(session, 9299999) is None
        assert provider(url).author_by_pk(session, 9399999) is None
    assert [op for op, _ in replay.requests] == ["SearchBooks", "BookByPk", "SeriesByPk", "AuthorByPk"]


@pytest.mark.parametrize("wrong", ["wrong-" + TOKEN, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"])
def test_wrong_token_is_an_auth_error_that_never_shows_the_token(wrong):
    with serve(HardcoverReplay(token=TOKEN)) as url:
        rejected = provider(url, token=wrong)
        with rejected.session() as session, pytest.raises(ProviderAuthError) as err:
            rejected.search(session, WAY_OF_KINGS)
    text = str(err.value)
    assert "HTTP 401" in text and "Settings -> API" in text
    assert wrong not in text and TOKEN not in text


def test_bearer_prefix_is_not_doubled_and_a_doubled_one_is_a_graphql_error():
    with serve(HardcoverReplay(token=TOKEN)) as url:
        pasted = provider(url, token=f"Bearer {TOKEN}")
        with pasted.session() as session:
            assert pasted.search(session, WAY_OF_KINGS)[0].asin == "B0TEST0001"
        doubled = provider(url, token=f"Bearer Bearer {TOKEN}")
        cache = ResponseCache(None, timedelta(days=30))
        with doubled.session(cache) as session, pytest.raises(ProviderResponseError) as err:
            doubled.search(session, WAY_OF_KINGS)
    assert err.value.reason == "graphql_error" and "Malformed Authorization header" in str(err.value)
    assert TOKEN not in str(err.value)
    assert cache.fresh == {}  # an error answer with HTTP 200 must not be cached


def test_rate_limited_answers_are_waited_out_retried_and_counted():
    replay = HardcoverReplay(token=TOKEN, rate_limit_first=2, retry_after="0")
    with serve(replay) as url:
        found, stats, errors = provider(url).enrich([WAY_OF_KINGS])
    assert not errors and found["wok"][0].asin == "B0TEST0001"
    assert stats.rate_limited == 2 and stats.requests == 4 and stats.errors == 0


def test_the_429_keeps_the_recorded_headers_and_adds_retry_after():
    replay = HardcoverReplay(token=TOKEN, rate_limit_first=1, retry_after="7")
    body = {"operationName": "BookByPk", "query": BOOK_BY_PK, "variables": {"id": 9100001}}
    request = httpx.Request("POST", "http://x/v1/graphql", json=body, headers={"authorization": f"Bearer {TOKEN}"})
    response = replay(request)
    assert response.status_code == 429 and response.json() == {"error": "Throttled"}
    assert response.headers["RateLimit-Limit"] == "60" and response.headers["RateLimit-Reset"] == "1795412400"
    assert response.headers["Retry-After"] == "7"
    assert replay(request).status_code == 200


def test_series_by_pk_keeps_float_positions_and_omnibuses():
    with serve(HardcoverReplay(token=TOKEN)) as url, provider(url).session() as session:
        series = provider(url).series_by_pk(session, 9200003)
    assert series.name == "The Expanse" and series.is_completed and series.primary_books_count == 9
    positions = [b.position for b in series.books]
    assert positions[:2] == [0.5, 1.0] and 2.5 in positions and positions[-1] is None
    at_one = [b for b in series.books if b.position == 1.0]
    assert [b.compilation for b in at_one] == [False, True, False]
    omnibus = at_one[1]
    assert omnibus.title == "The Expanse Books 1-3" and omnibus.details == "1-3" and omnibus.release_date == "2020-05-05"
    last = series.books[-1]
    assert last.title == "Memory's Legion" and last.compilation and not last.featured


def test_position_text():
    assert position_text(1) == "1" and position_text(1.0) == "1" and position_text(2.5) == "2.5"
    assert position_text(None) is None and position_text(1, "1-3") == "1-3" and position_text(2, "1-3") == "2"


def test_author_by_pk_pages_through_contributions():
    replay = HardcoverReplay(token=TOKEN)
    with serve(replay) as url, provider(url).session() as session:
        author = provider(url).author_by_pk(session, 9300002, page_size=4)
    assert author.name == "Terry Pratchett" and len(author.books) == 9
    assert author.books[0].title == "Good Omens" and author.books[0].series == ()
    guards = author.books[1]
    assert guards.series == (("Discworld", 8.0, 9200004), ("Discworld - City Watch", 1.0, 9200010))
    assert [v["offset"] for op, v in replay.requests] == [0, 4, 8]


def test_without_a_token_the_provider_is_disabled():
    for token in ("", "   "):
        hardcover = HardcoverProvider(token=token)
        assert not hardcover.enabled and "token" in hardcover.disabled_reason
    assert HardcoverProvider(token=TOKEN).enabled
    assert TOKEN not in repr(HardcoverProvider(token=TOKEN))


def test_the_demo_replay_runs_in_process():
    found, stats, errors = ReplayHardcoverProvider().enrich([WAY_OF_KINGS])
    assert not errors and found["wok"][0].series[0] == ("The Stormlight Archive", "1")
    assert stats.requests == 2
