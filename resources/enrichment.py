"""Asking every configured provider about a set of books, and the enrichment settings."""

from collections.abc import Callable
from dataclasses import replace

from dagster import ConfigurableResource
from pydantic import Field

from mamcrawler.candidates import BookQuery, Candidate
from mamcrawler.figures import EnrichmentProgress
from resources.fixed import FixedConfig
from resources.metadata_provider import DailyBudget, MetadataProvider, ProviderStats, ResponseCache

CONFIDENCE_LEVELS = ("LOW", "MEDIUM", "HIGH")


class EnrichmentSettings(FixedConfig, ConfigurableResource):
    """How enrichment behaves; write-back stays a dry run until `writeback_enabled`."""

    cache_ttl_days: float = Field(default=30, gt=0, description="How long a provider answer is reused")
    writeback_enabled: bool = Field(default=False, description="Send changes to ABS (otherwise only record them)")
    writeback_min_confidence: str = Field(default="HIGH", description="LOW, MEDIUM or HIGH")


def collect_candidates(
    providers: list[MetadataProvider],
    queries: list[BookQuery],
    cache: ResponseCache,
    budget: DailyBudget,
    log: Callable[[str], None],
) -> tuple[dict[str, list[Candidate]], dict[str, set[str]], dict[str, set[str]], dict[str, ProviderStats], list[str]]:
    """Every enabled provider's candidates per item, which items each provider answered, and
    which it was asked about but did not answer (an error, or a spent daily quota).

    Audnexus goes last: it answers per ASIN only, so books without one in ABS get the
    ASIN of their first Audible candidate.
    """
    found: dict[str, list[Candidate]] = {q.item_id: [] for q in queries}
    answered: dict[str, set[str]] = {}
    pending: dict[str, set[str]] = {}
    stats: dict[str, ProviderStats] = {}
    errors: list[str] = []
    ordered = sorted(providers, key=lambda p: p.provider_name == "audnexus")
    tracker = EnrichmentProgress([(p.provider_name, len(queries), p.requests_per_second) for p in ordered if p.enabled])
    for provider in ordered:
        if not provider.enabled:
            log(provider.disabled_reason)
            continue
        asked = queries
        if provider.provider_name == "audnexus":
            asked = [replace(q, asin=q.asin or _audible_asin(found[q.item_id])) for q in queries]
            asked = [q for q in asked if q.asin]
        tracker.start(provider.provider_name, len(asked))
        got, provider_stats, provider_errors = provider.enrich(
            asked, cache, budget, progress=lambda done, s, name=provider.provider_name: log(tracker.update(name, done, s.requests, s.cache_hits)),
            log=log,
        )
        for item_id, candidates in got.items():
            found[item_id].extend(candidates)
        answered[provider.provider_name] = set(got)
        pending[provider.provider_name] = {q.item_id for q in asked} - got.keys()
        stats[provider.provider_name] = provider_stats
        errors.extend(f"{provider.provider_name}: {e}" for e in provider_errors)
        log(f"{provider.provider_name}: {provider_stats.requests} requests, {provider_stats.cache_hits} cache hits, "
            f"{provider_stats.errors} errors, {provider_stats.throttled_s:.1f}s throttled")
    return found, answered, pending, stats, errors


def _audible_asin(candidates: list[Candidate]) -> str | None:
    audible = [c for c in candidates if c.provider == "audible" and c.asin]
    return audible[0].asin if audible else None
