"""Group `library`: the ABS snapshot and the normalised owned books."""


from collections import Counter

from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, asset

from assets.presentation import counts_table, table_metadata
from mamcrawler.library import Skipped, normalise_library, snapshot_rows
from mamcrawler.snapshot_guard import SNAPSHOT_COUNTS_SQL, refuse_message, suspect_reason
from resources.audiobookshelf import AudiobookshelfResource
from resources.profile import ProfileResource
from resources.settings import LibraryOptions
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource


class SnapshotConfig(Config):
    accept_shrink: bool = False  # replace the tables even with an empty or sharply smaller snapshot


@asset(group_name="library", pool=WAREHOUSE_POOL, kinds={"duckdb"})
def abs_library_items(
    context: AssetExecutionContext,
    config: SnapshotConfig,
    abs_client: AudiobookshelfResource,
    warehouse: WarehouseResource,
    profile: ProfileResource,
    library_options: LibraryOptions,
) -> MaterializeResult:
    """Every item of every selected ABS book library, full metadata, one row per item."""
    fetch = abs_client.fetch_items(progress=context.log.info)
    skipped = Skipped()
    frame = snapshot_rows(fetch.items, skipped)
    store = warehouse.get()
    before = dict(store.query(SNAPSHOT_COUNTS_SQL).iter_rows()) if store.has_table("abs_library_items") else {}
    reason = suspect_reason(before, frame, [lib["id"] for lib in fetch.libraries], library_options.max_shrink)
    if reason and not config.accept_shrink:
        raise Failure(description=refuse_message(reason), metadata={"suspect": reason, "items_read": frame.height})
    if reason:
        context.log.warning(f"accepted as asked: {reason}")
    store.write_table("abs_library_items", frame)
    for warning in fetch.warnings:
        context.log.warning(warning)
    context.log.info(f"snapshot: {frame.height} items kept, {skipped.total} skipped")
    return MaterializeResult(
        metadata={
            **table_metadata(frame, profile, ["title", "authors", "series", "published_year", "rel_path"]),
            "libraries": ", ".join(f"{lib['name']} ({lib['id']})" for lib in fetch.libraries),
            "abs_requests": fetch.requests,
            "list_pages": fetch.pages,
            "abs_reported_total": fetch.reported_total,
            "listed_items": fetch.listed,
            "duplicate_ids_in_pages": fetch.duplicate_ids,
            "skipped": skipped.total,
            "skipped_by_reason": MetadataValue.md(counts_table(skipped.counts)),
            "fields_repaired": MetadataValue.md(counts_table(skipped.repaired)),
            "warnings": MetadataValue.md("\n".join(f"- {w}" for w in fetch.warnings) or "_none_"),
        }
    )


@asset(group_name="library", deps=[abs_library_items], pool=WAREHOUSE_POOL, kinds={"duckdb", "polars"})
def library_books(context: AssetExecutionContext, warehouse: WarehouseResource, profile: ProfileResource) -> MaterializeResult:
    """One row per owned book: cleaned title, folded authors, every series membership parsed."""
    store = warehouse.get()
    skipped = Skipped()
    books = normalise_library(store.read_table("abs_library_items"), skipped)
    store.write_table("library_books", books)
    memberships = books.select("series").explode("series").drop_nulls().unnest("series")
    flags = Counter(f for fl in books["flags"] for f in fl)
    context.log.info(f"library_books: {books.height} books, {memberships.height} series memberships, {skipped.total} skipped")
    return MaterializeResult(
        metadata={
            **table_metadata(books, profile, ["title", "authors", "series", "published_year", "flags"]),
            "series_memberships": memberships.height,
            "memberships_by_source": MetadataValue.md(counts_table(Counter(memberships["source"].to_list()), "source")),
            "flags": MetadataValue.md(counts_table(flags, "flag")),
            "skipped": skipped.total,
            "skipped_by_reason": MetadataValue.md(counts_table(skipped.counts)),
        }
    )
