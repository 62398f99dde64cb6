"""Audible's public catalog API as a metadata provider (no account, no key).

Facts this code relies on (`shared/fixtures/audible/README.md` and the public sources it
names: audnexus `src/config/types.ts`, ABS `server/providers/Audible.js`, AudiMeta
`util/series.ts`, ReadMeABook's Audible notes):
- search is `GET /1.0/catalog/products?title=&author=&num_results=&products_sort_by=Relevance`
  and matches words, so a title like "The Titan's Curse (Percy Jackson…, Book 3)" is sent
  without its bracketed series note; products carry only `asin` unless `response_groups`
  asks for more;
- `GET /1.0/catalog/products/{asin}` answers 200 with a stub `{product: {asin}}` for an
  unknown ASIN: a product without `title` is "not found";
- translators are listed among `authors` as "Name - translator"; series `sequence` is a
  string ("1", "2.5", "1-3", "Book 1") and is passed on raw; `runtime_length_min` is
  minutes and missing for pre-orders; `language` is a lower-case English name;
- series members come from `?response_groups=relationships` on the series ASIN (children
  carry asin/sequence/sort only, `sort` a string) plus a batch `?asins=` lookup.
Each marketplace has its own host (`api.audible.<tld>`); `region` picks it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
from pydantic import Field

from mamcrawler.candidates import BookQuery, Candidate, description_html, year_of
from mamcrawler.names import author_key, clean_text, clean_title, display_author, split_authors
from mamcrawler.positions import parse_position
from resources.metadata_provider import DailyBudget, MetadataProvider, ProviderSession, ProviderStats, ResponseCache
from resources.replay.audible import AudibleReplay

DEFAULT_BASE_URL = "https://api.audible.com"
# Marketplace -> top-level domain, as audnexus `regionTLDs` and bragibooks list them.
REGION_TLDS = {
    "us": "com", "uk": "co.uk", "ca": "ca", "au": "com.au", "in": "in",
    "de": "de", "fr": "fr", "it": "it", "es": "es", "jp": "co.jp",
}
RESPONSE_GROUPS = "contributors,media,product_attrs,product_desc,product_extended_attrs,series"
BATCH_SIZE = 50  # num_results and asins lists are capped at 50 (ReadMeABook)
DROPPED_ROLES = frozenset({"translator"})  # not an author of the book we compare against
VALID_ASIN = re.compile(r"^[A-Z0-9]{10}$")  # anything else is searched by title instead
_ROLE = re.compile(r"^(?P<name>.+?)\s+-\s+(?P<role>[a-z][a-z ]*)$")
_SERIES_NOTE = re.compile(
    r"\s*[\(\[][^()\[\]]*(?:\bbook\s*\d|\bvol(?:ume)?\.?\s*\d|#\s*\d)[^()\[\]]*[\)\]]\s*$", re.IGNORECASE
)


def people(entries: Any, drop_roles: frozenset[str] = DROPPED_ROLES) -> tuple[str, ...]:
    """Names from `[{asin?, name}]`: "Ken Liu - translator" is dropped, other role suffixes stripped."""
    names: list[str] = []
    for entry in entries if isinstance(entries, list) else []:
        name = clean_text(entry.get("name")) if isinstance(entry, dict) and isinstance(entry.get("name"), str) else ""
        if m := _ROLE.match(name):
            if m.group("role").strip() in drop_roles:
                continue
            name = m.group("name").strip()
        if name and name not in names:
            names.append(name)
    return tuple(names)


def language_name(raw: Any) -> str | None:
    """"english" -> "English" (Audible and audnexus send lower-case English names)."""
    text = clean_text(raw) if isinstance(raw, str) else ""
    return text[:1].upper() + text[1:] if text else None


def search_title(title: str) -> str:
    """The words to search for: release noise and a trailing "(Series, Book 3)" removed."""
    text = clean_title(title)
    return _SERIES_NOTE.sub("", text).strip() or text


def _str(value: Any) -> str | None:
    """A non-empty stripped string, else None (absent keys, numbers where text belongs)."""
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _seconds(minutes: Any) -> float | None:
    """`runtime_length_min` in seconds; None when missing (pre-orders) or not a number."""
    if isinstance(minutes, bool) or not isinstance(minutes, int | float):
        return None
    return minutes * 60


class AudibleProvider(MetadataProvider):
    """Audible catalog search (title + author) or lookup by ASIN; audiobook editions only."""

    name: ClassVar[str] = "audible"
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="Catalog API root; left at the default, `region` picks the marketplace host",
    )
    region: str = Field(
        default="us",
        description="Marketplace: us, uk, ca, au, in, de, fr, it, es, jp -> https://api.audible.<tld> "
        "(uk -> co.uk, au -> com.au, jp -> co.jp). Ignored when base_url is set to another URL.",
    )
    requests_per_second: float = Field(default=2.0, gt=0)
    weight: float = Field(default=1.0, description="How much this provider's answers count in the consensus")

    @property
    def api_url(self) -> str:
        """The host requests go to: the marketplace's when `base_url` is the default."""
        if self.base_url.rstrip("/") != DEFAULT_BASE_URL:
            return self.base_url.rstrip("/")
        tld = REGION_TLDS.get(self.region.lower())
        if tld is None:
            raise ValueError(f"audible: unknown region {self.region!r}; use one of {', '.join(REGION_TLDS)}")
        return f"https://api.audible.{tld}"

    @contextlib.contextmanager
    def session(
        self, cache: ResponseCache | None = None, stats: ProviderStats | None = None, budget: DailyBudget | None = None
    ) -> Iterator[ProviderSession]:
        api_url = self.api_url  # an unknown region fails here, before any request
        with super().session(cache, stats, budget) as session:
            session.client.base_url = httpx.URL(api_url)
            yield session

    def search(self, session: ProviderSession, query: BookQuery) -> list[Candidate]:
        asin = (query.asin or "").strip().upper()
        if VALID_ASIN.match(asin):
            body = session.get_json(f"/1.0/catalog/products/{asin}", {"response_groups": RESPONSE_GROUPS})
            product = body.get("product") if isinstance(body, dict) else None
            if not isinstance(product, dict) or not product.get("title"):
                session.stats.skip("not_found")  # the 200 stub Audible sends for unknown ASINs
                return []
            return [self.candidate(product)]
        params: dict[str, Any] = {"title": search_title(query.title)}
        authors = split_authors(query.author)
        if authors:
            params["author"] = display_author(authors[0])
        params.update(num_results=10, products_sort_by="Relevance", response_groups=RESPONSE_GROUPS)
        body = session.get_json("/1.0/catalog/products", params)
        products = body.get("products") if isinstance(body, dict) else None
        return [self.candidate(p) for p in products or [] if isinstance(p, dict)]

    def author_works(self, session: ProviderSession, author: str, max_results: int = 200) -> list[dict[str, Any]]:
        """An author's audiobooks, newest first, paged by 50 until `max_results`: asin, title,
        series and sequence (the first series), release_date, language, compilation (a box set:
        a range sequence or several parts in one product). Only products that credit the author
        count: the catalogue matches words, not people."""
        wanted = author_key(author)
        works: list[dict[str, Any]] = []
        for page in range(max(1, -(-max_results // BATCH_SIZE))):
            body = session.get_json("/1.0/catalog/products", {
                "author": author, "num_results": BATCH_SIZE, "page": page, "products_sort_by": "-ReleaseDate",
                "response_groups": RESPONSE_GROUPS,
            })
            products = [p for p in (body.get("products") if isinstance(body, dict) else None) or [] if isinstance(p, dict)]
            for product in products:
                if not product.get("title") or wanted not in {author_key(a) for a in people(product.get("authors"))}:
                    continue
                series = next((s for s in product.get("series") or [] if isinstance(s, dict) and s.get("title")), {})
                sequence = _str(series.get("sequence"))
                position = parse_position(sequence)
                works.append({
                    "asin": _str(product.get("asin")), "title": clean_text(product["title"]),
                    "series": clean_text(series["title"]) if series else None, "sequence": sequence,
                    "release_date": _str(product.get("release_date")),
                    "language": language_name(product.get("language")),
                    "compilation": bool(position and position.kind == "omnibus")
                    or product.get("content_delivery_type") == "BookSeries",
                })
            if len(products) < BATCH_SIZE or len(works) >= max_results:
                break
        return works[:max_results]

    def candidate(self, product: dict[str, Any]) -> Candidate:
        """One catalog product in the shared shape (`sanitise` drops absurd values later)."""
        series = tuple(
            (clean_text(s["title"]), _str(s.get("sequence")))
            for s in product.get("series") or []
            if isinstance(s, dict) and isinstance(s.get("title"), str) and s["title"].strip()
        )
        images = product.get("product_images")
        summary = _str(product.get("publisher_summary")) or _str(product.get("merchandising_summary"))
        return Candidate(
            provider=self.provider_name,
            provider_id=_str(product.get("asin")),
            title=_str(product.get("title")),
            subtitle=_str(product.get("subtitle")),
            authors=people(product.get("authors")),
            narrators=people(product.get("narrators")),
            series=series,
            year=year_of(product.get("release_date") or product.get("issue_date")),
            publisher=_str(product.get("publisher_name")),
            isbn=_str(product.get("isbn")),
            asin=_str(product.get("asin")),
            language=language_name(product.get("language")),
            # `thesaurus_subject_keywords` are store slugs ("literature-and-fiction"), not
            # genres; genres come from audnexus' category ladder instead.
            genres=(),
            description=description_html(summary),
            cover=_str(images.get("500")) if isinstance(images, dict) else None,
            duration_s=_seconds(product.get("runtime_length_min")),
            is_audiobook=True,
            extra={
                # Audible lists an author's works by name (`?author=`), so the name is the reference.
                "author_ids": {name: name for name in people(product.get("authors"))},
                "format_type": _str(product.get("format_type")),
                "series_asins": {clean_text(s["title"]): s.get("asin") for s in product.get("series") or []
                                 if isinstance(s, dict) and isinstance(s.get("title"), str)},
                "keywords": list(product.get("thesaurus_subject_keywords") or []),
            },
        )

    def series_members(self, session: ProviderSession, series_asin: str) -> list[dict[str, Any]]:
        """Every book Audible lists in a series, in Audible's order, for completeness checks.

        Each: asin, title, sequence (raw string or None), sort (raw string), release_date
        (YYYY-MM-DD or None: unreleased or unknown), duration_s (None for pre-orders),
        format_type. A member the batch lookup does not know keeps title None.
        """
        body = session.get_json(f"/1.0/catalog/products/{series_asin}", {"response_groups": "relationships"})
        product = body.get("product") if isinstance(body, dict) else None
        children: dict[str, dict[str, Any]] = {}
        for rel in (product or {}).get("relationships") or []:
            if (
                isinstance(rel, dict) and isinstance(rel.get("asin"), str)
                and rel.get("relationship_to_product") == "child" and rel.get("relationship_type") == "series"
            ):
                children.setdefault(rel["asin"], rel)
        details: dict[str, dict[str, Any]] = {}
        asins = list(children)
        for start in range(0, len(asins), BATCH_SIZE):
            batch = session.get_json(
                "/1.0/catalog/products",
                {"asins": ",".join(asins[start : start + BATCH_SIZE]), "response_groups": RESPONSE_GROUPS},
            )
            for item in (batch.get("products") if isinstance(batch, dict) else None) or []:
                if isinstance(item, dict) and item.get("title"):
                    details[item["asin"]] = item
        members = []
        for position, (asin, rel) in enumerate(children.items()):
            item = details.get(asin, {})
            members.append({
                "asin": asin,
                "title": _str(item.get("title")),
                "sequence": _str(rel.get("sequence")),
                "sort": _str(rel.get("sort")),
                "release_date": _str(item.get("release_date")),
                "duration_s": _seconds(item.get("runtime_length_min")),
                "format_type": _str(item.get("format_type")),
                "_order": (_sort_number(rel.get("sort")), position),
            })
        members.sort(key=lambda m: m["_order"])
        for member in members:
            del member["_order"]
        return members


def _sort_number(raw: Any) -> float:
    """`sort` is a string ("10" after "9", not after "1"); unparsable ones go last."""
    try:
        return float(raw)
    except (TypeError, ValueError):
        return float("inf")


class ReplayAudibleProvider(AudibleProvider):
    """The demo's Audible: the real provider against the recorded catalog answers."""

    base_url: str = "http://audible.replay"
    requests_per_second: float = 200.0  # in-process replay: nothing remote to be polite to

    def _transport(self) -> httpx.BaseTransport:
        return httpx.MockTransport(AudibleReplay())
