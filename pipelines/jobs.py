"""Jobs: what a person, a schedule or the CLI runs."""

from dagster import AssetSelection, define_asset_job, job

from assets.metadata import metadata_buckets
from assets.retention import prune_old_records

refresh_library = define_asset_job(
    "refresh_library",
    selection=AssetSelection.groups("library", "completeness"),
    description="The main job: snapshot ABS, normalise the books, list the missing ones.",
)

enrich_metadata = define_asset_job(
    "enrich_metadata",
    selection=AssetSelection.groups("metadata"),
    partitions_def=metadata_buckets,
    description=(
        "Ask the metadata providers about the books of a bucket, build the consensus, write back what is "
        "confident enough. Config `ops.book_metadata.config.item_ids` re-enriches single books "
        "(their bucket is the partition: see enriched_books.bucket or `mamcrawler reenrich`)."
    ),
)

update_completeness = define_asset_job(
    "update_completeness",
    selection=AssetSelection.groups("completeness"),
    description="Rebuild the series catalogues and the missing books from the current library and metadata.",
)

_REBUILT = AssetSelection.assets("missing_books", "series_completeness", "author_completeness", "upcoming_books")

refresh_series_catalog = define_asset_job(
    "refresh_series_catalog",
    selection=AssetSelection.assets("series_catalog") | _REBUILT,
    description="SERIES: refresh the series catalogues from the providers and rebuild the missing books.",
)

refresh_author_catalog = define_asset_job(
    "refresh_author_catalog",
    selection=AssetSelection.assets("author_catalog") | _REBUILT,
    description="AUTHOR: refresh the followed authors' bibliographies and rebuild the missing books.",
)

search_and_queue = define_asset_job(
    "search_and_queue",
    selection=AssetSelection.groups("acquisition"),
    description=(
        "TASK_MAM: search the indexers for the missing books, score the releases, send the best to qBittorrent "
        "(or record them, in a dry run) and import the downloads that finished."
    ),
)

import_downloads = define_asset_job(
    "import_downloads",
    selection=AssetSelection.assets("imported_books"),
    description="Follow the sent downloads: progress, stalls, and the import of finished ones into ABS.",
)

refresh_account = define_asset_job(
    "refresh_account",
    selection=AssetSelection.groups("account"),
    description="Read the MAM account (ratio, bonus points, unsatisfied torrents, VIP end), add it to its history and check its margins.",
)


@job(name="apply_retention", description=(
    "RETENTION: delete metadata_corrections, account history, task history and finished Dagster runs older than "
    "their configured days (MAMCRAWLER_RETENTION_*_DAYS); failed_attempts never. Config "
    "`ops.prune_old_records.config.dry_run` only counts."
))
def apply_retention():
    prune_old_records()
