"""A replay of Prowlarr's and Jackett's Torznab endpoints built from the fixture XML.

The XML files beside this module follow the Prowlarr and Jackett writers (see
`shared/fixtures/torznab/README.md`). The handler answers both URL styles:

* Prowlarr: `GET /{id}/api` (and `/api/v1/indexer/{id}/newznab`), key in `apikey` or the
  `X-Api-Key` header; a wrong key is a 401 with an EMPTY body; downloads at `/{id}/download`
  answer the .torrent, or a 301 to the magnet when the tracker only has one
  (`RedirectPermanent` in Prowlarr's NewznabController).
* Jackett: `GET /api/v2.0/indexers/{id}/results/torznab/api`, key in `apikey` or `passkey`;
  a wrong key is a 401 with `<error code="100" .../>`; downloads at `/dl/{id}/?jackett_apikey=`
  answer the .torrent or a 302 to the magnet (`Redirect` in Jackett's DownloadController).

Like the real servers it writes links back to the host that was asked, with the key in
them; one replay holds one API key for both styles. A query containing "way of kings" or
"expanse" gets the whole recorded answer; any other query gets the recorded items that carry
all its words (so "Caliban's War" finds one book), or the empty answer. Served info-hashes and
magnets are those of the .torrent the replay serves for the item: one consistent world.
It is an `httpx` handler: the demo runs it through `httpx.MockTransport`, tests serve it on
loopback with `tests/servers.py`.
"""

from __future__ import annotations

import functools
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit
from xml.sax.saxutils import escape

import httpx

from mamcrawler.torrents import info_hash as torrent_info_hash
from mamcrawler.torznab_items import release_from_item
from resources.replay.mam import fold_words
from resources.replay.recorded import REPLAY_DIR
from resources.replay.recorded import fake_torrent as recorded_torrent

FIXTURES = REPLAY_DIR / "torznab"
PROWLARR_INDEXERS = {5: "caps_mam_via_prowlarr.xml", 12: "caps_book_indexer.xml"}
JACKETT_INDEXERS = {"exampleaudiotracker": "caps_book_indexer.xml"}
SEARCHES = {  # a phrase in q/title/author -> the whole recorded answer
    "way of kings": "search_book_prowlarr_mam_way_of_kings.xml",
    "expanse": "search_book_jackett_expanse.xml",
}
EMPTY_SEARCH = "search_book_empty.xml"
SEARCH_FUNCTIONS = {"search", "book", "tvsearch", "music", "movie"}
PROWLARR_RECORDED = "http://127.0.0.1:9696"  # the servers the fixtures were written for
JACKETT_RECORDED = "http://127.0.0.1:9117"
# Only the server's own URLs move to the asked host; Jackett guids name the tracker and stay put.
_SERVER_URLS = (f"{PROWLARR_RECORDED}/", f"{JACKETT_RECORDED}/dl/", f"{JACKETT_RECORDED}/api/")
FAKE_ANNOUNCE = "http://127.0.0.1:6969/announce"
MAX_LIMIT = 100  # `<limits max="100">` in both caps files
RSS_CONTENT_TYPE = "application/rss+xml; charset=utf-8"  # what Prowlarr sends, errors included
_NS = 'xmlns:atom="http://www.w3.org/2005/Atom" xmlns:torznab="http://torznab.com/schemas/2015/feed"'
_ITEM = re.compile(r"\s*<item>.*?</item>", re.DOTALL)
_KEY_IN_LINK = re.compile(r"((?:jackett_)?apikey=)[^&\"<\s]*")
_SYNTHETIC = re.compile(r"SYNTH(\d{6})")


def _text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def _recorded_key(file: str) -> str:
    entry = next(e for e in json.loads(_text("_index.json")) if e["file"] == file)
    return parse_qs(urlsplit(entry["url"]).query)["apikey"][0]


PROWLARR_KEY = _recorded_key("search_book_prowlarr_mam_way_of_kings.xml")  # fake, as written in the fixtures
JACKETT_KEY = _recorded_key("search_book_jackett_expanse.xml")


@dataclass(frozen=True)
class _Item:
    token: str  # Prowlarr `link=` / Jackett `path=` of the download link
    guid: str
    title: str
    filetype: str
    size: int
    torrent: bytes
    info_hash: str
    magnet: str
    words: frozenset[str]  # title, book title and authors, folded: what a query must all hit
    xml: str  # as served, before the host and key are put in


@dataclass(frozen=True)
class _Feed:
    head: str
    items: tuple[_Item, ...]
    tail: str


def _split(text: str) -> tuple[str, list[str], str]:
    matches = list(_ITEM.finditer(text))
    if not matches:
        end = re.search(r"\s*</channel>", text)
        assert end is not None
        return text[: end.start()], [], text[end.start() :]
    return text[: matches[0].start()], [m.group(0) for m in matches], text[matches[-1].end() :]


def _item(xml: str) -> _Item:
    """Parse one recorded `<item>`; give it the hash of the .torrent served for it."""
    element = ET.fromstring(f"<rss {_NS}>{xml}</rss>").find("item")
    assert element is not None
    release = release_from_item(element, "replay")
    assert not isinstance(release, str), release
    title = element.findtext("title") or ""
    link = release.download_url or ""
    query = parse_qs(urlsplit(link).query)
    token = (query.get("link") or query.get("path") or [release.release_id])[0]
    filetype = release.filetype or "m4b"
    size = release.size_bytes or 1
    torrent = fake_torrent(token, title, filetype, size)
    info_hash = torrent_info_hash(torrent)
    xml = re.sub(r'(name="infohash" value=")[0-9a-fA-F]{40}', rf"\g<1>{info_hash}", xml)
    xml = re.sub(r"btih:[0-9a-fA-F]{40}", f"btih:{info_hash.upper()}", xml)
    magnet = release.magnet or f"magnet:?xt=urn:btih:{info_hash}&dn={quote(title)}&tr={quote(FAKE_ANNOUNCE, safe='')}"
    magnet = re.sub(r"btih:[0-9a-fA-F]{40}", f"btih:{info_hash.upper()}", magnet)
    words = frozenset(fold_words(" ".join([title, release.title, *release.authors])))
    return _Item(token, release.release_id, title, filetype, size, torrent, info_hash, magnet, words, xml)


@functools.lru_cache(maxsize=8)
def _feed(name: str) -> _Feed:
    head, items, tail = _split(_text(name))
    return _Feed(head, tuple(_item(xml) for xml in items), tail)


def _answer(words: list[str]) -> tuple[_Feed, tuple[_Item, ...]]:
    """The recorded answer whose phrase the query contains; else the recorded items that
    carry every query word (indexers AND the words); else the empty answer."""
    text = " ".join(words)
    for phrase, name in SEARCHES.items():
        if phrase in text:
            return _feed(name), _feed(name).items
    for name in SEARCHES.values():
        if words and (hits := tuple(i for i in _feed(name).items if set(words) <= i.words)):
            return _feed(name), hits
    return _feed(EMPTY_SEARCH), ()


def synthetic_item(number: int) -> _Item:
    """Row `number` of a made-up answer, rendered like Prowlarr renders MAM rows."""
    title = f"Synthetic Audiobook {number:06d} by Fixture Author [ENG / M4B]"
    token = f"SYNTH{number:06d}"
    size = 500 * 1024 * 1024 + number
    xml = f"""
    <item>
      <title>{title}</title>
      <guid>https://www.myanonamouse.net/t/{1_950_000 + number}</guid>
      <prowlarrindexer id="5" type="private">MyAnonamouse</prowlarrindexer>
      <pubDate>Mon, 01 Jan 2024 00:00:00 +0000</pubDate>
      <size>{size}</size>
      <link>{PROWLARR_RECORDED}/5/download?apikey={PROWLARR_KEY}&amp;link={token}&amp;file={quote(title)}</link>
      <category>3030</category>
      <enclosure url="{PROWLARR_RECORDED}/5/download?apikey={PROWLARR_KEY}&amp;link={token}&amp;file={quote(title)}" length="{size}" type="application/x-bittorrent" />
      <torznab:attr name="category" value="3030" />
      <torznab:attr name="seeders" value="{number % 50 + 1}" />
      <torznab:attr name="files" value="1" />
      <torznab:attr name="peers" value="{number % 50 + 2}" />
      <torznab:attr name="author" value="Fixture Author" />
      <torznab:attr name="booktitle" value="Synthetic Audiobook {number:06d}" />
      <torznab:attr name="minimumratio" value="1" />
      <torznab:attr name="minimumseedtime" value="259200" />
      <torznab:attr name="downloadvolumefactor" value="1" />
      <torznab:attr name="uploadvolumefactor" value="1" />
    </item>"""
    return _item(xml)


def fake_torrent(token: str, title: str, filetype: str, size: int) -> bytes:
    """A deterministic private .torrent: one `<title>.<filetype>` file of the item's size."""
    stem = re.sub(r"\s*[/\\:]+\s*", " - ", title).strip()
    return recorded_torrent(token, f"{stem}.{filetype}", size, FAKE_ANNOUNCE)


class TorznabReplay:
    """Request handler that answers like Prowlarr and Jackett for the endpoints MAMcrawler uses.

    `rows_for_any_query` answers every search with that many made-up items (paging and
    caps tests); `magnet_only` holds guids whose tracker offers only a magnet (their
    download answers a redirect to it); `fail_first` answers that many requests with 503.
    `requests` records method and path only, never the key.
    """

    def __init__(
        self,
        api_key: str = PROWLARR_KEY,
        *,
        fail_first: int = 0,
        rows_for_any_query: int = 0,
        magnet_only: Collection[str] = (),
    ) -> None:
        self.api_key = api_key
        self.fail_first = fail_first
        self.rows_for_any_query = rows_for_any_query
        self.magnet_only = set(magnet_only)
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        if self.fail_first > 0:
            self.fail_first -= 1
            return httpx.Response(503, headers={"Content-Type": "text/plain"}, text="Service Unavailable")
        path, params = request.url.path, request.url.params
        base = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
        if request.method != "GET":
            return httpx.Response(405)
        if m := re.fullmatch(r"/(\d+)/api|/api/v1/indexer/(\d+)/newznab", path):
            if not self._prowlarr_key_ok(request):
                return httpx.Response(401)  # the ASP.NET challenge: no body at all
            indexer_id = int(m.group(1) or m.group(2))
            if indexer_id not in PROWLARR_INDEXERS:
                return httpx.Response(404, json={"message": "Indexer Not Found"})
            return self._api(PROWLARR_INDEXERS[indexer_id], params, base)
        if m := re.fullmatch(r"/api/v2\.0/indexers/([^/]+)/results/torznab(?:/api)?/?", path):
            if (params.get("apikey") or params.get("passkey")) != self.api_key:
                return _xml(_text("error_100_invalid_api_key.xml"), 401, "application/xml; charset=utf-8")
            if m.group(1) not in JACKETT_INDEXERS:
                return _xml(_error(201, "Indexer is not supported"), 404)
            return self._api(JACKETT_INDEXERS[m.group(1)], params, base)
        if m := re.fullmatch(r"/(\d+)/download|/api/v1/indexer/(\d+)/download", path):
            if not self._prowlarr_key_ok(request):
                return httpx.Response(401)
            if not params.get("link") or not params.get("file"):
                return httpx.Response(400, json={"message": "Invalid Prowlarr link"})
            return self._download(params["link"], base, redirect_status=301)
        if m := re.fullmatch(r"/dl/([^/]+)/?", path):
            if m.group(1) not in JACKETT_INDEXERS:
                return httpx.Response(404)
            if params.get("jackett_apikey") != self.api_key:
                return httpx.Response(401)
            return self._download(params.get("path", ""), base, redirect_status=302)
        return httpx.Response(404, headers={"Content-Type": "text/plain"}, text=f"Cannot GET {path}")

    def _prowlarr_key_ok(self, request: httpx.Request) -> bool:
        return (request.url.params.get("apikey") or request.headers.get("X-Api-Key")) == self.api_key

    def _api(self, caps_file: str, params: httpx.QueryParams, base: str) -> httpx.Response:
        function = (params.get("t") or "").strip().lower()
        if not function:
            return _xml(_text("error_200_missing_parameter_t.xml"), 400)
        if function == "caps":
            return _xml(_text(caps_file))
        if function not in SEARCH_FUNCTIONS:
            return _xml(_error(202, f"No such function ({function})"), 400)
        offset = max(0, _number(params.get("offset"), 0))
        limit = min(MAX_LIMIT, max(0, _number(params.get("limit"), MAX_LIMIT)))
        if self.rows_for_any_query:
            feed = _feed(EMPTY_SEARCH)
            items = [synthetic_item(n) for n in range(offset, min(offset + limit, self.rows_for_any_query))]
        else:
            feed, matches = _answer(fold_words(" ".join(" ".join(params.get_list(k)) for k in ("q", "title", "author"))))
            items = list(matches[offset : offset + limit])
        return _xml(self._localise(feed.head + "".join(i.xml for i in items) + feed.tail, base))

    def _localise(self, xml: str, base: str) -> str:
        """Links point at the host that was asked and carry this replay's key, as the real servers do."""
        for prefix in _SERVER_URLS:
            xml = xml.replace(prefix, base + prefix[prefix.index("/", 8) :])
        return _KEY_IN_LINK.sub(lambda m: m.group(1) + escape(quote(self.api_key, safe="")), xml)

    def _find(self, token: str) -> _Item | None:
        if (m := _SYNTHETIC.fullmatch(token)) and int(m.group(1)) < self.rows_for_any_query:
            return synthetic_item(int(m.group(1)))
        return next((i for name in SEARCHES.values() for i in _feed(name).items if i.token == token), None)

    def _download(self, token: str, base: str, redirect_status: int) -> httpx.Response:
        item = self._find(token)
        if item is None:
            return httpx.Response(404, headers={"Content-Type": "text/plain"}, text="Release not found")
        if item.guid in self.magnet_only:
            return httpx.Response(redirect_status, headers={"Location": item.magnet})
        filename = re.sub(r"[^A-Za-z0-9.,'() \[\]-]+", "_", item.title) + ".torrent"  # header values are ASCII
        return httpx.Response(
            200,
            headers={"Content-Type": "application/x-bittorrent", "Content-Disposition": f'attachment; filename="{filename}"'},
            content=item.torrent,
        )


def _xml(body: str, status: int = 200, content_type: str = RSS_CONTENT_TYPE) -> httpx.Response:
    return httpx.Response(status, headers={"Content-Type": content_type}, content=body.encode("utf-8"))


def _error(code: int, description: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<error code="{code}" description="{escape(description, {chr(34): "&quot;"})}" />'


def _number(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
