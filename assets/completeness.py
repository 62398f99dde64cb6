"""Group `completeness`: what is missing from each series."""


from collections import Counter

import polars as pl
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets.library import library_books
from assets.presentation import counts_table, markdown_table, table_metadata
from mamcrawler.gaps import carry_lifecycle, find_series_gaps
from resources.profile import ProfileResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource


@asset(group_name="completeness", deps=[library_books], pool=WAREHOUSE_POOL, kinds={"duckdb", "polars"})
def missing_books(context: AssetExecutionContext, warehouse: WarehouseResource, profile: ProfileResource) -> MaterializeResult:
    """The holes in each owned series; statuses survive rebuilds."""
    store = warehouse.get()
    fresh = find_series_gaps(store.read_table("library_books"))
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
            **table_metadata(table, profile, ["author", "series", "position", "priority", "status"]),
            "series_with_gaps": per_series.height,
            "missing_per_series": MetadataValue.md(markdown_table(per_series, limit=25)),
            "status_counts": MetadataValue.md(counts_table(Counter(table["status"].to_list()), "status")),
        }
    )
