"""Malformed outside data, fed to the real parsers through the real clients where there is one
(a loopback MAM, Torznab indexer or metadata provider answering the raw bytes).

A case survives when only the module's documented error escapes, or the bad row is skipped
with a short counted reason and the good rows next to it are kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.fault_cases import CANARIES, FaultResult
from tests.servers import serve

GOOD_ROW = {"id": 1, "title": "Dune", "size": "460 KiB", "filetype": "mp3", "seeders": 4, "lang_code": "ENG",
            "author_info": json.dumps({"1": "Frank Herbert"}), "tags": "Unabridged | mp3"}


def _unexpected(name: str, exc: BaseException) -> FaultResult:
    return FaultResult(name, survived=False, detail=f"undocumented {type(exc).__name__} escaped: {str(exc)[:200]}")


# --- MAM rows, through MamResource.search -----------------------------------------------------

def _mam_search(name: str, bad_row_json: bytes) -> FaultResult:
    """MAM answers a good row and `bad_row_json` (raw JSON text: `Infinity` and deep nesting
    survive only that way); the good one is a release, the bad one skipped with a short
    counted reason or a release with a sane size."""
    from resources.mam import MamError, MamResource

    body = b'{"data": [' + json.dumps(GOOD_ROW).encode() + b", " + bad_row_json + b'], "found": 2}'

    def mam(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    try:
        with serve(mam) as url:
            resource = MamResource(base_url=url, mam_id=CANARIES["MAM_ID"], min_interval_s=0, backoff_s=0.01)
            with resource.session() as session:
                search = session.search("Dune", "Frank Herbert")
    except MamError as exc:
        return FaultResult(name, survived=False, detail=f"the whole search was lost: {exc}")
    except Exception as exc:
        return _unexpected(name, exc)
    good = [r for r in search.releases if r.release_id == "1"]
    sane = all(r.size_bytes is None or 0 <= r.size_bytes < 2**63 for r in search.releases)
    short = all(len(reason) < 60 for reason in search.skipped)
    counted = len(search.releases) + sum(search.skipped.values()) == 2
    return FaultResult(name, survived=bool(good) and sane and short and counted,
                       detail=f"{len(search.releases)} releases, skipped {search.skipped}")


def mam_size_list(work: Path) -> FaultResult:
    return _mam_search("parsers: MAM size is a list", b'{"id": 2, "title": "Dune 2", "size": [1]}')


def mam_size_infinity(work: Path) -> FaultResult:
    return _mam_search("parsers: MAM size is Infinity", b'{"id": 2, "title": "Dune 2", "size": Infinity}')


def mam_size_400_digits(work: Path) -> FaultResult:
    return _mam_search("parsers: MAM size of 400 digits", b'{"id": 2, "title": "Dune 2", "size": "' + b"9" * 400 + b' MiB"}')


def mam_nested_author_info(work: Path) -> FaultResult:
    nested = json.dumps("[" * 100_000 + "]" * 100_000).encode()  # author_info is a string holding JSON
    return _mam_search("parsers: MAM author_info nested 100,000 deep", b'{"id": 2, "title": "Dune 2", "author_info": ' + nested + b"}")


def mam_id_5000_digits(work: Path) -> FaultResult:
    return _mam_search("parsers: MAM id of 5,000 digits", b'{"id": ' + b"9" * 5000 + b', "title": "Dune 2"}')


# --- .torrent files, names, small helpers ---------------------------------------------------

def _documented(name: str, attempt: Callable[[], object], documented: type[BaseException], want: str = "") -> FaultResult:
    """`attempt` must raise `documented` (its message holding `want`), nothing else."""
    try:
        value = attempt()
    except documented as exc:
        return FaultResult(name, survived=want in str(exc), detail=f"{type(exc).__name__}: {str(exc)[:200]}")
    except Exception as exc:
        return _unexpected(name, exc)
    return FaultResult(name, survived=False, detail=f"accepted: {str(value)[:200]}")


def torrent_huge_integer(work: Path) -> FaultResult:
    from mamcrawler.torrents import InvalidTorrent, info_hash, torrent_files

    torrent = b"d4:infod6:lengthi" + b"9" * 5000 + b"e4:name1:a12:piece lengthi16384e6:pieces20:" + b"a" * 20 + b"ee"
    first = _documented("parsers: .torrent with a 5,000-digit integer", lambda: torrent_files(torrent), InvalidTorrent)
    if not first.survived:
        return first
    return _documented(first.name, lambda: (info_hash(torrent), torrent_files(torrent[:-30])), InvalidTorrent)


def unsafe_names(work: Path) -> FaultResult:
    """Names from a torrent or ABS: a lone surrogate is refused, the others made safe or refused."""
    from mamcrawler.importing import UnsafeName, safe_component

    refused = _documented("parsers: unsafe names", lambda: safe_component("ab\ud800c"), UnsafeName)
    if not refused.survived:
        return refused
    bad = []
    for name in ["..", ".", "", "  ", "a/b", "a\x00b", "x" * 300, "\udfff", "CON", "-rf", "é" * 150]:
        try:
            safe = safe_component(name)
        except UnsafeName:
            continue
        except Exception as exc:
            return _unexpected(refused.name, exc)
        if not safe or "/" in safe or "\x00" in safe or safe in (".", "..") or len(safe.encode()) > 255:
            bad.append(repr(name))
    return FaultResult(refused.name, survived=not bad, detail=f"unsafe results for {bad}" if bad else refused.detail)


def blank_filetype(work: Path) -> FaultResult:
    from mamcrawler.release_score import release_filetype
    from mamcrawler.releases import Release

    try:
        kinds = [release_filetype(Release(indexer="mam", release_id="1", title="x", filetype=f)) for f in ("  ", "", "\t\n")]
    except Exception as exc:
        return _unexpected("parsers: blank filetype", exc)
    return FaultResult("parsers: blank filetype", survived=kinds == [None, None, None], detail=f"filetypes {kinds}")


def infinite_position(work: Path) -> FaultResult:
    from mamcrawler.positions import format_position

    try:
        shown = [format_position(v) for v in (float("inf"), float("-inf"), float("nan"), 1e300)]
    except Exception as exc:
        return _unexpected("parsers: infinite series position", exc)
    return FaultResult("parsers: infinite series position", survived=all(isinstance(s, str) and s for s in shown),
                       detail=f"shown as {shown}")


# --- Torznab feeds, through TorznabResource.search ------------------------------------------

GARBAGE_FEEDS = [
    b"<rss><channel><item><title>Dune",  # cut off
    b"<rss>" + b"<a>" * 100_000,  # nested past any stack
    b"\xff\xfe\x00<",  # not text
    b"<!DOCTYPE x [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>]><rss>&b;</rss>",  # entities
    b"<html><body>Cloudflare</body></html>",
    b'<rss><channel><item><title>Dune &#0;</title></item></channel></rss>',  # a character XML forbids
    b"",
]
ITEM = ('<item><title>{title}</title><guid>{guid}</guid><link>http://x/{guid}.torrent</link><size>{size}</size>'
        '<torznab:attr name="seeders" value="{seeders}"/></item>')


def _torznab(body: bytes) -> Callable[[httpx.Request], httpx.Response]:
    from resources.replay.torznab import _text

    caps = _text("caps_book_indexer.xml")

    def indexer(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("t") == "caps":
            return httpx.Response(200, text=caps, headers={"Content-Type": "application/xml"})
        return httpx.Response(200, content=body, headers={"Content-Type": "application/xml"})

    return indexer


def _torznab_search(body: bytes):
    from resources.torznab import TorznabIndexerConfig, TorznabResource

    with serve(_torznab(body)) as url:
        config = TorznabIndexerConfig(name="garbage", url=f"{url}/api", api_key="torznab-key")
        return TorznabResource(indexers=[config], backoff_s=0.01, min_interval_s=0).search("Dune", "Frank Herbert")


def torznab_garbage_xml(work: Path) -> FaultResult:
    """An indexer answering garbage instead of a feed: a TorznabError saying so, every time."""
    from resources.torznab import TorznabError

    name, outcomes = "parsers: Torznab garbage XML", []
    for body in GARBAGE_FEEDS:
        try:
            search = _torznab_search(body)
            outcomes.append(f"accepted ({len(search.releases)} releases)" if search.releases else "empty")
        except TorznabError as exc:
            outcomes.append("TorznabError" if "not a Torznab feed" in str(exc) or "answered" in str(exc) else str(exc)[:80])
        except Exception as exc:
            return _unexpected(name, exc)
    survived = all(o in ("TorznabError", "empty") for o in outcomes)
    return FaultResult(name, survived=survived, detail="; ".join(outcomes))


def torznab_bad_items_among_good(work: Path) -> FaultResult:
    """A feed with good items and items of every bad kind: the good kept, the bad counted."""
    items = [ITEM.format(title="Dune", guid="g1", size=1000, seeders=3), ITEM.format(title="Dune Messiah", guid="g2", size=2000, seeders=1),
             ITEM.format(title="", guid="g3", size=10, seeders=1), ITEM.format(title="Dune", guid="g4", size="9" * 400, seeders="NaN"),
             "<item><title>Dune</title></item>", ITEM.format(title="Dune &amp; more", guid="g5", size=-1, seeders="inf")]
    feed = ('<rss xmlns:torznab="http://torznab.com/schemas/2015/feed"><channel>' + "".join(items) + "</channel></rss>").encode()
    name = "parsers: Torznab bad items among good"
    try:
        search = _torznab_search(feed)
    except Exception as exc:
        return _unexpected(name, exc)
    ids = sorted(r.release_id for r in search.releases)
    counted = len(search.releases) + sum(search.skipped.values()) == len(items)
    sane = all(r.size_bytes is None or 0 <= r.size_bytes < 2**63 for r in search.releases)
    return FaultResult(name, survived={"g1", "g2"} <= set(ids) and counted and sane,
                       detail=f"kept {ids}, skipped {search.skipped}")


# --- metadata providers, each through its real client ---------------------------------------

def _providers(url: str) -> list:
    from resources.audible import AudibleProvider
    from resources.audnexus import AudnexusProvider
    from resources.custom_provider import CustomProviderServer
    from resources.google_books import GoogleBooksProvider
    from resources.hardcover import HardcoverProvider
    from resources.openlibrary import OpenLibraryProvider

    fast = {"base_url": url, "backoff_s": 0.01, "requests_per_second": 1000}
    return [AudibleProvider(**fast), AudnexusProvider(**fast), GoogleBooksProvider(**fast),
            HardcoverProvider(token="provider-token", **fast), OpenLibraryProvider(**fast),
            CustomProviderServer(server_name="garbage", **fast)]


def _provider_garbage(name: str, bodies: list[bytes]) -> FaultResult:
    """Every provider answering each of `bodies`: candidates, or one counted error for the
    book, never an exception out of `enrich`."""
    from mamcrawler.candidates import BookQuery

    query = BookQuery("item-1", "Dune", "Frank Herbert", isbn="9780441013593", asin="B002V1OF70", duration_s=3600.0)
    current = [b""]

    def provider(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=current[0], headers={"Content-Type": "application/json"})

    bad = []
    with serve(provider) as url:
        for body in bodies:
            current[0] = body
            for client in _providers(url):
                try:
                    found, stats, errors = client.enrich([query])
                except Exception as exc:
                    bad.append(f"{client.provider_name}: {type(exc).__name__} escaped")
                    continue
                if "item-1" not in found and not (stats.errors == 1 and len(errors) == 1):
                    bad.append(f"{client.provider_name}: neither candidates nor a counted error")
    return FaultResult(name, survived=not bad, detail="; ".join(bad[:4]) or f"{len(bodies)} answers x 6 providers handled")


def provider_nested_json(work: Path) -> FaultResult:
    return _provider_garbage("parsers: provider answers JSON nested 100,000 deep",
                             [b"[" * 100_000 + b"]" * 100_000, b'{"items": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"])


def provider_wrong_shapes(work: Path) -> FaultResult:
    shapes = [[1, 2], "text", 7, None, {"items": "x"}, {"products": [1, None, {"title": 5}]},
              {"docs": [{"title": ["a"], "author_name": 3}]}, {"data": {"books": [{"title": None}]}},
              {"matches": [{"title": {"x": 1}, "series": "s", "authors": 5}]}, {"title": "Dune", "series": [7]}]
    return _provider_garbage("parsers: provider answers of the wrong shape", [json.dumps(s).encode() for s in shapes])


def provider_bad_bytes(work: Path) -> FaultResult:
    return _provider_garbage("parsers: provider answers bytes that are not JSON",
                             [b"\xff\xfe\x00", b'{"items": [', b"<html>rate limited</html>", b'{"title": "Du\\ud800ne"}',
                              b'{"items": [{"volumeInfo": {"pageCount": 1e400, "title": NaN}}]}'])


CASES = [
    mam_size_list, mam_size_infinity, mam_size_400_digits, mam_nested_author_info, mam_id_5000_digits,
    torrent_huge_integer, unsafe_names, blank_filetype, infinite_position,
    torznab_garbage_xml, torznab_bad_items_among_good,
    provider_nested_json, provider_wrong_shapes, provider_bad_bytes,
]
