"""Blocking checks on every table: schema (pandera), unique key, no owned book missing."""


import polars as pl
from dagster import AssetCheckResult, AssetChecksDefinition, MetadataValue, asset_check

from assets.presentation import markdown_table
from mamcrawler.gaps import owned_positions
from mamcrawler.identity import matched_candidates, owned_matches
from mamcrawler.schemas import CONTRACTS, TableContract, validate
from resources.settings import CompletenessOptions
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

SENDING = ("would_send", "sending", "sent", "downloading")


def contract_check(contract: TableContract) -> AssetChecksDefinition:
    @asset_check(
        asset=contract.table,
        name=f"{contract.table}_contract",
        blocking=True,
        pool=WAREHOUSE_POOL,
        description=f"Pandera schema of {contract.table} and uniqueness of ({', '.join(contract.key)}).",
    )
    def _check(warehouse: WarehouseResource) -> AssetCheckResult:
        frame = warehouse.get().read_table(contract.table)
        result = validate(contract, frame)
        metadata = {"rows": frame.height, "duplicate_keys": result.duplicate_keys, "summary": result.summary()}
        if result.failures is not None and result.failures.height:
            metadata["failures"] = MetadataValue.md(markdown_table(result.failures, limit=20))
        return AssetCheckResult(passed=result.passed, metadata=metadata)

    return _check


def _owned_rows(store, options: CompletenessOptions, missing: pl.DataFrame) -> pl.DataFrame:
    """The rows of `missing` an owned item stands for (identity.owned_matches)."""
    matched = matched_candidates(store.read_optional("book_metadata"), options.ownership_min_confidence)
    return owned_matches(missing, store.read_table("library_books"), matched)


@asset_check(asset="missing_books", blocking=True, pool=WAREHOUSE_POOL)
def no_owned_book_is_missing(warehouse: WarehouseResource, options: CompletenessOptions) -> AssetCheckResult:
    """A (series, position) the library owns, directly or through an omnibus, is never listed."""
    store = warehouse.get()
    matched = matched_candidates(store.read_optional("book_metadata"), options.ownership_min_confidence)
    owned = owned_positions(store.read_table("library_books"), matched).with_columns(pl.col("position").cast(pl.Float64))
    clashes = store.read_table("missing_books").join(owned, on=["series_id", "position"], how="inner")
    return AssetCheckResult(
        passed=clashes.is_empty(),
        metadata={"owned_but_listed": clashes.height, "examples": MetadataValue.md(markdown_table(clashes.select("series", "position")))},
    )


@asset_check(asset="missing_books", blocking=True, pool=WAREHOUSE_POOL)
def no_missing_book_matches_an_owned_item(warehouse: WarehouseResource, options: CompletenessOptions) -> AssetCheckResult:
    """No book still to be fetched has the ASIN or ISBN of an owned item, or its folded title by
    the same author (sequel guard): blocking, so no release is searched or sent for it."""
    store = warehouse.get()
    missing = store.read_table("missing_books")
    clashes = _owned_rows(store, options, missing.filter(pl.col("status") != "completed"))
    return AssetCheckResult(
        passed=clashes.is_empty(),
        metadata={"owned_but_listed": clashes.height, "examples": MetadataValue.md(markdown_table(clashes, limit=20))},
    )


@asset_check(asset="download_requests", blocking=True, pool=WAREHOUSE_POOL)
def no_release_sent_for_an_owned_book(warehouse: WarehouseResource, options: CompletenessOptions) -> AssetCheckResult:
    """No request that is being (or would be) sent is for a book an owned item stands for."""
    store = warehouse.get()
    active = store.read_table("download_requests").filter(pl.col("status").is_in(SENDING))
    missing = store.read_table("missing_books").filter(pl.col("missing_id").is_in(active["missing_id"].unique().to_list()))
    clashes = _owned_rows(store, options, missing)
    return AssetCheckResult(
        passed=clashes.is_empty(),
        metadata={"requests_checked": active.height, "for_owned_books": clashes.height,
                  "examples": MetadataValue.md(markdown_table(clashes, limit=20))},
    )


@asset_check(asset="missing_books", blocking=True, pool=WAREHOUSE_POOL)
def one_row_per_series_position(warehouse: WarehouseResource) -> AssetCheckResult:
    """No (series, position) of the main line is listed twice."""
    main = warehouse.get().read_table("missing_books").filter((pl.col("line") == "main") & pl.col("series_id").is_not_null())
    duplicates = main.group_by("series_id", "position").len().filter(pl.col("len") > 1)
    return AssetCheckResult(passed=duplicates.is_empty(), metadata={"duplicated_positions": duplicates.height})


@asset_check(asset="missing_books", blocking=True, pool=WAREHOUSE_POOL)
def every_row_has_a_title_or_says_why(warehouse: WarehouseResource) -> AssetCheckResult:
    table = warehouse.get().read_table("missing_books")
    silent = table.filter(pl.col("title").is_null() & pl.col("title_note").is_null())
    titled = table["title"].is_not_null().sum()
    return AssetCheckResult(passed=silent.is_empty(), metadata={"titled": titled, "untitled_without_reason": silent.height})


@asset_check(asset="download_requests", blocking=True, pool=WAREHOUSE_POOL)
def no_info_hash_requested_twice(warehouse: WarehouseResource) -> AssetCheckResult:
    """One torrent is sent for one book once: a retry, a restart or a second book never re-adds it."""
    hashes = warehouse.get().read_table("download_requests").filter(pl.col("status") != "would_send").drop_nulls("info_hash")
    repeated = hashes.group_by("info_hash").agg(pl.col("book").unique().str.join(" / ")).filter(
        pl.col("info_hash").is_in(hashes.filter(pl.col("info_hash").is_duplicated())["info_hash"].to_list())
    )
    return AssetCheckResult(
        passed=repeated.is_empty(),
        metadata={"requests_with_a_hash": hashes.height, "repeated": MetadataValue.md(markdown_table(repeated))},
    )


@asset_check(asset="download_requests", blocking=True, pool=WAREHOUSE_POOL)
def every_queued_book_has_a_download(warehouse: WarehouseResource) -> AssetCheckResult:
    """A book marked queued or downloading has a request qBittorrent holds, and the other way round."""
    store = warehouse.get()
    books = store.read_table("missing_books").select("missing_id", "status")
    live = store.read_table("download_requests").filter(pl.col("status").is_in(["sent", "downloading", "completed"]))
    busy = books.filter(pl.col("status").is_in(["queued", "downloading"]))
    orphans = busy.join(live, on="missing_id", how="anti")
    unmarked = live.join(books, on="missing_id", how="inner").filter(~pl.col("status_right").is_in(["queued", "downloading"]))
    return AssetCheckResult(
        passed=orphans.is_empty() and unmarked.is_empty(),
        metadata={"queued_without_a_download": orphans.height, "download_for_a_book_not_queued": unmarked.height},
    )


table_checks = [
    *(contract_check(c) for c in CONTRACTS.values()),
    no_owned_book_is_missing,
    no_missing_book_matches_an_owned_item,
    no_release_sent_for_an_owned_book,
    one_row_per_series_position,
    every_row_has_a_title_or_says_why,
    no_info_hash_requested_twice,
    every_queued_book_has_a_download,
]
