"""Group `completeness`: the catalogues of owned series and followed authors, and what is missing."""


from collections import Counter
from datetime import timedelta

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetSpec,
    Field,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    asset,
    job,
    multi_asset,
    op,
)

from assets.library import library_books
from assets.metadata import book_metadata
from assets.presentation import completeness_bars, counts_table, lines_md, table_metadata
from mamcrawler.catalog import (
    AUTHOR_CATALOG_SCHEMA,
    CATALOG_SCHEMA,
    author_refs,
    catalog_frame,
    catalog_rows,
    series_refs,
)
from mamcrawler.completeness import OVERRIDES_TABLE, change_overrides, find_missing, followed_authors, override_sets
from mamcrawler.figures import missing_figures
from mamcrawler.gaps import DEPARTED_TABLE, carry_lifecycle, departed_rows, lifecycle_memory
from resources.audible import AudibleProvider
from resources.catalog import author_works, series_members
from resources.enrichment import EnrichmentSettings
from resources.hardcover import HardcoverProvider
from resources.metadata_provider import PROVIDER_POOL, provider_state
from resources.openlibrary import OpenLibraryProvider
from resources.profile import ProfileResource
from resources.settings import CompletenessOptions
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource


@asset(group_name="completeness", deps=[library_books, book_metadata], pool=PROVIDER_POOL, kinds={"duckdb", "polars"})
def series_catalog(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    profile: ProfileResource,
    enrichment: EnrichmentSettings,
    options: CompletenessOptions,
    audible: AudibleProvider,
    hardcover: HardcoverProvider,
) -> MaterializeResult:
    """The members of each owned series as Audible and Hardcover list them (positions, titles,
    release dates), for the series a provider matched one of our books in."""
    store = warehouse.get()
    refs = series_refs(
        store.read_table("library_books"), store.read_optional("book_metadata"), options.ownership_min_confidence
    )
    with provider_state(store, timedelta(days=enrichment.cache_ttl_days)) as (cache, budget):
        found, stats, errors = series_members(audible, hardcover, refs, cache, budget, context.log.info)
    table = catalog_frame(
        [row for series_id, name, ref, members in found for row in catalog_rows(series_id, name, ref, members)], CATALOG_SCHEMA
    )
    store.write_table("series_catalog", table)
    for error in errors:
        context.log.warning(error)
    return MaterializeResult(
        metadata={
            **table_metadata(table, profile, ["series_id", "provider", "position_raw", "title", "release_date"]),
            "series_listed": len(found),
            "provider_requests": sum(s.requests for s in stats.values()),
            "errors": lines_md(errors),
        }
    )


@asset(group_name="completeness", deps=[library_books, book_metadata], pool=PROVIDER_POOL, kinds={"duckdb", "polars"})
def author_catalog(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    profile: ProfileResource,
    enrichment: EnrichmentSettings,
    options: CompletenessOptions,
    audible: AudibleProvider,
    hardcover: HardcoverProvider,
    openlibrary: OpenLibraryProvider,
) -> MaterializeResult:
    """Every followed author's works as the Audible catalogue, Hardcover (contributions) and
    OpenLibrary (author works, a fallback without series) list them; an author is followed
    with enough owned books or by the user's word."""
    store = warehouse.get()
    books = store.read_table("library_books")
    followed, why = followed_authors(books, override_sets(store.read_optional(OVERRIDES_TABLE)), options.settings())
    refs = author_refs(store.read_optional("book_metadata"), followed, options.ownership_min_confidence)
    with provider_state(store, timedelta(days=enrichment.cache_ttl_days)) as (cache, budget):
        rows, stats, errors = author_works(audible, hardcover, openlibrary, refs, cache, budget, context.log.info)
    names = dict(
        books.select(pl.col("author_keys").list.first().alias("k"), "author").drop_nulls().unique("k").iter_rows()
    )
    table = catalog_frame([{**r, "author": names.get(r["author_key"])} for r in rows], AUTHOR_CATALOG_SCHEMA)
    store.write_table("author_catalog", table)
    for error in errors:
        context.log.warning(error)
    return MaterializeResult(
        metadata={
            **table_metadata(table, profile, ["author", "provider", "title", "series", "position_raw", "release_date"]),
            "followed_authors": MetadataValue.md("\n".join(f"- {k}: {w}" for k, w in sorted(why.items())) or "_none_"),
            "authors_listed": len({r[0] for r in refs}),
            "provider_requests": sum(s.requests for s in stats.values()),
            "errors": lines_md(errors),
        }
    )


@multi_asset(
    specs=[
        AssetSpec("missing_books", group_name="completeness", deps=[library_books, series_catalog, author_catalog],
                  kinds={"duckdb", "polars"}, description="Each missing book once: title, position, identifiers, "
                  "reason, priority and a lifecycle status that survives rebuilds."),
        AssetSpec("series_completeness", group_name="completeness", deps=[library_books, series_catalog],
                  kinds={"duckdb"}, description="Per owned series: total, owned, missing, percentage, status."),
        AssetSpec("author_completeness", group_name="completeness", deps=[library_books, author_catalog],
                  kinds={"duckdb"}, description="Per followed author: works, owned, missing, percentage, status."),
        AssetSpec("upcoming_books", group_name="completeness", deps=[series_catalog],
                  kinds={"duckdb"}, description="Books of owned series that are announced but not released yet."),
    ],
    pool=WAREHOUSE_POOL,
)
def completeness(
    context: AssetExecutionContext, warehouse: WarehouseResource, profile: ProfileResource, options: CompletenessOptions
):
    """Completeness against the catalogues, with the user's overrides applied."""
    store = warehouse.get()
    result = find_missing(
        store.read_table("library_books"),
        store.read_optional("series_catalog"),
        store.read_optional("author_catalog"),
        store.read_optional(OVERRIDES_TABLE),
        options.settings(),
        evidence=store.read_optional("book_metadata"),
    )
    memory = lifecycle_memory(store.read_optional("missing_books"), store.read_optional(DEPARTED_TABLE))
    missing = carry_lifecycle(result.missing, memory)
    store.write_tables({
        "missing_books": missing,
        DEPARTED_TABLE: departed_rows(memory, missing),
        "series_completeness": result.series,
        "author_completeness": result.authors,
        "upcoming_books": result.upcoming,
    })
    per_series = result.series.select("series", "author", "owned", "total", "missing", "status")
    figures = missing_figures(missing, result.series, result.upcoming.height)
    context.log.info(f"missing_books: {figures.line()}")
    yield MaterializeResult(
        asset_key="missing_books",
        metadata={
            **table_metadata(missing, profile, ["author", "series", "position_label", "title", "reason", "priority", "status"]),
            "summary": figures.line(),
            "titled": figures.titled,
            "by_reason": MetadataValue.md(counts_table(Counter(missing["reason"].to_list()), "reason")),
            "status_counts": MetadataValue.md(counts_table(Counter(missing["status"].to_list()), "status")),
            "catalogue_entries_skipped": MetadataValue.md(counts_table(result.skipped)),
        },
    )
    yield MaterializeResult(
        asset_key="series_completeness",
        metadata={
            **table_metadata(result.series, profile, ["series", "author", "owned", "total", "percentage", "status"]),
            "status_counts": MetadataValue.md(counts_table(Counter(result.series["status"].to_list()), "status")),
            "picture": MetadataValue.md(completeness_bars(per_series)),
        },
    )
    yield MaterializeResult(
        asset_key="author_completeness",
        metadata=table_metadata(result.authors, profile, ["author", "followed_because", "owned", "total", "status"]),
    )
    yield MaterializeResult(asset_key="upcoming_books", metadata=table_metadata(result.upcoming, profile))


@op(config_schema={"add": Field(list, default_value=[]), "remove": Field(list, default_value=[])})
def change_completeness_overrides(context: OpExecutionContext, warehouse: WarehouseResource) -> None:
    """Add or remove overrides: [{kind, target, note}]; kinds: ignore_book (missing_id or title),
    ignore_series / series_complete (series_id or name), follow_author / unfollow_author (name)."""
    store = warehouse.get()
    table = change_overrides(store.read_optional(OVERRIDES_TABLE), context.op_config["add"], context.op_config["remove"])
    store.write_table(OVERRIDES_TABLE, table)
    context.log.info(f"{table.height} overrides; rebuild completeness to apply them")


@job(description="Edit the completeness overrides (then materialise the completeness group).")
def edit_completeness_overrides():
    change_completeness_overrides()
