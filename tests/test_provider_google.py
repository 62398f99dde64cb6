"""Google Books provider against a loopback server replaying the recorded Google answers."""

from datetime import timedelta

import httpx
import pytest

from mamcrawler.candidates import BookQuery
from resources.google_books import GoogleBooksProvider, ReplayGoogleBooksProvider, build_q, volume_candidate
from resources.metadata_provider import DailyBudget, ProviderAuthError, ProviderQuotaError, ResponseCache
from resources.replay.googlebooks import VALID_KEY, GoogleBooksReplay, parse_q
from tests.servers import serve

KINGS = BookQuery("item-kings", "The Way of Kings", "Brandon Sanderson")
NOTHING = BookQuery("item-none", "zzzz no such book")


def provider(url, **kw):
    kw.setdefault("concurrency", 1)  # one request at a time: exact request counts
    return GoogleBooksProvider(base_url=url, requests_per_second=50, backoff_s=0.01, **kw)


def queries(n):
    return [BookQuery(f"item-{i}", "The Way of Kings", "Brandon Sanderson") for i in range(n)]


def test_way_of_kings_maps_the_tor_volume():
    replay = GoogleBooksReplay()
    with serve(replay) as url, provider(url).session() as session:
        found = provider(url).search(session, KINGS)
    assert replay.requests == [
        {"path": "/books/v1/volumes", "q": "intitle:The Way of Kings inauthor:Brandon Sanderson", "maxResults": "10", "key": False}
    ]
    assert [c.provider_id for c in found] == ["FAKEGB000001", "FAKEGB000002", "FAKEGB000003"]
    tor = found[0]
    assert (tor.provider, tor.title, tor.authors) == ("google", "The Way of Kings", ("Brandon Sanderson",))
    assert (tor.isbn, tor.year, tor.publisher, tor.language) == ("9780765326355", 2010, "Tor Books", "English")
    assert tor.genres == ("Fiction",) and tor.description.startswith("Fixture: Roshar is a world")
    assert tor.cover.startswith("https://books.google.com/books/content?id=FAKEGB000001") and "zoom=1" in tor.cover
    assert tor.is_audiobook is False and tor.extra == {"series_id": "FAKESERIES0001", "series_order": 1}
    split = found[2]
    assert (split.subtitle, split.year, split.publisher, split.description) == ("Part One", 2011, "Gollancz", None)
    assert split.isbn == "9798999902030"  # the ISBN_13, not the OTHER identifier


def test_isbn_query_searches_by_isbn():
    replay = GoogleBooksReplay()
    query = BookQuery("item-isbn", "whatever the file says", "someone", isbn="0-7653-2635-3")
    assert build_q(query) == "isbn:9780765326355"
    with serve(replay) as url, provider(url).session() as session:
        found = provider(url).search(session, query)
    assert replay.requests[0]["q"] == "isbn:9780765326355"
    assert [(c.provider_id, c.publisher) for c in found] == [("FAKEGB000001", "Tor Books")]


def test_no_results_is_an_empty_list():
    replay = GoogleBooksReplay()
    with serve(replay) as url:
        found, stats, errors = provider(url).enrich([NOTHING])
    assert found == {"item-none": []} and errors == [] and stats.requests == 1
    assert replay.requests[0]["q"] == "intitle:zzzz no such book"


def test_replay_reads_q_like_google():
    replay = GoogleBooksReplay()
    with serve(replay) as url, httpx.Client(base_url=url) as client:
        # ABS-style unquoted author answers like the recorded inauthor:"Cixin Liu"
        liu = client.get("/books/v1/volumes", params={"q": "inauthor:Cixin Liu"}).json()
        swapped = client.get("/books/v1/volumes", params={"q": "intitle:Brandon Sanderson inauthor:The Way of Kings"}).json()
        page = client.get("/books/v1/volumes", params={"q": 'inauthor:"Cixin Liu"', "maxResults": 2, "startIndex": 3}).json()
    assert liu["totalItems"] == 4 and len(liu["items"]) == 4
    assert "items" not in swapped and swapped["totalItems"] == 0
    assert page["totalItems"] == 4 and [v["id"] for v in page["items"]] == [liu["items"][3]["id"]]
    assert parse_q("intitle:The Way inauthor:\"Cixin Liu\" Dune:") == [
        ("intitle", "the"), (None, "way"), ("inauthor", "cixin"), ("inauthor", "liu"), (None, "dune"),
    ]
    german = volume_candidate(liu["items"][1])
    assert (german.title, german.language, german.year) == ("Die drei Sonnen", "German", 2016)
    deaths_end = volume_candidate(liu["items"][3])
    assert deaths_end.year == 2016 and deaths_end.genres == () and deaths_end.description is None


def test_429_quota_stops_enrich_and_is_reported():
    replay = GoogleBooksReplay(quota="429", quota_after=1)
    with serve(replay) as url:
        found, stats, errors = provider(url, max_retries=0).enrich(queries(4))
    assert len(replay.requests) == 2  # one answered, one quota error, then no more asking
    assert list(found) == ["item-0"] and len(found["item-0"]) == 3
    assert len(errors) == 1 and "daily quota is spent" in errors[0] and "HTTP 429" in errors[0]
    assert stats.requests == 2


def test_403_daily_limit_is_a_quota_error_and_not_retried():
    replay = GoogleBooksReplay(quota="403", quota_after=2)
    with serve(replay) as url:
        found, _, errors = provider(url, api_key=VALID_KEY).enrich(queries(5))
    assert len(replay.requests) == 3 and all(r["key"] for r in replay.requests)
    assert sorted(found) == ["item-0", "item-1"]
    assert len(errors) == 1 and "HTTP 403" in errors[0] and VALID_KEY not in errors[0]

    with serve(GoogleBooksReplay(quota="403")) as url, provider(url).session() as session, pytest.raises(ProviderQuotaError):
        provider(url).search(session, KINGS)


def test_daily_budget_stops_after_the_budget():
    replay = GoogleBooksReplay()
    budget = DailyBudget(None)
    with serve(replay) as url:
        found, stats, errors = provider(url, daily_budget=2).enrich(queries(4), budget=budget)
    assert len(replay.requests) == 2 and stats.requests == 2
    assert sorted(found) == ["item-0", "item-1"]
    assert errors == ["google: the daily budget of 2 requests is spent; the rest waits for tomorrow (UTC)"]
    assert budget.used["google"] == 2


def test_invalid_key_is_an_auth_error_without_the_key():
    secret = "AIzaSy-not-the-right-key-0123456789"
    replay = GoogleBooksReplay()
    with serve(replay) as url:
        with provider(url, api_key=secret).session() as session, pytest.raises(ProviderAuthError) as err:
            provider(url, api_key=secret).search(session, KINGS)
        _, _, errors = provider(url, api_key=secret).enrich([KINGS])
    assert "API_KEY_INVALID" in str(err.value) and secret not in str(err.value) and secret not in repr(err.value)
    assert err.value.__cause__ is None
    assert len(errors) == 1 and "rejected the API key" in errors[0] and secret not in errors[0]
    assert len(replay.requests) == 2  # a 400 is never retried


def test_cached_answers_are_not_asked_again():
    replay = GoogleBooksReplay()
    cache = ResponseCache(None, ttl=timedelta(days=30))
    with serve(replay) as url:
        first, _, _ = provider(url).enrich([KINGS], cache=cache)
        again, stats, _ = provider(url).enrich([KINGS], cache=cache)
    assert len(replay.requests) == 1 and stats.cache_hits == 1 and stats.requests == 0
    assert again == first


def test_replay_provider_runs_in_process():
    found, stats, errors = ReplayGoogleBooksProvider(requests_per_second=50).enrich([KINGS, NOTHING])
    assert errors == [] and stats.requests == 2
    assert found["item-kings"][0].isbn == "9780765326355" and found["item-none"] == []
