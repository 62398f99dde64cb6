"""Torznab indexers (Prowlarr, Jackett) as one Dagster resource.

Facts this code relies on (`shared/fixtures/torznab/README.md`): a wrong key is a 401 with
an EMPTY body on Prowlarr and a 401 with `<error code="100">` on Jackett, and any error code
100-199 means "auth failed"; `t=book` accepts `title`/`author` only where caps list them in
`supportedParams` (MAM through Prowlarr takes only `q`); paging is `offset`/`limit`, at most
`<limits max>` per page; links carry the API key (`apikey`, Jackett `jackett_apikey`), which
is stripped before a `Release` is stored and added back only for the indexer's own host; a
download of a magnet-only release answers a redirect to the magnet (Prowlarr 301, Jackett 302).
Errors carry the indexer name, method and path: never the key or a query string. Text the
server wrote (error descriptions, which on Jackett can quote a tracker URL with its passkey)
goes through `redact`; release ids are `public_release_id`s.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import httpx
import torf
from dagster import Config, ConfigurableResource
from pydantic import Field, PrivateAttr

from mamcrawler.releases import Release
from mamcrawler.torznab_items import (
    MAX_FEED_BYTES,
    FeedError,
    TorznabCaps,
    error_from_feed,
    is_auth_error,
    parse_caps,
    public_release_id,
    redact,
    releases_from_feed,
)
from resources.fixed import FixedConfig
from resources.http import RETRY_STATUS, retry_after, send_with_retries
from resources.metadata_provider import TokenBucket
from resources.replay.torznab import JACKETT_KEY, TorznabReplay
from resources.secrets import ScrubbedError, register, scrubbed_text

# httpx logs full URLs at INFO, and Torznab keys travel in the query string.
logging.getLogger("httpx").setLevel(logging.WARNING)

__all__ = [
    "ReplayTorznabResource",
    "TorznabAuthError",
    "TorznabCaps",
    "TorznabError",
    "TorznabIndexerConfig",
    "TorznabResource",
    "TorznabResponseError",
    "TorznabSearch",
    "TorznabUnreachableError",
]

MAX_REDIRECTS = 5
MAX_RETRY_WAIT_S = 60.0  # Prowlarr's "disabled till ..." 429 can ask for hours: report it, do not sleep on it


class TorznabError(ScrubbedError):
    """Base class: a Torznab call failed."""


class TorznabAuthError(TorznabError):
    """The indexer rejected the API key (HTTP 401/403 or Torznab error 100-199)."""


class TorznabUnreachableError(TorznabError):
    """No usable answer: connection errors, timeouts, 5xx or 429 after retries."""


class TorznabResponseError(TorznabError):
    """Any other Torznab error code, or an answer that is not the XML (or .torrent) expected."""


class TorznabIndexerConfig(Config):
    name: str = Field(description="A short name; it is the `indexer` of every release found here")
    url: str = Field(description="The indexer's Torznab endpoint, e.g. http://127.0.0.1:9696/5/api")
    api_key: str = Field(description="Prowlarr/Jackett API key")
    categories: list[int] = Field(default=[3030], description="Torznab categories to search (3030 = Audio/Audiobook)")


@dataclass
class TorznabSearch:
    """What one search over every configured indexer found, with the numbers behind it."""

    releases: list[Release] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # indexer name -> what went wrong
    truncated: bool = False  # some indexer had more than `max_results`


@dataclass
class _Found:
    releases: dict[str, Release] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    truncated: bool = False

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count


_pacers: dict[tuple[str, str], TokenBucket] = {}
_pacers_lock = threading.Lock()


def _pacer(indexer: TorznabIndexerConfig, min_interval_s: float) -> TokenBucket | None:
    """One pacer per indexer in this process: every run and resource copy waits its turn."""
    if min_interval_s <= 0:
        return None
    rate = 1.0 / min_interval_s
    with _pacers_lock:
        pacer = _pacers.get((indexer.name, indexer.url))
        if pacer is None or pacer.rate != rate:
            pacer = _pacers[(indexer.name, indexer.url)] = TokenBucket(rate)
        return pacer


class TorznabResource(FixedConfig, ConfigurableResource):
    """Searches every configured Torznab indexer for a book and fetches chosen torrents."""

    indexers: list[TorznabIndexerConfig] = Field(default_factory=list)
    max_results: int = Field(default=200, ge=1, description="Releases kept per indexer and search")
    timeout_s: float = 30.0
    max_retries: int = 3
    backoff_s: float = 1.0
    min_interval_s: float = Field(default=1.0, ge=0, description="Seconds between two requests to one indexer")

    _caps: dict[tuple[str, str], TorznabCaps] = PrivateAttr(default_factory=dict)

    def _transport(self) -> httpx.BaseTransport | None:
        return None

    @contextlib.contextmanager
    def _client(self) -> Iterator[httpx.Client]:
        register(*(indexer.api_key for indexer in self.indexers))
        with httpx.Client(
            timeout=self.timeout_s,
            transport=self._transport(),
            follow_redirects=False,
            headers={"Accept": "application/rss+xml, application/xml;q=0.9, */*;q=0.5"},
        ) as client:
            yield client

    def _indexer(self, name: str) -> TorznabIndexerConfig:
        for indexer in self.indexers:
            if indexer.name == name:
                return indexer
        known = ", ".join(i.name for i in self.indexers) or "none"
        raise TorznabError(f"no Torznab indexer named {name!r} is configured (configured: {known})")

    # --- public ----------------------------------------------------------------------
    def caps(self, name: str) -> TorznabCaps:
        """What indexer `name` can search (`t=caps`), fetched now."""
        indexer = self._indexer(name)
        counter = [0]
        with self._client() as client:
            return self._fetch_caps(client, indexer, counter)

    def search(self, title: str, author: str | None = None) -> TorznabSearch:
        """Search every indexer for one book; an indexer that fails is reported in `errors`.

        Only when every indexer fails does the first error propagate: then nothing was
        searched at all, and the caller should say so rather than record "not found".
        """
        if not title.strip():
            raise ValueError("a Torznab search needs a title")
        result = TorznabSearch()
        first_error: TorznabError | None = None
        counter = [0]
        with self._client() as client:
            for indexer in self.indexers:
                try:
                    found = self._search_indexer(client, indexer, title.strip(), (author or "").strip() or None, counter)
                except TorznabError as exc:
                    result.errors[indexer.name] = str(exc)
                    first_error = first_error or exc
                    continue
                result.releases.extend(found.releases.values())
                result.truncated |= found.truncated
                for reason, count in found.skipped.items():
                    result.skipped[reason] = result.skipped.get(reason, 0) + count
        result.requests = counter[0]
        if first_error is not None and len(result.errors) == len(self.indexers):
            raise first_error
        return result

    def download_torrent(self, release: Release) -> bytes | str:
        """The release's .torrent bytes, or its magnet URI when that is all the indexer has.

        The API key goes back into the link only when the link points at the indexer's own
        scheme, host and port: a link to anywhere else never sees it.
        """
        indexer = self._indexer(release.indexer)
        if not release.download_url:
            if release.magnet:
                return release.magnet
            release_id = public_release_id(release.release_id)
            raise TorznabResponseError(f"{indexer.name}: release {release_id} has no download link")
        url = release.download_url
        if _same_origin(url, indexer.url):
            url = _with_key(url, indexer.api_key)
        counter = [0]
        with self._client() as client:
            for _ in range(MAX_REDIRECTS + 1):
                what = _describe(indexer, url)
                response = self._send(client, indexer, what, url, None, counter)
                if response.is_redirect:
                    location = response.headers.get("Location", "").strip()
                    if location.lower().startswith("magnet:"):
                        return location
                    url = urljoin(url, location)
                    if urlsplit(url).scheme not in ("http", "https"):
                        raise TorznabResponseError(f"{what} redirected to a {urlsplit(url).scheme or 'bad'} link")
                    continue
                self._raise_for_error(indexer, what, response)
                body = response.content
                if body[:7].lower() == b"magnet:":
                    return body.decode("utf-8", "replace").strip()
                if _bencoded(body):
                    return body
                content_type = redact(response.headers.get("Content-Type") or "no content type", (indexer.api_key,))
                raise TorznabResponseError(f"{what} did not answer a .torrent ({content_type}, {len(body)} bytes)")
        raise TorznabResponseError(
            f"{indexer.name}: more than {MAX_REDIRECTS} redirects for {public_release_id(release.release_id)}"
        )

    # --- searching ---------------------------------------------------------------------
    def _search_indexer(
        self, client: httpx.Client, indexer: TorznabIndexerConfig, title: str, author: str | None, counter: list[int]
    ) -> _Found:
        caps = self._caps.get((indexer.name, indexer.url)) or self._fetch_caps(client, indexer, counter)
        found = _Found()
        for params in _attempts(caps, title, author):
            if indexer.categories:
                params["cat"] = ",".join(str(c) for c in indexer.categories)
            attempt = self._pages(client, indexer, caps, params, counter)
            for reason, count in attempt.skipped.items():
                found.skip(reason, count)
            if attempt.releases:
                found.releases, found.truncated = attempt.releases, attempt.truncated
                break
        return found

    def _pages(
        self, client: httpx.Client, indexer: TorznabIndexerConfig, caps: TorznabCaps, params: dict[str, str],
        counter: list[int],
    ) -> _Found:
        found = _Found()
        page_size = max(1, min(caps.limit_max or 100, self.max_results))
        offset = 0
        while True:
            want = min(page_size, self.max_results - len(found.releases))
            what = _describe(indexer, indexer.url)
            xml = self._api(client, indexer, what, {**params, "offset": str(offset), "limit": str(want)}, counter)
            try:
                releases, skipped = releases_from_feed(xml, indexer.name)
            except FeedError as exc:
                raise TorznabResponseError(
                    f"{what} answered something that is not a Torznab feed: {redact(str(exc), (indexer.api_key,))}"
                ) from None
            for reason, count in skipped.items():
                found.skip(reason, count)
            items = len(releases) + sum(skipped.values())
            new = 0
            for release in releases:
                if release.release_id in found.releases:
                    found.skip("duplicate")
                elif len(found.releases) >= self.max_results:
                    found.truncated = True  # a server that sent more than `limit`
                else:
                    found.releases[release.release_id] = release
                    new += 1
            offset += items
            if items < want or new == 0:  # the last page, or a server that ignores `offset`
                return found
            if len(found.releases) >= self.max_results:
                found.truncated = True
                return found

    def _fetch_caps(self, client: httpx.Client, indexer: TorznabIndexerConfig, counter: list[int]) -> TorznabCaps:
        what = _describe(indexer, indexer.url)
        xml = self._api(client, indexer, what, {"t": "caps"}, counter)
        try:
            caps = parse_caps(xml)
        except FeedError as exc:
            raise TorznabResponseError(
                f"{what} t=caps did not answer Torznab caps: {redact(str(exc), (indexer.api_key,))}"
            ) from None
        self._caps[(indexer.name, indexer.url)] = caps
        return caps

    # --- HTTP ----------------------------------------------------------------------------
    def _api(
        self, client: httpx.Client, indexer: TorznabIndexerConfig, what: str, params: dict[str, str], counter: list[int]
    ) -> str:
        response = self._send(client, indexer, what, indexer.url, {**params, "apikey": indexer.api_key}, counter)
        if response.is_redirect:  # not followed: the key would travel wherever the server points
            target = urlsplit(urljoin(indexer.url, response.headers.get("Location", "")))
            raise TorznabResponseError(
                f"{what} redirected (HTTP {response.status_code}) to {target.scheme}://{target.hostname}; "
                "set the indexer URL to the address it redirects to"
            )
        self._raise_for_error(indexer, what, response)
        return scrubbed_text(response)

    def _send(
        self, client: httpx.Client, indexer: TorznabIndexerConfig, what: str, url: str,
        params: dict[str, str] | None, counter: list[int],
    ) -> httpx.Response:
        pacer = _pacer(indexer, self.min_interval_s)

        def send() -> httpx.Response:
            if pacer is not None:
                pacer.acquire()
            counter[0] += 1
            return _read_capped(client, url, params, what)

        try:
            return send_with_retries(
                send, what, max_retries=self.max_retries, backoff_s=self.backoff_s,
                retryable=lambda r: (retry_after(r) or 0) <= MAX_RETRY_WAIT_S,
            )
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            raise TorznabUnreachableError(f"{what}: no answer ({type(exc).__name__}); is the indexer URL right and the server up?") from None

    def _raise_for_error(self, indexer: TorznabIndexerConfig, what: str, response: httpx.Response) -> None:
        status = response.status_code
        error = error_from_feed(response.content) if response.content.lstrip()[:1] == b"<" else None
        # Jackett puts tracker exceptions in the description, tracker URLs (passkeys) included.
        detail = f"error {error[0]}: {redact(error[1], (indexer.api_key,))}" if error else f"HTTP {status}"
        if status in (401, 403) or (error and is_auth_error(error[0])):
            raise TorznabAuthError(f"{what} rejected the API key ({detail}); check the API key configured for {indexer.name}")
        if status in RETRY_STATUS or (error and error[0] == 429):
            notes = [detail] if error else []
            if wait := response.headers.get("Retry-After"):
                notes.append(f"Retry-After: {redact(wait, (indexer.api_key,))}")
            suffix = f" ({'; '.join(notes)})" if notes else ""
            raise TorznabUnreachableError(f"{what} answered HTTP {status}{suffix}")
        if error:
            raise TorznabResponseError(f"{what} answered {detail}")
        if status >= 300:
            raise TorznabResponseError(f"{what} answered HTTP {status}")


def _attempts(caps: TorznabCaps, title: str, author: str | None) -> list[dict[str, str]]:
    """The queries to try in order, until one finds something.

    Structured `title`/`author` only where the caps list them; otherwise words in `q`
    (title and author first, the title alone second: most indexers AND every word).
    """
    book = caps.book_search_params
    if "title" in book:
        if author and "author" in book:
            return [{"t": "book", "title": title, "author": author}, {"t": "book", "title": title}]
        return [{"t": "book", "title": title}]
    function = "book" if caps.book_search else "search"
    if author:
        return [{"t": function, "q": f"{title} {author}"}, {"t": function, "q": title}]
    return [{"t": function, "q": title}]


def _read_capped(client: httpx.Client, url: str, params: dict[str, str] | None, what: str) -> httpx.Response:
    """GET with the body read up to `MAX_FEED_BYTES`: a runaway answer is refused, not buffered."""
    with client.stream("GET", url, params=params) as streamed:
        chunks, size = [], 0
        for chunk in streamed.iter_bytes():
            size += len(chunk)
            if size > MAX_FEED_BYTES:
                raise TorznabResponseError(f"{what} answered more than {MAX_FEED_BYTES} bytes")
            chunks.append(chunk)
        headers = [
            (k, v) for k, v in streamed.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(streamed.status_code, headers=headers, content=b"".join(chunks), request=streamed.request)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port


def _same_origin(url: str, other: str) -> bool:
    return bool(_origin(url)[1]) and _origin(url) == _origin(other)


def _with_key(url: str, api_key: str) -> str:
    """Jackett's download route reads `jackett_apikey`; Prowlarr (and the Torznab API) `apikey`."""
    parts = urlsplit(url)
    name = "jackett_apikey" if "/dl/" in parts.path else "apikey"
    query = "&".join(filter(None, [parts.query, urlencode({name: api_key})]))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _describe(indexer: TorznabIndexerConfig, url: str) -> str:
    """`<indexer> GET <path>` for the indexer's own URLs; elsewhere only the host (paths there may hold tokens)."""
    if _same_origin(url, indexer.url):
        return f"{indexer.name} GET {urlsplit(url).path or '/'}"
    return f"{indexer.name} GET a link on {urlsplit(url).hostname or 'an unknown host'}"


def _bencoded(body: bytes) -> bool:
    if not body.startswith(b"d"):
        return False
    try:
        torf.Torrent.read_stream(io.BytesIO(body), validate=False)
    except torf.TorfError:
        return False
    return True


REPLAY_BASE_URL = "http://torznab.replay"


def _replay_indexers() -> list[TorznabIndexerConfig]:
    return [
        TorznabIndexerConfig(
            name="exampleaudiotracker",
            url=f"{REPLAY_BASE_URL}/api/v2.0/indexers/exampleaudiotracker/results/torznab/api",
            api_key=JACKETT_KEY,
        )
    ]


class ReplayTorznabResource(TorznabResource):
    """The demo: the real client against the Torznab replay (a fictional Jackett tracker)."""

    indexers: list[TorznabIndexerConfig] = Field(default_factory=_replay_indexers)
    min_interval_s: float = 0.0

    def _transport(self) -> httpx.BaseTransport:
        key = self.indexers[0].api_key if self.indexers else JACKETT_KEY
        return httpx.MockTransport(TorznabReplay(api_key=key))
