"""Google Books as a metadata provider: printed-edition facts (ISBN, publisher, year).

Facts this code relies on (`shared/fixtures/googlebooks/README.md` and its sources:
Google's generated Books v1 client schema, ABS `server/providers/GoogleBooks.js`,
shelfarr's `google_books_client.rb`, reported error bodies):
- the search is `GET /books/v1/volumes?q=intitle:<title>+inauthor:<author>`, built the way
  ABS builds it (the `+` is a space once decoded); `maxResults` defaults to 10, max 40;
- `items` is absent when nothing matches; `publishedDate` is `YYYY-MM-DD`, `YYYY-MM` or
  `YYYY`; identifiers are `ISBN_13`/`ISBN_10`/`OTHER`; `language` is a BCP-47-ish code;
  `imageLinks` are http URLs; `seriesInfo` carries a series id and order, never a name;
- quota: a spent daily quota answers 429 `RESOURCE_EXHAUSTED` ("Queries per day") or, in
  the older format, 403 `usageLimits`/`dailyLimitExceeded`; a wrong key answers 400
  "API key not valid" (`API_KEY_INVALID`). Without `key=` requests share Google's
  anonymous quota, which is often spent: set an API key.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
from pydantic import Field

from mamcrawler.candidates import BookQuery, Candidate, description_html, isbn13, year_of
from resources.metadata_provider import (
    MetadataProvider,
    ProviderAuthError,
    ProviderError,
    ProviderQuotaError,
    ProviderSession,
)
from resources.replay.googlebooks import VALID_KEY, GoogleBooksReplay

VOLUMES = "/books/v1/volumes"
MAX_RESULTS = 10
QUOTA_REASONS = {"dailyLimitExceeded", "rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "RATE_LIMIT_EXCEEDED"}

# ISO 639-1 codes Google sends -> the English names ABS shows.
LANGUAGES = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "sv": "Swedish", "da": "Danish", "no": "Norwegian", "nb": "Norwegian", "fi": "Finnish",
    "pl": "Polish", "cs": "Czech", "hu": "Hungarian", "ru": "Russian", "uk": "Ukrainian", "tr": "Turkish",
    "el": "Greek", "he": "Hebrew", "ar": "Arabic", "hi": "Hindi", "ja": "Japanese", "zh": "Chinese",
    "ko": "Korean", "ro": "Romanian", "ca": "Catalan", "is": "Icelandic", "la": "Latin",
}


def language_name(code: str | None) -> str | None:
    """"en" / "en-GB" -> "English"; an unknown code is kept as sent rather than lost."""
    if not code:
        return None
    return LANGUAGES.get(code.split("-")[0].lower(), code)


def build_q(query: BookQuery) -> str | None:
    """`isbn:<digits>` when the book has a valid ISBN, else ABS's `intitle:<t> inauthor:<a>`."""
    isbn = isbn13(query.isbn)
    if isbn:
        return f"isbn:{isbn}"
    title = " ".join((query.title or "").split())
    if not title:
        return None
    author = " ".join((query.author or "").split())
    return f"intitle:{title} inauthor:{author}" if author else f"intitle:{title}"


def volume_candidate(volume: dict[str, Any], provider: str = "google") -> Candidate:
    """One `volumes` item as a Candidate (a printed or e-book edition, never an audiobook)."""
    info = volume.get("volumeInfo") or {}
    ids = {i.get("type"): i.get("identifier") for i in info.get("industryIdentifiers") or []}
    links = info.get("imageLinks") or {}
    cover = links.get("thumbnail") or links.get("smallThumbnail")
    series = info.get("seriesInfo") or {}
    extra: dict[str, Any] = {}
    if series.get("volumeSeries"):
        first = series["volumeSeries"][0]
        # The series name needs another lookup; keep the id and order for later.
        extra = {"series_id": first.get("seriesId"), "series_order": first.get("orderNumber")}
    return Candidate(
        provider=provider,
        provider_id=volume.get("id"),
        title=info.get("title"),
        subtitle=info.get("subtitle"),
        authors=tuple(info.get("authors") or ()),
        year=year_of(info.get("publishedDate")),
        publisher=info.get("publisher"),
        isbn=ids.get("ISBN_13") or ids.get("ISBN_10"),
        language=language_name(info.get("language")),
        genres=tuple(info.get("categories") or ()),
        description=description_html(info.get("description")),
        cover=cover.replace("http://", "https://", 1) if cover else None,
        is_audiobook=False,
        extra=extra,
    )


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body.get("error") or {} if isinstance(body, dict) else {}


class GoogleBooksProvider(MetadataProvider):
    """Google Books volumes search; `api_key` optional but the anonymous quota is shared."""

    name: ClassVar[str] = "google"
    base_url: str = "https://www.googleapis.com"
    api_key: str | None = Field(default=None, description="Google Books API key (sent as key=); empty = anonymous quota")
    requests_per_second: float = Field(default=1.0, gt=0)
    daily_budget: int | None = Field(default=1000, description="Requests per UTC day (Google's default key quota: 1,000)")
    weight: float = 1.0
    secret_params: ClassVar[tuple[str, ...]] = ("key",)

    def search(self, session: ProviderSession, query: BookQuery) -> list[Candidate]:
        q = build_q(query)
        if q is None:
            return []
        params: dict[str, Any] = {"q": q, "maxResults": MAX_RESULTS}
        if self.api_key:
            params["key"] = self.api_key
        body = session.get_json(VOLUMES, params)
        return [volume_candidate(v, self.provider_name) for v in body.get("items") or []]

    def _retryable(self, response: httpx.Response) -> bool:
        """A 429 for the daily quota will not pass by retrying; a burst 429 will."""
        return not isinstance(self._classify(response), ProviderQuotaError)

    def _classify(self, response: httpx.Response) -> ProviderError | None:
        """Quota answers stop the run for today; a bad key is an auth error (key never quoted)."""
        if response.status_code in (400, 403, 429):
            error = _error_body(response)
            reasons = {e.get("reason") for e in error.get("errors") or []}
            reasons |= {d.get("reason") for d in error.get("details") or []}
            domains = {e.get("domain") for e in error.get("errors") or []}
            if response.status_code in (403, 429) and (
                error.get("status") == "RESOURCE_EXHAUSTED" or reasons & QUOTA_REASONS or "usageLimits" in domains
            ):
                return ProviderQuotaError(
                    f"{self.provider_name}: Google's daily quota is spent (HTTP {response.status_code}); "
                    "the rest waits for tomorrow (the quota resets at midnight Pacific Time)"
                )
            if "API_KEY_INVALID" in reasons or "API key not valid" in str(error.get("message")):
                return ProviderAuthError(
                    f"{self.provider_name} rejected the API key (HTTP {response.status_code} API_KEY_INVALID): "
                    "check GOOGLE_BOOKS_API_KEY"
                )
        return super()._classify(response)


class ReplayGoogleBooksProvider(GoogleBooksProvider):
    """The demo/test provider: the real client against the recorded Google Books answers."""

    base_url: str = "http://googlebooks.replay"
    requests_per_second: float = 200.0  # in-process replay: nothing remote to be polite to
    api_key: str | None = VALID_KEY

    def _transport(self) -> httpx.BaseTransport:
        return httpx.MockTransport(GoogleBooksReplay(api_key=self.api_key))
