"""Hardcover (hardcover.app) as a metadata provider: GraphQL search, then the book by id.

Shapes come from `shared/fixtures/hardcover/README.md` and its sources (the Hasura schema
in blampe/rreading-glasses, LazyLibrarian's `hc.py`, Vito0912/hardcover-provider):
every call is `POST /v1/graphql` with `authorization: Bearer <token>`; `search` returns
`ids` (ints) and a Typesense payload whose `hits[].document.id` are strings; series
positions are float8 or null, `details` may hold a range ("1-3") for an omnibus; audio
editions carry `audio_seconds` and `reading_format` "Listened"; a GraphQL failure is an
HTTP 200 with an `errors` array (never cached: it is classified before the cache sees it).

The query texts are the recorded ones, verbatim: the replay refuses any other text, so
the client and the recordings cannot drift apart unnoticed. Hardcover allows 60 requests
a minute per token, so the default pace is 0.9 per second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from pydantic import Field

from mamcrawler.candidates import BookQuery, Candidate, description_html, isbn13, year_of
from mamcrawler.names import clean_text, title_key
from mamcrawler.positions import format_position, parse_position
from resources.metadata_provider import (
    MetadataProvider,
    ProviderAuthError,
    ProviderError,
    ProviderResponseError,
    ProviderSession,
)
from resources.replay.hardcover import REPLAY_TOKEN, HardcoverReplay
from resources.secrets import excerpt

GRAPHQL_PATH = "/v1/graphql"
PER_PAGE = 5

SEARCH_BOOKS = """query SearchBooks($query: String!, $perPage: Int!, $page: Int!) {
  search(query: $query, query_type: "Book", per_page: $perPage, page: $page) {
    error
    ids
    page
    per_page
    query
    query_type
    results
  }
}"""

BOOK_BY_PK = """query BookByPk($id: Int!) {
  books_by_pk(id: $id) {
    id
    title
    subtitle
    slug
    release_date
    release_year
    compilation
    rating
    ratings_count
    users_count
    cached_image(path: "url")
    cached_tags(path: "$.Genre")
    contributions {
      contribution
      author { id name slug }
    }
    book_series(order_by: {position: asc}) {
      position
      details
      featured
      series { id name slug books_count primary_books_count is_completed }
    }
    editions(order_by: {users_count: desc}, limit: 10) {
      id
      title
      subtitle
      asin
      isbn_10
      isbn_13
      audio_seconds
      pages
      edition_format
      physical_format
      release_date
      users_count
      reading_format { id format }
      language { code2 code3 language }
      publisher { id name }
      contributions { contribution author { id name } }
    }
  }
}"""

SERIES_BY_PK = """query SeriesByPk($id: Int!) {
  series_by_pk(id: $id) {
    id
    name
    slug
    description
    books_count
    primary_books_count
    is_completed
    author { id name }
    book_series(order_by: [{position: asc}, {book: {users_count: desc}}]) {
      book_id
      position
      details
      featured
      book { id title release_date release_year compilation users_count book_status_id }
    }
  }
}"""

AUTHOR_BY_PK = """query AuthorByPk($id: Int!, $limit: Int!, $offset: Int!) {
  authors_by_pk(id: $id) {
    id
    name
    slug
    bio
    born_year
    death_year
    books_count
    cached_image(path: "url")
    contributions(limit: $limit, offset: $offset, order_by: {book: {users_count: desc}}, where: {contributable_type: {_eq: "Book"}}) {
      contribution
      book {
        id
        title
        release_year
        compilation
        users_count
        book_series { position series { id name } }
      }
    }
  }
}"""

AUDIO_READING_FORMAT = 2  # reading_formats: 1 Read (print), 2 Listened (audio), 4 Ebook


@dataclass(frozen=True)
class SeriesBook:
    """One entry of a Hardcover series; several entries can share a position."""

    book_id: int
    title: str
    position: float | None  # None: in the series but unnumbered (companion, collection)
    details: str  # Hardcover's own label: "1-3" for an omnibus, "" when none
    featured: bool
    compilation: bool  # omnibus / box set
    release_date: str | None
    release_year: int | None


@dataclass(frozen=True)
class HardcoverSeries:
    series_id: int
    name: str
    books_count: int | None  # every entry
    primary_books_count: int | None  # whole-number positions only
    is_completed: bool | None
    author: str | None
    books: tuple[SeriesBook, ...]


@dataclass(frozen=True)
class AuthorBook:
    book_id: int
    title: str
    release_year: int | None
    compilation: bool
    contribution: str | None  # None: the author; else e.g. "Illustrator"
    users_count: int | None
    series: tuple[tuple[str, float | None, int | None], ...]  # (name, position, series id)


@dataclass(frozen=True)
class HardcoverAuthor:
    author_id: int
    name: str
    books_count: int | None
    books: tuple[AuthorBook, ...]  # most-read first


class HardcoverProvider(MetadataProvider):
    """Hardcover's book graph: series with fractional positions, audio editions with ASIN
    and length. Needs a personal API token (hardcover.app -> Settings -> API)."""

    name: ClassVar[str] = "hardcover"
    base_url: str = "https://api.hardcover.app"
    token: str = Field(default="", repr=False, description="Hardcover API token, with or without the 'Bearer ' prefix")
    requests_per_second: float = Field(default=0.9, gt=0, description="Hardcover allows 60 requests a minute per token")
    weight: float = 0.9
    books_per_search: int = Field(
        default=2, ge=1, le=5, description="At most this many BookByPk requests per searched book"
    )

    @property
    def enabled(self) -> bool:
        return bool(self.base_url) and bool(self.token.strip())

    @property
    def disabled_reason(self) -> str:
        if not self.base_url:
            return super().disabled_reason
        return f"{self.provider_name}: no API token configured (hardcover.app -> Settings -> API), skipped"

    def _headers(self) -> dict[str, str]:
        # Hardcover shows the token as "Bearer ey…"; users paste either form.
        token = self.token.strip()
        return {"authorization": token if token.startswith("Bearer ") else f"Bearer {token}"}

    def _classify(self, response: httpx.Response) -> ProviderError | None:
        """HTTP errors as usual; an HTTP 200 carrying GraphQL `errors` is an error too, so
        it never reaches the response cache."""
        error = super()._classify(response)
        if isinstance(error, ProviderAuthError):
            return ProviderAuthError(
                f"{self.provider_name} rejected the API token (HTTP {response.status_code}): "
                "copy a current one from hardcover.app -> Settings -> API"
            )
        if error is not None or len(response.content) > self.max_body_bytes:
            return error
        if "json" not in response.headers.get("content-type", "").lower():
            return None
        try:
            body = response.json()
        except ValueError:
            return None  # the base reports the broken body
        if isinstance(body, dict) and body.get("errors"):
            return self._graphql_error(body["errors"])
        return None

    def _graphql_error(self, errors: Any) -> ProviderResponseError:
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        message = excerpt(first.get("message") or "unknown error", extra=(self.token,))
        code = (first.get("extensions") or {}).get("code") if isinstance(first.get("extensions"), dict) else None
        return ProviderResponseError(
            f"{self.provider_name}: GraphQL error{f' ({code})' if code else ''}: {message}", "graphql_error"
        )

    def _graphql(self, session: ProviderSession, operation: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = session.post_json(GRAPHQL_PATH, {"operationName": operation, "query": query, "variables": variables})
        if isinstance(body, dict) and body.get("errors"):
            raise self._graphql_error(body["errors"])
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise ProviderResponseError(f"{self.provider_name}: {operation} answer has no `data` object", "malformed")
        return data

    # --- search ---------------------------------------------------------------------
    def search(self, session: ProviderSession, query: BookQuery) -> list[Candidate]:
        """SearchBooks on "title author", then BookByPk for the best hit (and the next one
        when it is the same title again, or when the best lacks the ISBN/ASIN we hold)."""
        text = " ".join(p for p in (clean_text(query.title), clean_text(query.author)) if p)
        found = self._graphql(session, "SearchBooks", SEARCH_BOOKS, {"query": text, "perPage": PER_PAGE, "page": 1})
        result = found.get("search")
        if not isinstance(result, dict):
            raise ProviderResponseError(f"{self.provider_name}: SearchBooks answer has no `search` object", "malformed")
        if result.get("error"):
            raise ProviderResponseError(f"{self.provider_name}: search failed: {excerpt(result['error'])}", "search_error")
        hits = ranked_hits(result, query)
        books: list[tuple[dict[str, Any], dict[str, Any]]] = []
        fetched = 0
        for rank, (book_id, doc) in enumerate(hits):
            if fetched >= self.books_per_search:
                break
            same_title = title_key(doc.get("title")) == title_key(query.title)
            still_looking = _wants_id(query) and not any(_carries(b, query) for b, _ in books)
            if rank and not (same_title or still_looking):
                continue
            fetched += 1
            if (book := self._book_raw(session, book_id)) is not None:
                books.append((book, doc))
        books.sort(key=lambda pair: not _carries(pair[0], query))  # stable: search order otherwise
        return [book_candidate(book, doc, query, self.provider_name) for book, doc in books]

    def book(self, session: ProviderSession, book_id: int, query: BookQuery | None = None) -> Candidate | None:
        """One book by Hardcover id as a candidate (None when the id is unknown)."""
        raw = self._book_raw(session, book_id)
        return None if raw is None else book_candidate(raw, {}, query, self.provider_name)

    def _book_raw(self, session: ProviderSession, book_id: int) -> dict[str, Any] | None:
        book = self._graphql(session, "BookByPk", BOOK_BY_PK, {"id": int(book_id)}).get("books_by_pk")
        return book if isinstance(book, dict) else None

    # --- series and authors (for completeness) -----------------------------------------
    def series_by_pk(self, session: ProviderSession, series_id: int) -> HardcoverSeries | None:
        """Every entry of a series in position order (unnumbered ones last); None if unknown."""
        raw = self._graphql(session, "SeriesByPk", SERIES_BY_PK, {"id": int(series_id)}).get("series_by_pk")
        if not isinstance(raw, dict):
            return None
        books = []
        for entry in raw.get("book_series") or []:
            book = entry.get("book") or {}
            books.append(
                SeriesBook(
                    book_id=int(entry.get("book_id") or book.get("id")),
                    title=clean_text(book.get("title")),
                    position=_float(entry.get("position")),
                    details=clean_text(entry.get("details")),
                    featured=bool(entry.get("featured")),
                    compilation=bool(book.get("compilation")),
                    release_date=book.get("release_date"),
                    release_year=book.get("release_year") or year_of(book.get("release_date")),
                )
            )
        return HardcoverSeries(
            series_id=int(raw["id"]),
            name=clean_text(raw.get("name")),
            books_count=raw.get("books_count"),
            primary_books_count=raw.get("primary_books_count"),
            is_completed=raw.get("is_completed"),
            author=(raw.get("author") or {}).get("name"),
            books=tuple(books),
        )

    def author_by_pk(
        self, session: ProviderSession, author_id: int, max_books: int = 100, page_size: int = 25
    ) -> HardcoverAuthor | None:
        """An author's books, most-read first, paged until `max_books`; None if unknown."""
        books: list[AuthorBook] = []
        head: dict[str, Any] | None = None
        offset = 0
        while offset < max_books:
            limit = min(page_size, max_books - offset)
            variables = {"id": int(author_id), "limit": limit, "offset": offset}
            raw = self._graphql(session, "AuthorByPk", AUTHOR_BY_PK, variables).get("authors_by_pk")
            if not isinstance(raw, dict):
                break
            head = head or raw
            page = raw.get("contributions") or []
            for item in page:
                book = item.get("book") or {}
                series = tuple(
                    (clean_text((s.get("series") or {}).get("name")), _float(s.get("position")), (s.get("series") or {}).get("id"))
                    for s in book.get("book_series") or []
                )
                books.append(
                    AuthorBook(
                        book_id=int(book["id"]),
                        title=clean_text(book.get("title")),
                        release_year=book.get("release_year"),
                        compilation=bool(book.get("compilation")),
                        contribution=item.get("contribution"),
                        users_count=book.get("users_count"),
                        series=series,
                    )
                )
            if len(page) < limit:
                break
            offset += limit
        if head is None:
            return None
        return HardcoverAuthor(int(head["id"]), clean_text(head.get("name")), head.get("books_count"), tuple(books))


class ReplayHardcoverProvider(HardcoverProvider):
    """The demo: the real client against the recorded Hardcover answers, in-process.

    Paced faster than the real API: nothing remote is asked."""

    base_url: str = "http://hardcover.replay"
    token: str = Field(default=REPLAY_TOKEN, repr=False)
    requests_per_second: float = 200.0  # in-process replay: nothing remote to be polite to

    def _transport(self) -> httpx.BaseTransport:
        return httpx.MockTransport(HardcoverReplay(token=self.token.strip().removeprefix("Bearer ")))


# --- parsing (pure functions, tested on the recorded bodies) ---------------------------
def ranked_hits(search: dict[str, Any], query: BookQuery | None = None) -> list[tuple[int, dict[str, Any]]]:
    """(book id, Typesense document) in Hardcover's order; hits whose documents list the
    ISBN we hold come first. `ids` are ints, document ids strings; `results` is jsonb."""
    results = search.get("results") or {}
    if isinstance(results, str):
        results = json.loads(results)
    docs: dict[int, dict[str, Any]] = {}
    for hit in results.get("hits") or []:
        doc = hit.get("document") or {}
        try:
            docs.setdefault(int(doc.get("id")), doc)
        except (TypeError, ValueError):
            continue
    ids = [int(i) for i in search.get("ids") or [] if str(i).isdigit()] or list(docs)
    hits = [(i, docs.get(i, {})) for i in dict.fromkeys(ids)]
    wanted = isbn13(query.isbn) if query else None
    if wanted:
        hits.sort(key=lambda hit: wanted not in {isbn13(x) for x in hit[1].get("isbns") or []})
    return hits


def book_candidate(
    book: dict[str, Any], doc: dict[str, Any], query: BookQuery | None = None, provider: str = "hardcover"
) -> Candidate:
    """A BookByPk answer (plus its search document, which alone has the description) as a
    candidate. The audiobook edition wins: its ASIN, narrators, publisher and length; the
    ISBN comes from the most-read edition in the same language when the audio edition has
    none (never from another language: a Spanish audiobook has no English ISBN)."""
    editions = [e for e in book.get("editions") or [] if isinstance(e, dict)]
    matched = next((e for e in editions if query and _edition_carries(e, query)), None)
    audios = [e for e in editions if _is_audio(e)]
    if matched is None:
        audio = audios[0] if audios else None  # editions come most-read first
    elif _is_audio(matched):
        audio = matched
    else:  # we hold a print ISBN: only an audio edition in that language is "ours"
        audio = next((e for e in audios if _lang(e) == _lang(matched)), None)
    main = audio or matched or (editions[0] if editions else {})
    isbn_from = next(
        (e for e in (matched, audio) if e and _edition_isbn(e)),
        next((e for e in editions if _edition_isbn(e) and _lang(e) == _lang(main)), None),
    )
    asin = (audio or {}).get("asin") or (matched or {}).get("asin")
    compilation = bool(book.get("compilation"))
    series = sorted(
        (s for s in book.get("book_series") or [] if (s.get("series") or {}).get("name")),
        key=lambda s: not s.get("featured"),
    )
    primary = [
        c["author"]
        for c in book.get("contributions") or []
        if c.get("contribution") in (None, "Author") and (c.get("author") or {}).get("name")
    ]
    return Candidate(
        provider=provider,
        provider_id=str(book.get("id")),
        title=clean_text(book.get("title")) or None,
        subtitle=clean_text(book.get("subtitle")) or None,
        authors=tuple(a["name"] for a in primary),
        narrators=tuple(
            c["author"]["name"]
            for c in (audio or {}).get("contributions") or []
            if c.get("contribution") == "Narrator" and (c.get("author") or {}).get("name")
        ),
        series=tuple(
            (clean_text(s["series"]["name"]), position_text(s.get("position"), s.get("details"))) for s in series
        ),
        year=book.get("release_year") or year_of(book.get("release_date")),
        publisher=((main.get("publisher") or {}).get("name")) or None,
        isbn=_edition_isbn(isbn_from) if isbn_from else None,
        asin=str(asin).upper() if asin else None,
        language=((main.get("language") or {}).get("language")) or None,
        genres=_genres(book.get("cached_tags")),
        description=description_html(doc.get("description")),
        cover=_image_url(book.get("cached_image")),
        duration_s=float(audio["audio_seconds"]) if audio and audio.get("audio_seconds") else None,
        is_audiobook=audio is not None,
        extra={
            # Other editions' titles (US/UK) and ISBNs: the same work under another name.
            "alternative_titles": _other_titles(book, doc),
            "isbns": sorted({i for e in editions for i in (isbn13(e.get("isbn_13")), isbn13(e.get("isbn_10"))) if i}
                            | {i for i in (isbn13(x) for x in doc.get("isbns") or []) if i}),
            "author_ids": {a["name"]: str(a["id"]) for a in primary if a.get("id") is not None},
            "compilation": compilation,
            "edition_id": main.get("id"),
            "series_ids": {clean_text(s["series"]["name"]): s["series"].get("id") for s in series},
            "users_count": book.get("users_count"),
        },
    )


def _other_titles(book: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    """The search document's alternative titles and the editions' own titles, other than the book's."""
    main = title_key(book.get("title"))
    titles = [*(doc.get("alternative_titles") or []), *(e.get("title") for e in book.get("editions") or [] if isinstance(e, dict))]
    out = {clean_text(t) for t in titles if isinstance(t, str) and clean_text(t)}
    return sorted(t for t in out if title_key(t) != main)


def position_text(position: Any, details: Any = None) -> str | None:
    """float8 position as ABS wants it: 1 -> "1", 2.5 -> "2.5", null -> None; an omnibus
    whose `details` is a range starting there ("1-3") keeps the range."""
    value = _float(position)
    if value is None:
        return None
    parsed = parse_position(details) if details else None
    if parsed is not None and parsed.kind == "omnibus" and parsed.lo == value:
        return parsed.raw
    return format_position(value)


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _is_audio(edition: dict[str, Any]) -> bool:
    """Listened reading format, audio length, or an audio edition format. An ASIN alone is
    not enough: Kindle editions carry ASINs too."""
    fmt = edition.get("reading_format") or {}
    return (
        fmt.get("id") == AUDIO_READING_FORMAT
        or fmt.get("format") == "Listened"
        or bool(edition.get("audio_seconds"))
        or "audio" in str(edition.get("edition_format") or "").lower()
    )


def _lang(edition: dict[str, Any] | None) -> str | None:
    return ((edition or {}).get("language") or {}).get("code2")


def _edition_isbn(edition: dict[str, Any]) -> str | None:
    return isbn13(edition.get("isbn_13")) or isbn13(edition.get("isbn_10"))


def _wants_id(query: BookQuery | None) -> bool:
    return bool(query and (query.asin or isbn13(query.isbn)))


def _edition_carries(edition: dict[str, Any], query: BookQuery) -> bool:
    if query.asin and str(edition.get("asin") or "").upper() == query.asin.upper():
        return True
    wanted = isbn13(query.isbn)
    return bool(wanted) and wanted == _edition_isbn(edition)


def _carries(book: dict[str, Any], query: BookQuery | None) -> bool:
    return bool(query) and any(_edition_carries(e, query) for e in book.get("editions") or [] if isinstance(e, dict))


def _genres(tags: Any) -> tuple[str, ...]:
    """`cached_tags(path: "$.Genre")` is a list of tag objects; without the path it is an
    object keyed by category."""
    if isinstance(tags, dict):
        tags = tags.get("Genre") or []
    names = (
        t.get("tag")
        for t in tags or []
        if isinstance(t, dict) and t.get("category") in (None, "Genre")
    )
    return tuple(dict.fromkeys(clean_text(n) for n in names if clean_text(n)))


def _image_url(image: Any) -> str | None:
    """`cached_image(path: "url")` is a string; without the path an object with `url`."""
    if isinstance(image, dict):
        image = image.get("url")
    return image if isinstance(image, str) and image.startswith("http") else None
