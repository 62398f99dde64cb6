"""The acquisition's second line of defence, on the demo graph: a book the library has is never sent."""

import polars as pl
from dagster import DagsterInstance

from assets.checks import no_missing_book_matches_an_owned_item, no_release_sent_for_an_owned_book
from mamcrawler.warehouse import Warehouse, default_warehouse_path
from pipelines.cli import ALL_BUCKETS
from pipelines.definitions import build_definitions
from pipelines.profiles import Profile
from resources.settings import CompletenessOptions
from resources.warehouse import WarehouseResource


def _run(job: str, instance: DagsterInstance, **kwargs) -> None:
    defs = build_definitions(Profile("demo", "test"))
    assert defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False, **kwargs).success


def test_a_book_that_arrives_in_the_library_is_refused_and_the_checks_say_so():
    instance = DagsterInstance.ephemeral()
    _run("refresh_library", instance)
    _run("enrich_metadata", instance, tags=ALL_BUCKETS)
    _run("update_completeness", instance)
    _run("search_and_queue", instance)
    store = Warehouse(default_warehouse_path())
    missing = store.read_table("missing_books")
    would_send = store.read_table("download_requests").filter(pl.col("status") == "would_send")
    target = missing.filter(pl.col("missing_id").is_in(would_send["missing_id"].to_list()) & pl.col("title").is_not_null()).row(0, named=True)
    resource = WarehouseResource(path=str(default_warehouse_path()))
    assert no_release_sent_for_an_owned_book(warehouse=resource, options=CompletenessOptions()).passed

    # The book arrives in the library (another folder, upper case, no identifiers) before the next rebuild.
    books = store.read_table("library_books")
    arrived = books.filter(pl.col("author") == target["author"]).head(1).with_columns(
        pl.lit("li_arrived").alias("item_id"), pl.lit(target["title"].upper()).alias("title"),
        pl.lit(None, pl.Utf8).alias("asin"), pl.lit(None, pl.Utf8).alias("isbn"),
    )
    store.write_table("library_books", pl.concat([books, arrived]))
    assert not no_missing_book_matches_an_owned_item(warehouse=resource, options=CompletenessOptions()).passed
    assert not no_release_sent_for_an_owned_book(warehouse=resource, options=CompletenessOptions()).passed

    _run("search_and_queue", instance)
    sent = store.read_table("download_requests").filter(pl.col("status") == "would_send")
    assert target["missing_id"] not in sent["missing_id"].to_list() and sent.height >= 1
    assert no_release_sent_for_an_owned_book(warehouse=resource, options=CompletenessOptions()).passed
