"""Asking the providers that list whole series (Audible, Hardcover) for their members,
and the ones that list an author's works (Audible, Hardcover, Open Library) for those."""

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from resources.audible import AudibleProvider
from resources.hardcover import HardcoverProvider, position_text
from resources.metadata_provider import (
    DailyBudget,
    MetadataProvider,
    ProviderError,
    ProviderQuotaError,
    ProviderResponseError,
    ProviderSession,
    ProviderStats,
    ProviderUnreachableError,
    ResponseCache,
)
from resources.openlibrary import OpenLibraryProvider, work_id, year_in

WORK_KEYS = (
    "author_key", "provider", "provider_author", "work_id", "title", "series", "position_raw",
    "release_date", "compilation", "contribution", "language",
)
PRIMARY_CONTRIBUTIONS = (None, "author")  # Hardcover: null is the author; anything else a side role
_ISO_DATE = re.compile(r"^\d{4}(-\d{2}-\d{2})?$")
_DATE_FORMATS = ("%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y", "%Y-%m-%dT%H:%M:%S")


Lister = Callable[[Any, ProviderSession, str], list[dict[str, Any]]]


def _list_refs(
    listers: list[tuple[MetadataProvider, Lister]],
    refs: list[tuple[str, str, str]],
    what: str,
    cache: ResponseCache,
    budget: DailyBudget,
    log: Callable[[str], None],
) -> tuple[list[tuple[str, str, str, list[dict[str, Any]]]], dict[str, ProviderStats], list[str]]:
    """(our key, provider, ref, listed rows) for every (key, provider, ref) an enabled provider
    can list. One session per provider; a failed ref is an error line and the others go on;
    a spent daily quota or an unreachable provider leaves its remaining refs for the next run."""
    found: list[tuple[str, str, str, list[dict[str, Any]]]] = []
    stats: dict[str, ProviderStats] = {}
    errors: list[str] = []
    for provider, lister in listers:
        mine = [r for r in refs if r[1] == provider.provider_name]
        if not mine:
            continue
        if not provider.enabled:
            log(provider.disabled_reason)
            continue
        stats[provider.provider_name] = ProviderStats()
        with provider.session(cache, stats[provider.provider_name], budget) as session:
            for key, name, ref in mine:
                try:
                    found.append((key, name, ref, lister(provider, session, ref)))
                except (ProviderQuotaError, ProviderUnreachableError) as exc:
                    errors.append(f"{name} {what} {ref}: {exc}")
                    if isinstance(exc, ProviderUnreachableError):
                        log(session.give_up())
                    break
                except ProviderError as exc:
                    errors.append(f"{name} {what} {ref}: {exc}")
        log(f"{provider.provider_name}: listed {len(mine)} {what} references")
    return found, stats, errors


def series_members(
    audible: AudibleProvider,
    hardcover: HardcoverProvider,
    refs: list[tuple[str, str, str]],
    cache: ResponseCache,
    budget: DailyBudget,
    log: Callable[[str], None],
) -> tuple[list[tuple[str, str, str, list[dict[str, Any]]]], dict[str, ProviderStats], list[str]]:
    """(series_id, provider, ref, members) for every series reference a provider can list."""
    return _list_refs([(audible, _audible_members), (hardcover, _hardcover_members)], refs, "series", cache, budget, log)


def _audible_members(provider: AudibleProvider, session, ref: str) -> list[dict[str, Any]]:
    return [
        {"title": m["title"], "sequence": m["sequence"], "release_date": m["release_date"], "asin": m["asin"],
         "duration_s": m["duration_s"], "compilation": False, "work_id": m["asin"]}
        for m in provider.series_members(session, ref)
    ]


def _hardcover_members(provider: HardcoverProvider, session, ref: str) -> list[dict[str, Any]]:
    series = provider.series_by_pk(session, int(ref))
    if series is None:
        return []
    return [
        {"title": b.title, "sequence": position_text(b.position, b.details), "release_date": b.release_date,
         "asin": None, "duration_s": None, "compilation": b.compilation, "work_id": str(b.book_id)}
        for b in series.books
    ]


def author_works(
    audible: AudibleProvider,
    hardcover: HardcoverProvider,
    openlibrary: OpenLibraryProvider,
    refs: list[tuple[str, str, str]],
    cache: ResponseCache,
    budget: DailyBudget,
    log: Callable[[str], None],
) -> tuple[list[dict[str, Any]], dict[str, ProviderStats], list[str]]:
    """One row per work (keys `WORK_KEYS`) for every (author_key, provider, ref) a provider
    can list; Hardcover rows only where the author is a primary author (not illustrator,
    translator, narrator...). An unknown author is an error line, not a crash."""
    listers = [(audible, _audible_works), (hardcover, _hardcover_works), (openlibrary, _openlibrary_works)]
    found, stats, errors = _list_refs(listers, refs, "author", cache, budget, log)
    rows = [
        {"author_key": key, "provider": name, "provider_author": ref, **work}
        for key, name, ref, works in found
        for work in works
    ]
    return rows, stats, errors


def _audible_works(provider: AudibleProvider, session: ProviderSession, ref: str) -> list[dict[str, Any]]:
    return [
        {"work_id": w["asin"], "title": w["title"], "series": w["series"], "position_raw": w["sequence"],
         "release_date": w["release_date"], "compilation": w["compilation"], "contribution": None,
         "language": w["language"]}
        for w in provider.author_works(session, ref)
    ]


def _hardcover_works(provider: HardcoverProvider, session, ref: str) -> list[dict[str, Any]]:
    if not str(ref).strip().isdigit():
        raise ProviderResponseError(f"{provider.provider_name}: {ref!r} is not a Hardcover author id", "bad_ref")
    author = provider.author_by_pk(session, int(ref))
    if author is None:
        raise ProviderResponseError(f"{provider.provider_name}: no author with id {ref}", "not_found")
    works: dict[str, dict[str, Any]] = {}
    for b in author.books:
        if (b.contribution.strip().lower() if b.contribution else None) not in PRIMARY_CONTRIBUTIONS:
            continue
        name, position, _ = b.series[0] if b.series else (None, None, None)
        works.setdefault(str(b.book_id), {
            "work_id": str(b.book_id), "title": b.title, "series": name or None, "position_raw": position_text(position),
            "release_date": str(b.release_year) if b.release_year else None, "compilation": b.compilation,
            "contribution": b.contribution, "language": None,
        })
    return list(works.values())


def _openlibrary_works(provider: OpenLibraryProvider, session, ref: str) -> list[dict[str, Any]]:
    # OpenLibraryNotFoundError (a ProviderError) for an unknown or merged author key.
    return [
        {"work_id": work_id(w["key"]), "title": w["title"], "series": None, "position_raw": None,
         "release_date": _release_date(w.get("first_publish_date")), "compilation": False, "contribution": None,
         "language": None}
        for w in provider.author_works(session, ref)
    ]


def _release_date(text: Any) -> str | None:
    """Open Library's free-text first_publish_date as "YYYY-MM-DD" or "YYYY":
    "2008" -> "2008", "August 31, 2010" -> "2010-08-31", "Spring 1999" -> "1999"."""
    text = " ".join(str(text or "").split())
    if not text or _ISO_DATE.match(text):
        return text or None
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    year = year_in(text)
    return str(year) if year else None
