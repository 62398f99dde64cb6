"""Asking the providers that list whole series (Audible, Hardcover) for their members."""

from collections.abc import Callable
from typing import Any

from resources.audible import AudibleProvider
from resources.hardcover import HardcoverProvider, position_text
from resources.metadata_provider import DailyBudget, ProviderError, ProviderStats, ResponseCache


def series_members(
    audible: AudibleProvider,
    hardcover: HardcoverProvider,
    refs: list[tuple[str, str, str]],
    cache: ResponseCache,
    budget: DailyBudget,
    log: Callable[[str], None],
) -> tuple[list[tuple[str, str, str, list[dict[str, Any]]]], dict[str, ProviderStats], list[str]]:
    """(series_id, provider, ref, members) for every reference a provider can list."""
    found: list[tuple[str, str, str, list[dict[str, Any]]]] = []
    stats: dict[str, ProviderStats] = {}
    errors: list[str] = []
    for provider, lister in ((audible, _audible_members), (hardcover, _hardcover_members)):
        mine = [r for r in refs if r[1] == provider.provider_name]
        if not mine:
            continue
        if not provider.enabled:
            log(provider.disabled_reason)
            continue
        stats[provider.provider_name] = ProviderStats()
        with provider.session(cache, stats[provider.provider_name], budget) as session:
            for series_id, name, ref in mine:
                try:
                    found.append((series_id, name, ref, lister(provider, session, ref)))
                except ProviderError as exc:
                    errors.append(f"{name} series {ref}: {exc}")
        log(f"{provider.provider_name}: listed {len(mine)} series")
    return found, stats, errors


def _audible_members(provider: AudibleProvider, session, ref: str) -> list[dict[str, Any]]:
    return [
        {"title": m["title"], "sequence": m["sequence"], "release_date": m["release_date"], "asin": m["asin"],
         "duration_s": m["duration_s"], "compilation": False}
        for m in provider.series_members(session, ref)
    ]


def _hardcover_members(provider: HardcoverProvider, session, ref: str) -> list[dict[str, Any]]:
    series = provider.series_by_pk(session, int(ref))
    if series is None:
        return []
    return [
        {"title": b.title, "sequence": position_text(b.position, b.details), "release_date": b.release_date,
         "asin": None, "duration_s": None, "compilation": b.compilation}
        for b in series.books
    ]
