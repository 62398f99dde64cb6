"""Open Library as a metadata provider, plus the author/work look-ups completeness needs.

Facts this code relies on (`shared/fixtures/openlibrary/README.md` and its sources:
shelfarr's VCR cassettes of real responses, Open Library's `plugins/openlibrary/api.py`
and `plugins/worksearch/schemes/works.py`, ABS `server/providers/OpenLibrary.js`,
LazyLibrarian `ol.py`):
- `GET /search.json?title=&author=` searches works (`alternative_title:` AND
  `author_name:`); without `fields=` the docs lack `isbn`, `publisher` and `subject`, so we
  ask for the fields we map; docs carry only non-empty fields; `language` holds MARC
  codes ("eng"); `cover_i` is a cover id for covers.openlibrary.org;
- `GET /authors/{id}/works.json` pages with `limit`/`offset` and `links.next` until the
  last page (entries unsorted; `links.prev` is unreliable);
- `GET /works/{id}.json`: `description` is a string or `{type, value}`; `covers` may hold
  -1; a merged work is a 200 record of type `/type/redirect` with `location`; an unknown
  work is a 404 without a Content-Type header.
Open Library asks clients to identify themselves and to go slowly: one request a second.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import httpx
from pydantic import Field

from mamcrawler.candidates import BookQuery, Candidate, description_html, isbn13
from resources.metadata_provider import (
    MetadataProvider,
    ProviderError,
    ProviderResponseError,
    ProviderSession,
)
from resources.replay.openlibrary import OpenLibraryReplay

SEARCH_LIMIT = 5
SEARCH_FIELDS = (
    "key,title,subtitle,author_name,author_key,first_publish_year,isbn,publisher,language,cover_i,subject,edition_count"
)
MAX_GENRES = 5
MAX_REDIRECTS = 3  # merges can chain; more than this is a loop
MAX_PAGES = 200  # 200 pages of works is far past any real author
COVER_URL = "https://covers.openlibrary.org/b/id/{}-L.jpg"

# MARC language codes Open Library sends -> the English names ABS shows.
LANGUAGES = {
    "eng": "English", "ger": "German", "fre": "French", "spa": "Spanish", "ita": "Italian", "por": "Portuguese",
    "dut": "Dutch", "swe": "Swedish", "dan": "Danish", "nor": "Norwegian", "fin": "Finnish", "pol": "Polish",
    "cze": "Czech", "hun": "Hungarian", "rus": "Russian", "ukr": "Ukrainian", "tur": "Turkish", "gre": "Greek",
    "heb": "Hebrew", "ara": "Arabic", "hin": "Hindi", "jpn": "Japanese", "chi": "Chinese", "kor": "Korean",
    "rum": "Romanian", "cat": "Catalan", "ice": "Icelandic", "lat": "Latin",
}
_YEAR = re.compile(r"\b(1[4-9]\d\d|20\d\d)\b")


class OpenLibraryNotFoundError(ProviderResponseError):
    """Open Library has no record at that key (HTTP 404)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "not_found")


def language_name(code: str | None) -> str | None:
    """"eng" -> "English"; an unknown code is kept as sent rather than lost."""
    return LANGUAGES.get(code.lower(), code) if code else None


def year_in(text: Any) -> int | None:
    """First plausible year in free text: "August 31, 2010" -> 2010."""
    match = _YEAR.search(str(text or ""))
    return int(match.group(1)) if match else None


def work_id(key: str) -> str:
    """"/works/OL990001W" or "OL990001W" -> "OL990001W"."""
    return key.rstrip("/").rsplit("/", 1)[-1].removesuffix(".json")


def doc_candidate(doc: dict[str, Any], provider: str = "openlibrary") -> Candidate:
    """One search doc (a work, all editions folded together) as a Candidate."""
    isbn = next((i for i in (isbn13(x) for x in doc.get("isbn") or []) if i), None)
    languages = doc.get("language") or []
    cover = doc.get("cover_i")
    return Candidate(
        provider=provider,
        provider_id=work_id(doc["key"]) if doc.get("key") else None,
        title=doc.get("title"),
        subtitle=doc.get("subtitle"),
        authors=tuple(doc.get("author_name") or ()),
        year=doc.get("first_publish_year") if isinstance(doc.get("first_publish_year"), int) else None,
        publisher=(doc.get("publisher") or [None])[0],
        isbn=isbn,
        language=language_name(languages[0]) if languages else None,
        genres=tuple((doc.get("subject") or [])[:MAX_GENRES]),
        cover=COVER_URL.format(cover) if isinstance(cover, int) and cover > 0 else None,
        is_audiobook=False,
        extra={
            "author_ids": author_ids(doc),
            "author_keys": list(doc.get("author_key") or []),
            "edition_count": doc.get("edition_count"),
            # The ISBNs of the work's editions: another edition we own is this work.
            **({"isbns": [i for i in (isbn13(x) for x in doc["isbn"][:200]) if i]} if isinstance(doc.get("isbn"), list) else {}),
        },
    )


def author_ids(doc: dict[str, Any]) -> dict[str, str]:
    """author_name zipped with author_key ("Brandon Sanderson" -> "OL990001A"); both lists
    come from the same author records, in the same order. A name seen twice keeps its
    first key."""
    ids: dict[str, str] = {}
    for name, key in zip(doc.get("author_name") or [], doc.get("author_key") or [], strict=False):
        if name and key and name not in ids:
            ids[name] = str(key).rstrip("/").rsplit("/", 1)[-1]
    return ids


def _description(raw: Any) -> str | None:
    if isinstance(raw, dict):
        raw = raw.get("value")
    return description_html(raw) if isinstance(raw, str) else None


class OpenLibraryProvider(MetadataProvider):
    """Open Library work search (free, no key); answers count less than edition-level sources."""

    name: ClassVar[str] = "openlibrary"
    base_url: str = "https://openlibrary.org"
    requests_per_second: float = Field(default=1.0, gt=0)
    weight: float = 0.7
    user_agent: str = Field(
        default="MAMcrawler/0.1 (self-hosted audiobook metadata)",
        description="Open Library asks clients to name themselves (add a contact address)",
    )

    def _headers(self) -> dict[str, str]:
        return {"User-Agent": self.user_agent}

    def _classify(self, response: httpx.Response) -> ProviderError | None:
        if response.status_code == 404:
            return OpenLibraryNotFoundError(f"{self.provider_name}: no record at that key (HTTP 404)")
        return super()._classify(response)

    def search(self, session: ProviderSession, query: BookQuery) -> list[Candidate]:
        title = " ".join((query.title or "").split())
        if not title:
            return []
        params: dict[str, Any] = {"title": title, "fields": SEARCH_FIELDS, "limit": SEARCH_LIMIT}
        if query.author:
            params["author"] = " ".join(query.author.split())
        body = session.get_json("/search.json", params)
        return [doc_candidate(d, self.provider_name) for d in body.get("docs") or [] if d.get("title")]

    def author_works(self, session: ProviderSession, author_key: str, page_size: int = 100) -> list[dict[str, Any]]:
        """Every work of an author, following `links.next`: key, title, first publish date/year.

        An unknown author raises `OpenLibraryNotFoundError` (a merged author's key 404s here;
        the caller decides whether to resolve it).
        """
        author = author_key.rstrip("/").rsplit("/", 1)[-1]
        path = f"/authors/{author}/works.json"
        params: dict[str, Any] = {"limit": page_size}
        works: dict[str, dict[str, Any]] = {}
        for _ in range(MAX_PAGES):
            body = session.get_json(path, params)
            for entry in body.get("entries") or []:
                if entry.get("key") and entry["key"] not in works:
                    works[entry["key"]] = {
                        "key": entry["key"],
                        "title": entry.get("title"),
                        "first_publish_date": entry.get("first_publish_date"),
                        "first_publish_year": year_in(entry.get("first_publish_date")),
                    }
            following = (body.get("links") or {}).get("next")
            if not following or not body.get("entries"):
                break
            url = httpx.URL(following)
            if url.path != path:  # only ever follow our own author's pages
                raise ProviderResponseError(f"{self.provider_name}: unexpected next link for {author}", "bad_link")
            params = dict(url.params)
        return list(works.values())

    def work(self, session: ProviderSession, work_key: str) -> dict[str, Any] | None:
        """One work record, merged works followed to their target; None when Open Library has none."""
        key = f"/works/{work_id(work_key)}"
        redirected_from = None
        for _ in range(MAX_REDIRECTS + 1):
            try:
                record = session.get_json(f"{key}.json")
            except OpenLibraryNotFoundError:
                return None
            if (record.get("type") or {}).get("key") != "/type/redirect":
                return {
                    "key": record.get("key") or key,
                    "title": record.get("title"),
                    "subtitle": record.get("subtitle"),
                    "description": _description(record.get("description")),
                    "covers": [c for c in record.get("covers") or [] if isinstance(c, int) and c > 0],
                    "subjects": list(record.get("subjects") or []),
                    "first_publish_date": record.get("first_publish_date"),
                    "first_publish_year": year_in(record.get("first_publish_date")),
                    "author_keys": [
                        a["author"]["key"] for a in record.get("authors") or [] if (a.get("author") or {}).get("key")
                    ],
                    "redirected_from": redirected_from,
                }
            redirected_from = redirected_from or key
            location = record.get("location") or ""
            if not location.startswith("/works/"):
                raise ProviderResponseError(f"{self.provider_name}: redirect record without a work location", "bad_redirect")
            key = f"/works/{work_id(location)}"
        raise ProviderResponseError(f"{self.provider_name}: more than {MAX_REDIRECTS} redirects from {work_key}", "redirect_loop")


class ReplayOpenLibraryProvider(OpenLibraryProvider):
    """The demo/test provider: the real client against the recorded Open Library answers."""

    base_url: str = "http://openlibrary.replay"
    requests_per_second: float = 200.0  # in-process replay: nothing remote to be polite to

    def _transport(self) -> httpx.BaseTransport:
        return httpx.MockTransport(OpenLibraryReplay())
