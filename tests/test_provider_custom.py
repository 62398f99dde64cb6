"""ABS custom metadata provider servers against loopback servers replaying recorded answers."""

from datetime import timedelta

import httpx
import pytest

from mamcrawler.candidates import BookQuery
from resources.custom_provider import (
    CustomProviders,
    CustomProviderServer,
    ReplayCustomProviders,
    parse_match,
    series_list,
    tag_list,
    to_string,
)
from resources.metadata_provider import ProviderAuthError, ResponseCache
from resources.replay.custom_provider import CustomProviderReplay
from tests.servers import serve

AUTH = "custom-test-key-0123456789abcdef"
WAY_OF_KINGS = BookQuery("wok", "The Way of Kings", "Brandon Sanderson")
GUARDS = BookQuery("gg", "Guards! Guards!", "Terry Pratchett")


def server(url, name, **kw):
    kw.setdefault("auth", AUTH)
    return CustomProviderServer(server_name=name, base_url=url, requests_per_second=50, backoff_s=0.01, **kw)


def search(url, name, query, **kw):
    provider = server(url, name, **kw)
    with provider.session() as session:
        return provider.search(session, query)


def test_goodreads_style_answer():
    with serve(CustomProviderReplay(auth=AUTH)) as url:
        matches = search(url + "/goodreads", "goodreads", WAY_OF_KINGS)
    assert [m.provider for m in matches] == ["goodreads"] * 4
    first, split, german, prime = matches
    assert first.series == (("The Stormlight Archive", "1"), ("The Cosmere", None))
    assert first.isbn == "9780765326355" and first.year == 2010 and first.publisher == "Tor Books"
    assert first.genres == ("Fantasy", "Fiction", "High Fantasy", "Epic Fantasy", "Audiobook")
    assert first.duration_s is None and first.asin is None and not first.is_audiobook
    assert split.subtitle == "Part One" and split.isbn is None
    assert german.genres == () and german.description is None and german.language == "German"  # genres null, ""
    assert prime.language is None and prime.cover is None and prime.series == ()  # "" and []


def test_kindle_style_answer():
    with serve(CustomProviderReplay(auth=AUTH)) as url:
        matches = search(url + "/kindle/us", "kindle-us", WAY_OF_KINGS)
    assert [m.asin for m in matches] == ["B0FAKEK001", "B0FAKEK002", "B0FAKEK003"]
    assert matches[0].title == "The Way of Kings (The Stormlight Archive, Book 1)" and matches[0].series == ()
    assert matches[2].year is None and matches[2].authors == ("Brandon Sanderson",)


def test_full_fields_and_the_loosely_typed_match():
    with serve(CustomProviderReplay(auth=AUTH)) as url:
        full, loose = search(url, "fullfields", GUARDS)
    assert full.subtitle == "A Discworld Novel" and full.narrators == ("Nigel Planer",)
    assert full.series == (("Discworld", "8"), ("Discworld - City Watch", "1"))
    assert full.duration_s == 640 * 60 and full.is_audiobook  # the spec's duration is minutes
    assert full.asin == "B0FAKE0045" and full.isbn == "9798999900456" and full.year == 1989
    assert full.description.startswith("<p>Fixture: a secret society")  # HTML kept, as ABS keeps it
    assert full.extra["tags"] == ("Unabridged", "City Watch")
    # Second match: numbers, comma strings and a series without a name, as ABS tolerates them.
    assert loose.year == 2001  # publishedYear 2001 (a number)
    assert loose.authors == ("Terry Pratchett", "Stephen Briggs") and loose.narrators == ("A Full Cast",)
    assert loose.genres == ("Fantasy", "Humor")  # "Fantasy, Humor, Fantasy": split, trimmed, de-duplicated
    assert loose.series == (("Discworld", "8"),)  # sequence 8 -> "8"; the entry without `series` dropped
    assert loose.duration_s == 185 * 60  # "185" minutes
    assert loose.extra["tags"] == ("Dramatised",)


def test_request_shape_and_auth_sent_verbatim():
    seen = []
    replay = CustomProviderReplay(auth=AUTH)

    def spy(request):
        seen.append((request.url.path, dict(request.url.params), request.headers.get("Authorization")))
        return replay(request)

    with serve(spy) as url:
        search(url + "/goodreads", "goodreads", WAY_OF_KINGS)
        search(url, "fullfields", BookQuery("t", "Only A Title"))
    assert seen[0] == (
        "/goodreads/search",
        {"mediaType": "book", "query": "The Way of Kings", "author": "Brandon Sanderson"},
        AUTH,
    )
    assert seen[1][:2] == ("/search", {"mediaType": "book", "query": "Only A Title"})


def test_empty_matches():
    with serve(CustomProviderReplay(auth=AUTH)) as url:
        assert search(url, "fullfields", BookQuery("x", "zzzz no such book")) == []
        assert search(url + "/goodreads", "goodreads", GUARDS) == []  # recorded on another server only


@pytest.mark.parametrize("sent", ["WRONG-KEY", ""])
def test_rejected_or_missing_auth_is_an_auth_error_without_the_key(sent):
    with serve(CustomProviderReplay(auth=AUTH)) as url, pytest.raises(ProviderAuthError) as err:
        search(url + "/goodreads", "goodreads", WAY_OF_KINGS, auth=sent)
    assert "goodreads" in str(err.value) and "401" in str(err.value)
    assert AUTH not in str(err.value) and (not sent or sent not in str(err.value))


def test_upstream_500_is_retried():
    replay = CustomProviderReplay(auth=AUTH, fail_first=1)
    with serve(replay) as url:
        found, stats, errors = server(url, "fullfields").enrich([GUARDS])
    assert not errors and len(found["gg"]) == 2 and stats.requests == 2


def test_malformed_body_is_a_counted_skip_and_not_cached():
    def malformed(request):
        return httpx.Response(200, json={"results": [{"title": "Guards! Guards!"}]})

    cache = ResponseCache(None, timedelta(days=30))
    with serve(malformed) as url:
        found, stats, errors = server(url, "fullfields").enrich([GUARDS, WAY_OF_KINGS], cache=cache)
    assert found == {} and stats.skipped["malformed"] == 2 and stats.errors == 2
    assert len(errors) == 2 and all("matches" in e for e in errors)
    assert cache.fresh == {}


def test_untitled_matches_are_dropped_with_a_reason():
    def answer(request):
        return httpx.Response(200, json={"matches": [{"author": "Nobody"}, None, {"title": "Kept"}]})

    with serve(answer) as url:
        found, stats, _ = server(url, "other").enrich([GUARDS])
    assert [c.title for c in found["gg"]] == ["Kept"] and stats.skipped["no_title"] == 2


def test_disabled_without_url_and_weights_by_name():
    assert not CustomProviderServer(server_name="goodreads").enabled
    assert not CustomProviderServer(base_url="http://x").enabled
    config = CustomProviders(
        servers=[
            {"name": "goodreads", "url": "http://h/goodreads", "auth": AUTH},
            {"name": "kindle-us", "url": "http://h/kindle/us"},
            {"name": "audioteka", "url": "http://h/audioteka"},
            {"name": "lubimyczytac", "url": "http://h/lc"},
            {"name": "my-server", "url": "http://h"},
            {"name": "goodreads-2", "url": "http://h/goodreads", "weight": 0.3},
        ]
    )
    providers = config.providers()
    assert [(p.provider_name, p.weight) for p in providers] == [
        ("goodreads", 0.8), ("kindle-us", 0.8), ("audioteka", 0.7), ("lubimyczytac", 0.6),
        ("my-server", 0.5), ("goodreads-2", 0.3),
    ]
    assert all(p.enabled for p in providers) and providers[0].auth == AUTH and providers[1].auth == ""
    assert AUTH not in repr(providers[0])


def test_the_demo_replay_servers_run_in_process():
    names = {}
    for provider in ReplayCustomProviders().providers():
        found, _, errors = provider.enrich([WAY_OF_KINGS, GUARDS])
        assert not errors
        names[provider.provider_name] = (len(found["wok"]), len(found["gg"]))
    assert names == {"goodreads": (4, 0), "kindle-us": (3, 0), "fullfields": (0, 2)}


def test_coercions_follow_the_abs_adapter():
    assert to_string(8) == "8" and to_string(8.0) == "8" and to_string(2.5) == "2.5"
    assert to_string(True) is None and to_string({"a": 1}) is None and to_string(["A", 2]) == "A,2"
    assert tag_list(" a, b ,a,, ") == ("a", "b") and tag_list(["x", 1]) == () and tag_list(None) == ()
    assert series_list([{"series": "S", "sequence": 0}, {"series": 5}, {"series": "T", "sequence": 2.5}]) == (
        ("S", None), ("T", "2.5"),
    )
    assert parse_match({"title": "T", "duration": ""}, "p").duration_s is None
    assert parse_match({"title": "T", "duration": "abc"}, "p").duration_s is None
    assert parse_match({"title": "T", "description": 5, "cover": "not a url"}, "p").description is None
