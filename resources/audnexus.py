"""Audnexus (`https://api.audnex.us`) as a metadata provider: Audible data per ASIN.

Facts this code relies on (`shared/fixtures/audnexus/README.md` and the audnexus source it
names: `src/config/types.ts` `ApiBookSchema`, `src/server.ts`, `ApiHelper.ts`):
- only lookups by ASIN exist for books (`GET /books/{asin}?region=us`), so a query without
  an ASIN is not sent at all;
- an ASIN Audible does not sell in that region is a 404 `REGION_UNAVAILABLE`, a normal
  answer here ("no candidate"), not a failure; its JSON body is cached like any answer so a
  monthly refresh does not ask again;
- `seriesPrimary`/`seriesSecondary` are `{asin?, name, position?}` with `position` a raw
  string; `genres` mix `type: "genre"` and `type: "tag"` (only genres become genres);
  `runtimeLengthMin` is 0 when unknown; `isbn` may be ""; `releaseDate` is an ISO timestamp;
- the server allows 100 requests per minute per IP and answers 429 with `retry-after`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
from pydantic import Field

from mamcrawler.candidates import BookQuery, Candidate, description_html, year_of
from mamcrawler.names import clean_text
from resources.audible import REGION_TLDS, VALID_ASIN, language_name, people
from resources.metadata_provider import (
    DailyBudget,
    MetadataProvider,
    ProviderError,
    ProviderSession,
    ProviderStats,
    ResponseCache,
)
from resources.replay.audnexus import AudnexusReplay


def _str(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


class AudnexusProvider(MetadataProvider):
    """Book metadata by ASIN from Audnexus; books without an ASIN are skipped without a request."""

    name: ClassVar[str] = "audnexus"
    base_url: str = "https://api.audnex.us"
    region: str = Field(default="us", description="Audible marketplace: us, uk, ca, au, in, de, fr, it, es, jp")
    requests_per_second: float = Field(default=1.5, gt=0, description="Audnexus allows 100 requests per minute per IP")

    @contextlib.contextmanager
    def session(
        self, cache: ResponseCache | None = None, stats: ProviderStats | None = None, budget: DailyBudget | None = None
    ) -> Iterator[ProviderSession]:
        if self.region.lower() not in REGION_TLDS:  # audnexus would answer 400 for every book
            raise ValueError(f"audnexus: unknown region {self.region!r}; use one of {', '.join(REGION_TLDS)}")
        with super().session(cache, stats, budget) as session:
            yield session

    def _classify(self, response: httpx.Response) -> ProviderError | None:
        """A 404 says "no such book in this region": let its JSON body through to `search`."""
        if response.status_code == 404:
            return None
        return super()._classify(response)

    def search(self, session: ProviderSession, query: BookQuery) -> list[Candidate]:
        asin = (query.asin or "").strip().upper()
        if not VALID_ASIN.match(asin):
            return []
        body = session.get_json(f"/books/{asin}", {"region": self.region.lower()})
        if not isinstance(body, dict) or "error" in body or not body.get("title"):
            session.stats.skip("not_found")
            return []
        return [self.candidate(body)]

    def candidate(self, book: dict[str, Any]) -> Candidate:
        """One audnexus book in the shared shape (`sanitise` drops absurd values later)."""
        series = tuple(
            (clean_text(s["name"]), _str(s.get("position")))
            for s in (book.get("seriesPrimary"), book.get("seriesSecondary"))
            if isinstance(s, dict) and _str(s.get("name"))
        )
        genres = [g for g in book.get("genres") or [] if isinstance(g, dict) and _str(g.get("name"))]
        runtime = book.get("runtimeLengthMin")
        has_runtime = isinstance(runtime, int | float) and not isinstance(runtime, bool) and runtime > 0
        return Candidate(
            provider=self.provider_name,
            provider_id=_str(book.get("asin")),
            title=_str(book.get("title")),
            subtitle=_str(book.get("subtitle")),
            authors=people(book.get("authors")),
            narrators=people(book.get("narrators")),
            series=series,
            year=year_of(book.get("releaseDate")),
            publisher=_str(book.get("publisherName")),
            isbn=_str(book.get("isbn")),
            asin=_str(book.get("asin")),
            language=language_name(book.get("language")),
            genres=tuple(clean_text(g["name"]) for g in genres if g.get("type") == "genre"),
            description=description_html(_str(book.get("summary")) or _str(book.get("description"))),
            cover=_str(book.get("image")),
            duration_s=runtime * 60 if has_runtime else None,
            is_audiobook=True,
            extra={
                "format_type": _str(book.get("formatType")),
                "tags": [clean_text(g["name"]) for g in genres if g.get("type") == "tag"],
                "copyright_year": book.get("copyright") if isinstance(book.get("copyright"), int) else None,
                "series_asins": {
                    clean_text(s["name"]): s.get("asin")
                    for s in (book.get("seriesPrimary"), book.get("seriesSecondary"))
                    if isinstance(s, dict) and _str(s.get("name"))
                },
            },
        )


class ReplayAudnexusProvider(AudnexusProvider):
    """The demo's Audnexus: the real provider against the recorded answers."""

    base_url: str = "http://audnexus.replay"
    requests_per_second: float = 200.0  # in-process replay: nothing remote to be polite to

    def _transport(self) -> httpx.BaseTransport:
        return httpx.MockTransport(AudnexusReplay())
