"""The Audible provider against a loopback server replaying the recorded catalog answers."""

from datetime import timedelta

import httpx
import pytest

from mamcrawler.candidates import BookQuery
from resources.audible import AudibleProvider, ReplayAudibleProvider
from resources.metadata_provider import ResponseCache
from resources.replay.audible import AudibleReplay
from tests.servers import serve

WAY_OF_KINGS = BookQuery("wok", "The Way of Kings", "Brandon Sanderson")


def provider(url: str, **kw) -> AudibleProvider:
    return AudibleProvider(base_url=url, requests_per_second=50, backoff_s=0.01, **kw)


def enrich(queries, replay=None, **kw):
    replay = replay or AudibleReplay()
    with serve(replay) as url:
        return provider(url, **kw).enrich(queries)


def test_title_and_author_search_maps_the_novel_and_keeps_other_editions():
    replay = AudibleReplay()
    found, stats, errors = enrich([WAY_OF_KINGS], replay)
    assert errors == [] and stats.requests == 1
    novel, *dramatized = found["wok"]
    assert novel.provider == "audible" and novel.asin == novel.provider_id == "B0TEST0001"
    assert novel.title == "The Way of Kings" and novel.authors == ("Brandon Sanderson",)
    assert novel.narrators == ("Michael Kramer", "Kate Reading")
    assert novel.series == (("The Stormlight Archive", "1"),)
    assert novel.duration_s == 2741 * 60 and novel.year == 2010
    assert novel.isbn == "9780765326355" and novel.language == "English" and novel.publisher == "Macmillan Audio"
    assert novel.cover.endswith("FAKEIMG0001._SL500_.jpg") and novel.is_audiobook
    assert novel.description.startswith("<p>Roshar is a world") and "<script" not in novel.description  # HTML kept, as ABS keeps it
    assert novel.extra["format_type"] == "unabridged"
    assert novel.extra["series_asins"] == {"The Stormlight Archive": "B0FAKES001"}
    assert [c.series for c in dramatized] == [
        (("The Stormlight Archive (Dramatized Adaptation)", "1"),),
        (("The Stormlight Archive (Dramatized Adaptation)", "2"),),
    ]
    assert all(c.extra["format_type"] == "original_recording" for c in dramatized)
    (sent,) = replay.requests
    params = httpx.URL(sent.split(" ", 1)[1]).params
    assert params["title"] == "The Way of Kings" and params["author"] == "Brandon Sanderson"
    assert params["num_results"] == "10" and params["products_sort_by"] == "Relevance"
    assert params["response_groups"] == "contributors,media,product_attrs,product_desc,product_extended_attrs,series"


def test_lookup_by_asin_uses_the_product_endpoint():
    replay = AudibleReplay()
    found, _, errors = enrich([BookQuery("wok", "ignored title", asin="B0TEST0001")], replay)
    assert errors == [] and [c.asin for c in found["wok"]] == ["B0TEST0001"]
    assert found["wok"][0].series == (("The Stormlight Archive", "1"),)
    assert replay.requests[0].startswith("GET /1.0/catalog/products/B0TEST0001?")


def test_translator_is_not_an_author():
    found, _, _ = enrich([BookQuery("tbp", "The Three-Body Problem", "Cixin Liu")])
    (book,) = found["tbp"]
    assert book.authors == ("Cixin Liu",) and book.narrators == ("Luke Daniels",)
    assert book.series == (("Remembrance of Earth's Past", "1"),)


def test_title_only_search_returns_every_edition_and_marks_the_abridged_one():
    replay = AudibleReplay()
    found, _, _ = enrich([BookQuery("hobbit", "The Hobbit")], replay)
    editions = found["hobbit"]
    assert [c.asin for c in editions] == ["B0FAKE0121", "B0FAKE0122", "B0FAKE0123", "B0FAKE0124"]
    assert {c.extra["format_type"] for c in editions} == {"unabridged", "original_recording", "abridged"}
    abridged = next(c for c in editions if c.extra["format_type"] == "abridged")
    assert abridged.narrators == ("Nicol Williamson",) and abridged.duration_s == 240 * 60
    assert all(c.series == () and c.authors == ("J. R. R. Tolkien",) for c in editions)
    assert "author" not in httpx.URL(replay.requests[0].split(" ", 1)[1]).params


def test_series_note_in_the_title_is_not_searched_for():
    replay = AudibleReplay()
    query = BookQuery("tc", "The Titan's Curse (Percy Jackson and the Olympians, Book 3)", "Rick Riordan")
    found, _, _ = enrich([query], replay)
    assert [(c.asin, c.series) for c in found["tc"]] == [("B0FAKE0063", (("Percy Jackson and the Olympians", "3"),))]
    assert httpx.URL(replay.requests[0].split(" ", 1)[1]).params["title"] == "The Titan's Curse"


def test_no_results_and_unknown_asin_give_no_candidates_and_no_errors():
    found, stats, errors = enrich(
        [BookQuery("none", "zzzz no such audiobook"), BookQuery("stub", "Whatever", asin="B0FAKE9999")]
    )
    assert found == {"none": [], "stub": []} and errors == [] and stats.errors == 0
    assert stats.skipped["not_found"] == 1  # the 200 stub without a title


def test_series_members_of_stormlight_include_the_unreleased_sixth_book():
    replay = AudibleReplay()
    with serve(replay) as url:
        audible = provider(url)
        with audible.session() as session:
            members = audible.series_members(session, "B0FAKES001")
    assert len(members) == 8
    assert [m["sequence"] for m in members] == ["1", "2", "2.5", "3", "3.5", "4", "5", "6"]
    assert members[0] == {
        "asin": "B0TEST0001", "title": "The Way of Kings", "sequence": "1", "sort": "1",
        "release_date": "2010-08-31", "duration_s": 2741 * 60, "format_type": "unabridged",
    }
    assert members[-1]["asin"] == "B0FAKE0008" and members[-1]["duration_s"] is None
    batch = [r for r in replay.requests if "asins=" in r]
    assert len(batch) == 1 and all(m["asin"] in httpx.URL(batch[0].split(" ", 1)[1]).params["asins"] for m in members)


def test_series_members_keep_duplicates_and_sort_numerically():
    with serve(AudibleReplay()) as url:
        audible = provider(url)
        with audible.session() as session:
            mistborn = audible.series_members(session, "B0FAKES002")
            expanse = audible.series_members(session, "B0FAKES003")
    assert [(m["sequence"], m["title"], m["format_type"]) for m in mistborn[:3]] == [
        ("1-3", "Mistborn Trilogy", "unabridged"),
        ("1", "The Final Empire", "unabridged"),
        ("1", "The Final Empire (Dramatized Adaptation)", "original_recording"),
    ]
    assert mistborn[-1]["title"] == "The Lost Metal" and mistborn[-1]["release_date"] == "2022-11-15"
    # recorded shuffled, `sort` is a string: "10" must not come before "2"
    assert [m["sort"] for m in expanse] == [str(n) for n in range(1, 17)]
    assert [m["sequence"] for m in expanse][:4] == ["1-3", "0.5", "1", "2"]


def test_second_identical_search_is_a_cache_hit():
    replay = AudibleReplay()
    cache = ResponseCache(None, timedelta(days=30))
    with serve(replay) as url:
        audible = provider(url)
        first, stats1, _ = audible.enrich([WAY_OF_KINGS], cache=cache)
        second, stats2, _ = audible.enrich([WAY_OF_KINGS], cache=cache)
    assert stats1.requests == 1 and stats1.cache_hits == 0
    assert stats2.requests == 0 and stats2.cache_hits == 1
    assert len(replay.requests) == 1 and second == first


def test_server_errors_and_rate_limits_are_retried():
    replay = AudibleReplay(fail_first=1, rate_limit_first=1, retry_after="0.01")
    found, stats, errors = enrich([WAY_OF_KINGS], replay)
    assert errors == [] and found["wok"][0].asin == "B0TEST0001"
    assert stats.requests == 3 and stats.rate_limited == 1 and len(replay.requests) == 3


def test_html_page_and_truncated_json_are_counted_not_raised():
    replay = AudibleReplay()

    def broken(request: httpx.Request) -> httpx.Response:
        title = request.url.params.get("title")
        if title == "The Hobbit":  # a captive portal or error page with status 200
            return httpx.Response(200, headers={"Content-Type": "text/html"}, text="<html><body>Sorry</body></html>")
        if title == "The Way of Kings":
            good = replay(request)
            return httpx.Response(200, headers={"Content-Type": "application/json"}, content=good.content[:200])
        return replay(request)

    queries = [WAY_OF_KINGS, BookQuery("hobbit", "The Hobbit"), BookQuery("tbp", "The Three-Body Problem", "Cixin Liu")]
    found, stats, errors = enrich(queries, broken)
    assert stats.skipped["not_json"] == 1 and stats.skipped["bad_json"] == 1 and stats.errors == 2
    assert len(errors) == 2 and set(found) == {"tbp"}
    assert all("title=" not in e for e in errors)  # no query strings in error text


def test_region_picks_the_marketplace_host():
    assert AudibleProvider().api_url == "https://api.audible.com"
    assert AudibleProvider(region="uk").api_url == "https://api.audible.co.uk"
    assert AudibleProvider(region="DE").api_url == "https://api.audible.de"
    assert AudibleProvider(base_url="http://127.0.0.1:9", region="jp").api_url == "http://127.0.0.1:9"
    with pytest.raises(ValueError, match="unknown region 'xx'"):
        AudibleProvider(region="xx").enrich([WAY_OF_KINGS])

    hosts = []
    replay = AudibleReplay()

    class Recording(AudibleProvider):
        def _transport(self) -> httpx.BaseTransport:
            return httpx.MockTransport(lambda request: hosts.append(request.url.host) or replay(request))

    found, _, errors = Recording(region="au").enrich([WAY_OF_KINGS])
    assert hosts == ["api.audible.com.au"] and errors == [] and found["wok"][0].asin == "B0TEST0001"


def test_replay_provider_runs_in_process():
    found, stats, errors = ReplayAudibleProvider(requests_per_second=50).enrich([BookQuery("wok", "x", asin="B0TEST0001")])
    assert errors == [] and stats.requests == 1 and found["wok"][0].title == "The Way of Kings"
