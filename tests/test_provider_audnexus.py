"""The Audnexus provider against a loopback server replaying the recorded answers."""

from datetime import timedelta

import httpx
import pytest

from mamcrawler.candidates import BookQuery
from resources.audnexus import AudnexusProvider, ReplayAudnexusProvider
from resources.metadata_provider import ResponseCache
from resources.replay.audnexus import AudnexusReplay
from tests.servers import serve


def provider(url: str, **kw) -> AudnexusProvider:
    return AudnexusProvider(base_url=url, requests_per_second=50, backoff_s=0.01, **kw)


def enrich(queries, replay=None, **kw):
    replay = replay or AudnexusReplay()
    with serve(replay) as url:
        return provider(url, **kw).enrich(queries)


def by_asin(item_id: str, asin: str | None) -> BookQuery:
    return BookQuery(item_id, "title not used", asin=asin)


def test_book_maps_series_people_genres_and_runtime():
    replay = AudnexusReplay()
    found, stats, errors = enrich([by_asin("wok", "B0TEST0001")], replay)
    assert errors == [] and stats.requests == 1
    (book,) = found["wok"]
    assert book.provider == "audnexus" and book.asin == book.provider_id == "B0TEST0001"
    assert book.title == "The Way of Kings" and book.authors == ("Brandon Sanderson",)
    assert book.narrators == ("Michael Kramer", "Kate Reading")
    assert book.series == (("The Stormlight Archive", "1"),)
    assert book.duration_s == 2741 * 60 and book.year == 2010
    assert book.isbn == "9780765326355" and book.language == "English" and book.publisher == "Macmillan Audio"
    assert book.genres == ("Science Fiction & Fantasy",) and book.extra["tags"] == ["Fantasy", "Epic"]
    assert book.cover == "https://m.media-amazon.com/images/I/FAKEIMG0001.jpg" and book.is_audiobook
    assert book.description.startswith("<p>Roshar is a world")  # HTML kept, as ABS keeps it
    assert replay.requests == ["GET /books/B0TEST0001?region=us"]


def test_secondary_series_translator_and_no_series():
    found, _, errors = enrich([by_asin("gg", "B0FAKE0045"), by_asin("tbp", "B0FAKE0081"), by_asin("phm", "B0FAKE0104")])
    assert errors == []
    assert found["gg"][0].series == (("Discworld", "8"), ("Discworld - City Watch", "1"))
    three_body = found["tbp"][0]
    assert three_body.authors == ("Cixin Liu",)  # "Ken Liu - translator" dropped
    assert three_body.year == 2014 and three_body.extra["copyright_year"] == 2008
    assert found["phm"][0].series == () and found["phm"][0].extra["series_asins"] == {}


def test_raw_positions_are_passed_on_for_the_consensus_to_clean():
    found, _, _ = enrich([by_asin("fe", "B0FAKE0011"), by_asin("ga", "B0FAKE0009"), by_asin("mt", "B0FAKE0019")])
    assert found["fe"][0].series[0][1] == "Book 1"
    assert found["ga"][0].series[0][1] == "1, Dramatized Adaptation"
    assert found["ga"][0].extra["format_type"] == "original_recording"
    assert found["mt"][0].series[0][1] == "1-3"


def test_unknown_asin_is_no_candidate_not_an_error():
    replay = AudnexusReplay()
    found, stats, errors = enrich([by_asin("x", "B0FAKE9999")], replay)
    assert found == {"x": []} and errors == [] and stats.errors == 0
    assert stats.skipped["not_found"] == 1 and replay.requests == ["GET /books/B0FAKE9999?region=us"]


def test_query_without_asin_sends_nothing():
    replay = AudnexusReplay()
    found, stats, errors = enrich([BookQuery("h", "The Hobbit", "J. R. R. Tolkien"), by_asin("bad", "not-an-asin")], replay)
    assert found == {"h": [], "bad": []} and errors == [] and stats.requests == 0 and replay.requests == []


def test_rate_limit_is_retried_after_retry_after_and_counted():
    replay = AudnexusReplay(rate_limit_first=2, retry_after="0.05")
    found, stats, errors = enrich([by_asin("wok", "B0TEST0001")], replay)
    assert errors == [] and found["wok"][0].title == "The Way of Kings"
    assert stats.rate_limited == 2 and stats.requests == 3 and len(replay.requests) == 3
    assert stats.throttled_s >= 0.1  # both Retry-After waits are counted as throttled time


def test_rate_limit_beyond_the_retries_is_an_error_for_that_book_only():
    replay = AudnexusReplay(rate_limit_first=2, retry_after="0.01")
    found, stats, errors = enrich([by_asin("wok", "B0TEST0001")], replay, max_retries=1, concurrency=1)
    assert found == {} and len(errors) == 1 and "429" in errors[0]
    assert stats.errors == 1 and stats.skipped["ProviderUnavailableError"] == 1


def test_second_run_answers_from_the_cache_including_the_404():
    replay = AudnexusReplay()
    cache = ResponseCache(None, timedelta(days=30))
    queries = [by_asin("wok", "B0TEST0001"), by_asin("x", "B0FAKE9999")]
    with serve(replay) as url:
        audnexus = provider(url)
        first, stats1, _ = audnexus.enrich(queries, cache=cache)
        with audnexus.session(cache) as session:
            again = audnexus.search(session, queries[0])
            still_missing = audnexus.search(session, queries[1])
            stats2 = session.stats
    assert stats1.requests == 2 and stats1.cache_hits == 0
    assert stats2.requests == 0 and stats2.cache_hits == 2
    assert again == first["wok"] and still_missing == [] and stats2.skipped["not_found"] == 1
    assert len(replay.requests) == 2


def test_html_page_and_truncated_json_are_counted_not_raised():
    replay = AudnexusReplay()

    def broken(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/books/B0FAKE0045":
            return httpx.Response(200, headers={"Content-Type": "text/html; charset=utf-8"}, text="<!doctype html><p>Maintenance</p>")
        if request.url.path == "/books/B0FAKE0081":
            return httpx.Response(200, headers={"Content-Type": "application/json"}, content=replay(request).content[:-40])
        return replay(request)

    found, stats, errors = enrich([by_asin("gg", "B0FAKE0045"), by_asin("tbp", "B0FAKE0081"), by_asin("wok", "B0TEST0001")], broken)
    assert stats.skipped["not_json"] == 1 and stats.skipped["bad_json"] == 1 and stats.errors == 2
    assert len(errors) == 2 and [c.asin for c in found["wok"]] == ["B0TEST0001"] and set(found) == {"wok"}


def test_region_is_sent_and_checked():
    replay = AudnexusReplay()
    found, _, _ = enrich([by_asin("x", "B0FAKE9999")], replay, region="uk")
    assert found == {"x": []} and replay.requests == ["GET /books/B0FAKE9999?region=uk"]
    with pytest.raises(ValueError, match="unknown region 'xx'"):
        AudnexusProvider(region="xx").enrich([by_asin("wok", "B0TEST0001")])


def test_replay_answers_errors_and_authors_like_audnexus():
    with httpx.Client(transport=httpx.MockTransport(AudnexusReplay()), base_url="http://audnexus.replay") as client:
        missing = client.get("/books/B0FAKE0404", params={"region": "de"})
        bad = client.get("/books/not-an-asin")
        authors = client.get("/authors", params={"name": "brandon  SANDERSON", "region": "us"})
        nobody = client.get("/authors", params={"name": "Nobody Here"})
        unknown_author = client.get("/authors/B0FAKEA999")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/json")
    assert missing.json()["error"] == {
        "code": "REGION_UNAVAILABLE",
        "message": "Item not available in region 'de' for ASIN: B0FAKE0404",
        "details": {"asin": "B0FAKE0404", "code": "REGION_UNAVAILABLE"},
    }
    assert bad.status_code == 400 and bad.json()["error"]["message"] == "Bad ASIN"
    assert [a["name"] for a in authors.json()] == ["Brandon Sanderson", "Brandon Mull", "Brandon Q. Morris"]
    assert nobody.json() == []
    assert unknown_author.status_code == 404 and unknown_author.json()["error"]["code"] == "NOT_FOUND"


def test_replay_provider_runs_in_process():
    found, _, errors = ReplayAudnexusProvider(requests_per_second=50).enrich([by_asin("wok", "B0TEST0001")])
    assert errors == [] and found["wok"][0].series == (("The Stormlight Archive", "1"),)
