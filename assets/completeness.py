"""Group `completeness`: what is missing from each series."""


from collections import Counter
from datetime import timedelta

import polars as pl
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets.library import library_books
from assets.metadata import book_metadata
from assets.presentation import counts_table, markdown_table, table_metadata
from mamcrawler.catalog import catalog_frame, catalog_rows, series_refs, titles_for_gaps
from mamcrawler.gaps import carry_lifecycle, find_series_gaps
from resources.audible import AudibleProvider
from resources.catalog import series_members
from resources.enrichment import EnrichmentSettings
from resources.hardcover import HardcoverProvider
from resources.metadata_provider import PROVIDER_POOL, DailyBudget, ResponseCache
from resources.profile import ProfileResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource


@asset(group_name="completeness", deps=[library_books, book_metadata], pool=PROVIDER_POOL, kinds={"duckdb", "polars"})
def series_catalog(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    profile: ProfileResource,
    enrichment: EnrichmentSettings,
    audible: AudibleProvider,
    hardcover: HardcoverProvider,
) -> MaterializeResult:
    """The members of each owned series as Audible and Hardcover list them (positions, titles,
    release dates), for the series a provider matched one of our books in."""
    store = warehouse.get()
    refs = series_refs(store.read_table("library_books"), store.read_optional("book_metadata"))
    cache = ResponseCache(store, timedelta(days=enrichment.cache_ttl_days))
    budget = DailyBudget(store)
    found, stats, errors = series_members(audible, hardcover, refs, cache, budget, context.log.info)
    table = catalog_frame([row for series_id, name, ref, members in found for row in catalog_rows(series_id, name, ref, members)])
    store.write_table("series_catalog", table)
    cache.flush()
    budget.save()
    for error in errors:
        context.log.warning(error)
    return MaterializeResult(
        metadata={
            **table_metadata(table, profile, ["series_id", "provider", "position_raw", "title", "release_date"]),
            "series_listed": len(found),
            "provider_requests": sum(s.requests for s in stats.values()),
            "errors": MetadataValue.md("\n".join(f"- {e}" for e in errors) or "_none_"),
        }
    )


@asset(group_name="completeness", deps=[library_books, series_catalog], pool=WAREHOUSE_POOL, kinds={"duckdb", "polars"})
def missing_books(context: AssetExecutionContext, warehouse: WarehouseResource, profile: ProfileResource) -> MaterializeResult:
    """The holes in each owned series, titled where a provider's catalogue knows the position;
    statuses survive rebuilds."""
    store = warehouse.get()
    fresh = titles_for_gaps(find_series_gaps(store.read_table("library_books")), store.read_optional("series_catalog"))
    table = carry_lifecycle(fresh, store.read_optional("missing_books"))
    store.write_table("missing_books", table)
    per_series = (
        table.group_by("series", "author")
        .agg(pl.len().alias("missing"), pl.col("owned_positions").first().alias("owned"))
        .sort("missing", "series", descending=[True, False])
    )
    context.log.info(f"missing_books: {table.height} missing books in {per_series.height} series")
    return MaterializeResult(
        metadata={
            **table_metadata(table, profile, ["author", "series", "position", "title", "priority", "status"]),
            "titled": table["title"].is_not_null().sum(),
            "series_with_gaps": per_series.height,
            "missing_per_series": MetadataValue.md(markdown_table(per_series, limit=25)),
            "status_counts": MetadataValue.md(counts_table(Counter(table["status"].to_list()), "status")),
        }
    )
