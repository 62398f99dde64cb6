"""The Torznab resource against the Prowlarr/Jackett replay served on loopback."""

import io
import logging
from dataclasses import replace

import httpx
import pytest
import torf

from resources.replay.recorded import REPLAY_DIR
from resources.replay.torznab import PROWLARR_KEY, TorznabReplay
from resources.torznab import (
    ReplayTorznabResource,
    TorznabAuthError,
    TorznabIndexerConfig,
    TorznabResource,
    TorznabResponseError,
    TorznabUnreachableError,
)
from tests.servers import free_port, serve

KEY = "FAKE-TORZNAB-KEY-7"
MAM = "/5/api"
BOOKS = "/12/api"
JACKETT = "/api/v2.0/indexers/exampleaudiotracker/results/torznab/api"


def indexer(url: str, path: str, name: str = "idx", key: str = KEY) -> TorznabIndexerConfig:
    return TorznabIndexerConfig(name=name, url=f"{url}{path}", api_key=key)


def resource(*indexers: TorznabIndexerConfig, **kw) -> TorznabResource:
    kw = {"min_interval_s": 0, "backoff_s": 0.01, "max_retries": 1, **kw}
    return TorznabResource(indexers=list(indexers), **kw)


class Spy:
    """Wraps a replay and keeps every request's query parameters (tests may look at the key)."""

    def __init__(self, handler, drop: tuple[str, ...] = ()):
        self.handler, self.drop, self.params = handler, drop, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        for name in self.drop:
            url = url.copy_remove_param(name)
        self.params.append(dict(url.params))
        return self.handler(httpx.Request(request.method, url, headers=request.headers))


def searches(spy: Spy) -> list[dict]:
    return [p for p in spy.params if p.get("t") not in (None, "caps")]


def test_caps_of_prowlarr_and_jackett_indexers():
    with serve(TorznabReplay(api_key=KEY)) as url:
        torznab = resource(indexer(url, MAM, "mam"), indexer(url, BOOKS, "books"), indexer(url, JACKETT, "jackett"))
        mam, books, jackett = torznab.caps("mam"), torznab.caps("books"), torznab.caps("jackett")
    assert mam.book_search_params == {"q"} and mam.limit_max == 100
    assert mam.categories[100041] == "Audiobooks - Fantasy"
    assert books.book_search_params == jackett.book_search_params == {"q", "title", "author"}
    assert jackett.categories[3030] == "Audio/Audiobook"


def test_mam_through_prowlarr_searches_q_and_strips_the_title_suffix():
    replay = TorznabReplay(api_key=KEY)
    spy = Spy(replay)
    with serve(spy) as url:
        result = resource(indexer(url, MAM, "prowlarr-mam")).search("The Way of Kings", "Brandon Sanderson")
    assert result.errors == {} and result.skipped == {} and not result.truncated
    assert result.requests == 2 and replay.requests == ["GET /5/api", "GET /5/api"]  # caps, then one page
    (query,) = searches(spy)
    assert query == {
        "t": "book", "q": "The Way of Kings Brandon Sanderson", "cat": "3030", "offset": "0", "limit": "100",
        "apikey": KEY,
    }
    assert [r.title for r in result.releases] == [
        "The Way of Kings", "The Way of Kings", "The Way of Kings", "Der Weg der Könige",
        "The Way of Kings (Part 1 of 6) [Dramatized Adaptation]",
    ]
    vip = result.releases[0]
    assert vip.indexer == "prowlarr-mam" and vip.release_id == "https://www.myanonamouse.net/t/1100101"
    assert (vip.vip, vip.free, vip.language, vip.filetype, vip.authors) == (True, True, "ENG", "m4b", ("Brandon Sanderson",))
    assert [r.free for r in result.releases] == [True, True, True, False, False]  # downloadvolumefactor 0 / 1
    assert vip.download_url.startswith(f"{url}/5/download?link=FAKEENCRYPTEDLINK077f")


def test_jackett_search_uses_title_and_author_and_keeps_hashes():
    spy = Spy(TorznabReplay(api_key=KEY))
    with serve(spy) as url:
        torznab = resource(indexer(url, JACKETT, "jackett"))
        result = torznab.search("The Expanse", "James S. A. Corey")
        torrent = torznab.download_torrent(result.releases[0])
    (query,) = searches(spy)
    assert (query["t"], query["title"], query["author"]) == ("book", "The Expanse", "James S. A. Corey")
    assert "q" not in query
    titles = [r.title for r in result.releases]
    assert titles == ["Leviathan Wakes", "Caliban's War", "Abaddon's Gate", "Nemesis Games", "The Expanse Books 1-3"]
    first = result.releases[0]
    assert (first.seeders, first.leechers, first.num_files) == (214, 9, 2)
    assert first.magnet.startswith(f"magnet:?xt=urn:btih:{first.info_hash.upper()}")
    # The replay serves hashes that match the .torrent it serves: one consistent world.
    assert torf.Torrent.read_stream(io.BytesIO(torrent)).infohash == first.info_hash
    assert result.releases[-1].num_files == 3 and result.releases[-1].free


def test_nothing_found_falls_back_to_the_title_alone():
    spy = Spy(TorznabReplay(api_key=KEY))
    with serve(spy) as url:
        torznab = resource(indexer(url, MAM))
        alone = torznab.search("zzzz no such audiobook")
        with_author = torznab.search("zzzz no such audiobook", "Nobody")
    assert alone.releases == [] and alone.errors == {} and alone.requests == 2
    assert with_author.releases == [] and with_author.requests == 2  # caps are kept from the first search
    assert [q["q"] for q in searches(spy)] == [
        "zzzz no such audiobook", "zzzz no such audiobook Nobody", "zzzz no such audiobook",
    ]


def test_title_and_author_first_then_title_alone_on_a_book_indexer():
    spy = Spy(TorznabReplay(api_key=KEY))
    with serve(spy) as url:
        result = resource(indexer(url, BOOKS)).search("Caliban's War", "Wrong Author")
    assert [(q.get("title"), q.get("author")) for q in searches(spy)] == [
        ("Caliban's War", "Wrong Author"), ("Caliban's War", None),
    ]
    assert [r.title for r in result.releases] == ["Caliban's War"]


@pytest.mark.parametrize("path", [MAM, JACKETT])
def test_a_wrong_key_is_an_auth_error_without_the_key(path):
    wrong = "WRONG-KEY-42"
    with serve(TorznabReplay(api_key=KEY)) as url:
        torznab = resource(indexer(url, path, key=wrong))
        with pytest.raises(TorznabAuthError) as caps_error:
            torznab.caps("idx")
        with pytest.raises(TorznabAuthError) as search_error:
            torznab.search("The Way of Kings")
    for error in (caps_error.value, search_error.value):
        message = str(error)
        assert path in message and "rejected the API key" in message
        assert wrong not in message and KEY not in message and "apikey" not in message
    if path == JACKETT:
        assert "error 100: Invalid API Key" in str(caps_error.value)
    else:
        assert "HTTP 401" in str(caps_error.value)  # Prowlarr's 401 has no body


def test_a_missing_t_is_a_response_error():
    with serve(Spy(TorznabReplay(api_key=KEY), drop=("t",))) as url, pytest.raises(TorznabResponseError) as error:
        resource(indexer(url, MAM)).caps("idx")
    assert "error 200: Missing parameter (t)" in str(error.value) and KEY not in str(error.value)


def test_pages_follow_offset_until_a_short_page():
    spy = Spy(TorznabReplay(api_key=KEY, rows_for_any_query=150))
    with serve(spy) as url:
        result = resource(indexer(url, MAM)).search("anything")
    assert [(q["offset"], q["limit"]) for q in searches(spy)] == [("0", "100"), ("100", "100")]
    assert len(result.releases) == 150 and len({r.release_id for r in result.releases}) == 150
    assert not result.truncated and result.requests == 3


def test_ten_thousand_rows_are_capped_at_max_results():
    spy = Spy(TorznabReplay(api_key=KEY, rows_for_any_query=10_000))
    with serve(spy) as url:
        result = resource(indexer(url, MAM), max_results=250).search("anything", "anyone")
    assert [(q["offset"], q["limit"]) for q in searches(spy)] == [("0", "100"), ("100", "100"), ("200", "50")]
    assert len(result.releases) == 250 and result.truncated and result.requests == 4
    assert result.releases[0].title == "Synthetic Audiobook 000000"


def test_one_indexer_down_the_other_still_answers():
    dead = f"http://127.0.0.1:{free_port()}"
    with serve(TorznabReplay(api_key=KEY)) as url:
        result = resource(
            indexer(dead, MAM, "down"), indexer(url, JACKETT, "jackett"), indexer(url, MAM, "bad-key", key="NOPE-1"),
        ).search("The Expanse")
    assert len(result.releases) == 5 and {r.indexer for r in result.releases} == {"jackett"}
    assert set(result.errors) == {"down", "bad-key"}
    assert "no answer (ConnectError)" in result.errors["down"]
    assert "rejected the API key" in result.errors["bad-key"] and "NOPE-1" not in result.errors["bad-key"]


def test_every_indexer_down_raises_the_first_error():
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TorznabUnreachableError, match="down GET /5/api"):
        resource(indexer(dead, MAM, "down"), indexer(dead, JACKETT, "down-too")).search("x")


def test_unavailable_answers_are_retried():
    replay = TorznabReplay(api_key=KEY, fail_first=2)
    with serve(replay) as url:
        result = resource(indexer(url, JACKETT), max_retries=2).search("Caliban's War")
    assert [r.title for r in result.releases] == ["Caliban's War"]
    assert result.requests == 4 and len(replay.requests) == 4  # caps twice refused, caps, search


def test_stored_links_hold_no_key_and_the_replay_records_none():
    replay = TorznabReplay(api_key=KEY)
    with serve(replay) as url:
        torznab = resource(indexer(url, MAM, "mam"), indexer(url, JACKETT, "jackett"))
        result = torznab.search("The Way of Kings")
        result.releases += torznab.search("The Expanse").releases
        for release in result.releases:
            torznab.download_torrent(release)
    assert len(result.releases) == 20  # both indexers answer both queries from the same replay
    for release in result.releases:
        assert "apikey" not in release.download_url.lower() and KEY not in repr(release)
    assert all(KEY not in line and "?" not in line for line in replay.requests)
    assert "GET /5/download" in replay.requests and "GET /dl/exampleaudiotracker/" in replay.requests


def test_download_torrent_returns_a_private_single_file_torrent():
    with serve(TorznabReplay(api_key=KEY)) as url:
        torznab = resource(indexer(url, MAM, "mam"))
        release = torznab.search("The Way of Kings").releases[0]
        body = torznab.download_torrent(release)
        again = torznab.download_torrent(release)
    torrent = torf.Torrent.read_stream(io.BytesIO(body))
    assert body == again  # deterministic: the same release is the same torrent
    assert torrent.private and len(torrent.files) == 1
    assert torrent.name == "The Way of Kings by Brandon Sanderson [ENG - M4B] [VIP].m4b"
    assert torrent.size == release.size_bytes


def test_magnet_only_releases_answer_the_magnet():
    jackett_guid = "http://127.0.0.1:9117/fake-tracker/details/55502"
    mam_guid = "https://www.myanonamouse.net/t/1100102"
    replay = TorznabReplay(api_key=KEY, magnet_only={jackett_guid, mam_guid})
    with serve(replay) as url:
        torznab = resource(indexer(url, JACKETT, "jackett"), indexer(url, MAM, "mam"))
        jackett = next(r for r in torznab.search("Caliban's War").releases if r.indexer == "jackett")
        mam = next(r for r in torznab.search("The Way of Kings").releases if r.release_id == mam_guid and r.indexer == "mam")
        jackett_answer = torznab.download_torrent(jackett)  # Jackett: 302
        mam_answer = torznab.download_torrent(mam)  # Prowlarr: 301
    assert jackett_answer == jackett.magnet
    assert isinstance(mam_answer, str) and mam_answer.startswith("magnet:?xt=urn:btih:")


def test_the_key_goes_only_to_the_indexers_own_host():
    elsewhere = Spy(TorznabReplay(api_key=KEY))
    with serve(TorznabReplay(api_key=KEY)) as url, serve(elsewhere) as other:
        torznab = resource(indexer(url, MAM, "mam"))
        release = torznab.search("The Way of Kings").releases[0]
        moved = type(release)(**{**release.__dict__, "download_url": release.download_url.replace(url, other)})
        with pytest.raises(TorznabAuthError) as error:
            torznab.download_torrent(moved)
    assert elsewhere.params and all("apikey" not in p for p in elsewhere.params)
    assert "/5/download" not in str(error.value) and "127.0.0.1" in str(error.value)  # another host: no path


def test_an_html_page_instead_of_a_torrent_is_a_response_error():
    def login_page(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "text/html"}, text="<html>log in</html>")

    with serve(TorznabReplay(api_key=KEY)) as url, serve(login_page) as other:
        torznab = resource(indexer(url, MAM, "mam"))
        release = torznab.search("The Way of Kings").releases[0]
        moved = type(release)(**{**release.__dict__, "download_url": f"{other}/file.torrent"})
        with pytest.raises(TorznabResponseError, match=r"did not answer a \.torrent"):
            torznab.download_torrent(moved)


def test_the_demo_resource_runs_in_process():
    torznab = ReplayTorznabResource()
    result = torznab.search("Leviathan Wakes", "James S. A. Corey")
    assert [r.title for r in result.releases] == ["Leviathan Wakes"]
    assert torznab.caps("exampleaudiotracker").book_search_params == {"q", "title", "author"}
    body = torznab.download_torrent(result.releases[0])
    assert torf.Torrent.read_stream(io.BytesIO(body)).infohash == result.releases[0].info_hash
    assert torznab.indexers[0].api_key != PROWLARR_KEY  # the demo speaks Jackett with Jackett's fake key


def test_a_long_retry_after_is_reported_not_slept_on():
    def disabled(request: httpx.Request) -> httpx.Response:
        body = '<?xml version="1.0" encoding="UTF-8"?>\n<error code="429" description="Indexer is disabled till later" />'
        return httpx.Response(429, headers={"Retry-After": "3600", "Content-Type": "application/rss+xml"}, text=body)

    calls = []
    with serve(lambda request: calls.append(1) or disabled(request)) as url, pytest.raises(TorznabUnreachableError) as error:
        resource(indexer(url, MAM), max_retries=3).caps("idx")
    assert len(calls) == 1
    assert str(error.value) == (
        "idx GET /5/api answered HTTP 429 (error 429: Indexer is disabled till later; Retry-After: 3600)"
    )


def test_a_server_that_ignores_offset_does_not_loop():
    spy = Spy(TorznabReplay(api_key=KEY, rows_for_any_query=300), drop=("offset",))
    with serve(spy) as url:
        result = resource(indexer(url, MAM)).search("anything")
    assert len(result.releases) == 100 and result.skipped == {"duplicate": 100}
    assert len(searches(spy)) == 2 and not result.truncated


PASSKEY = "SECRET123"


def cardigann_indexer(tracker: str):
    """A Jackett/Cardigann indexer without details pages: guids are tracker links with the passkey,
    and its `/err/api` endpoint quotes a tracker URL (and the API key) in its error description."""
    caps = (REPLAY_DIR / "torznab" / "caps_book_indexer.xml").read_text(encoding="utf-8")
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        params = request.url.params
        if params.get("apikey") != KEY:
            description = f"Invalid API Key {params.get('apikey')} for {tracker}/rss.php?passkey={PASSKEY}"
            return httpx.Response(401, text=f'<error code="100" description="{description}" />')
        if len(calls) == 1:
            return httpx.Response(503, headers={"Retry-After": "0"}, text=f"{tracker}/?passkey={PASSKEY} is down")
        if request.url.path == "/err/api":
            description = f"Exception (tracker): GET {tracker}/rss.php?apikey={KEY}&amp;passkey={PASSKEY} failed"
            return httpx.Response(200, text=f'<error code="900" description="{description}" />')
        if params.get("t") == "caps":
            return httpx.Response(200, text=caps)
        link = f"{tracker}/download.php?id=7&amp;passkey={PASSKEY}"
        item = f"<item><title>The Hobbit [M4B]</title><guid>{link}</guid><link>{link}</link><size>5</size></item>"
        return httpx.Response(200, text=f"<rss><channel>{item}</channel></rss>")

    return handler


def test_no_key_or_passkey_reaches_releases_errors_exceptions_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    tracker_calls = []

    def tracker(request: httpx.Request) -> httpx.Response:
        tracker_calls.append(str(request.url))
        return httpx.Response(403, text=f"passkey={PASSKEY} is not valid; {KEY}")

    with serve(tracker) as tracker_url, serve(cardigann_indexer(tracker_url)) as url:
        torznab = resource(
            indexer(url, "/ok/api", "ok"), indexer(url, "/err/api", "err"), indexer(url, "/ok/api", "bad", key="NOPE-2"),
        )
        result = torznab.search("The Hobbit")
        (release,) = result.releases
        with pytest.raises(TorznabAuthError) as download_error:
            torznab.download_torrent(release)
        with pytest.raises(TorznabResponseError) as no_link_error:
            torznab.download_torrent(replace(release, download_url=None, magnet=None))
    assert release.release_id.startswith("g") and release.download_url == f"{tracker_url}/download.php?id=7"
    assert tracker_calls == [f"{tracker_url}/download.php?id=7"]  # the stored link went out as stored
    assert set(result.errors) == {"err", "bad"}
    assert "error 900: Exception (tracker): GET http://127.0.0.1:" in result.errors["err"]
    assert "rejected the API key" in result.errors["bad"]
    texts = [repr(result), str(download_error.value), str(no_link_error.value), caplog.text]
    for text in texts:
        assert PASSKEY not in text and KEY not in text and "NOPE-2" not in text
    assert "retry 1/1" in caplog.text  # the 503 was logged, by method and path
