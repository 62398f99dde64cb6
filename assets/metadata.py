"""Group `metadata`: provider candidates, the consensus per field, and the write-back to ABS.

All three assets are partitioned into fixed hash buckets of the item id (16 of them),
with per-item state in the warehouse: a whole-library backfill is 16 partitions in one
run (32 bookkeeping events) however large the library is, and one book can still be
re-enriched alone (`item_ids` in the run config, its bucket as the partition).
"""

import warnings
from collections import Counter
from datetime import UTC, datetime, timedelta

import polars as pl
from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    BetaWarning,
    Config,
    MaterializeResult,
    MetadataValue,
    StaticPartitionsDefinition,
    asset,
)
from pydantic import Field

from assets.library import library_books
from assets.presentation import counts_table, lines_md, markdown_table, table_metadata
from mamcrawler.candidates import BookQuery
from mamcrawler.enrichment import (
    BUCKETS,
    CANDIDATE_SCHEMA,
    bucket_of,
    candidate_frame,
    enriched_frame,
    owned_books,
    state_frame,
)
from mamcrawler.figures import level_counts, levels_line
from mamcrawler.library import Skipped, snapshot_rows
from mamcrawler.writeback import current_values, earlier_writes, outcome_summary, plan_writeback
from resources.audiobookshelf import AbsError, AudiobookshelfResource
from resources.custom_provider import CustomProviders
from resources.enrichment import EnrichmentSettings, collect_candidates
from resources.metadata_provider import PROVIDER_POOL, MetadataProvider, provider_state
from resources.profile import ProfileResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

# `backfill_policy` is marked beta; single-run backfills are what keeps bookkeeping small here.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=BetaWarning)

metadata_buckets = StaticPartitionsDefinition(list(BUCKETS))

CORRECTIONS_SCHEMA = {
    "item_id": pl.Utf8, "field": pl.Utf8, "old": pl.Utf8, "new": pl.Utf8, "provider": pl.Utf8,
    "confidence": pl.Utf8, "reason": pl.Utf8, "mode": pl.Utf8, "corrected_at": pl.Datetime("us", "UTC"),
}


class EnrichmentConfig(Config):
    item_ids: list[str] = Field(default_factory=list, description="Only these books (they must be in the partition)")
    only_new: bool = Field(default=False, description="Only books never enriched (METADATA_NEW)")
    refresh: bool = Field(default=False, description="Ignore cached provider answers")


def _in_buckets(frame: pl.DataFrame, buckets: list[str]) -> pl.DataFrame:
    return frame.filter(pl.col("item_id").map_elements(bucket_of, return_dtype=pl.Utf8).is_in(buckets))


# Every metadata asset: same buckets, one run for any range of them.
BUCKETED = {"group_name": "metadata", "partitions_def": metadata_buckets, "backfill_policy": BackfillPolicy.single_run()}


def all_providers(*providers: MetadataProvider, custom: CustomProviders) -> list[MetadataProvider]:
    return [*providers, *custom.providers()]


@asset(**BUCKETED, deps=[library_books], pool=PROVIDER_POOL, kinds={"duckdb", "polars"})
def book_metadata(
    context: AssetExecutionContext,
    config: EnrichmentConfig,
    warehouse: WarehouseResource,
    profile: ProfileResource,
    enrichment: EnrichmentSettings,
    audible: MetadataProvider,
    audnexus: MetadataProvider,
    hardcover: MetadataProvider,
    google_books: MetadataProvider,
    openlibrary: MetadataProvider,
    custom_providers: CustomProviders,
) -> MaterializeResult:
    """Every provider's candidates for the books of these buckets, each with its match score."""
    store = warehouse.get()
    buckets = context.partition_keys
    books = _in_buckets(store.read_table("library_books"), buckets)
    state = store.read_optional("book_enrichment_state")
    if config.only_new and state is not None:
        # "New": never enriched, or a provider still owes an answer (quota, error) from last time.
        settled = state.filter(pl.col("pending").list.len() == 0)["item_id"]
        books = books.filter(~pl.col("item_id").is_in(settled.implode()))
    if config.item_ids:
        unknown = set(config.item_ids) - set(books["item_id"])
        if unknown:
            raise ValueError(f"not in buckets {', '.join(buckets)}: {', '.join(sorted(unknown))} (see enriched_books.bucket)")
        books = books.filter(pl.col("item_id").is_in(config.item_ids))
    owned = owned_books(books)
    queries = [BookQuery(b.item_id, b.title, b.authors[0] if b.authors else None, b.isbn, b.asin, b.duration_s) for b in owned]
    context.log.info(f"enriching {len(queries)} books in buckets {', '.join(buckets)}")
    providers = all_providers(audible, audnexus, hardcover, google_books, openlibrary, custom=custom_providers)
    ttl = timedelta(days=enrichment.cache_ttl_days)
    with provider_state(store, ttl, reuse=not config.refresh) as (cache, budget):
        found, answered, pending, stats, errors = collect_candidates(providers, queries, cache, budget, context.log.info)
    now = datetime.now(UTC)
    # A provider's earlier answers are replaced only where it answered again: after a spent
    # quota or an error they stay, and the book is marked pending for that provider.
    answered_keys = pl.DataFrame(
        [(i, p) for p, items in answered.items() for i in items], schema={"item_id": pl.Utf8, "provider": pl.Utf8}, orient="row"
    )
    candidates = candidate_frame(owned, found, now)
    store.replace_rows("book_metadata", candidates, answered_keys)
    # The book's level from every stored candidate (earlier answers of a pending provider
    # included), exactly as enriched_books decides it.
    stored = store.query("SELECT * FROM book_metadata WHERE bucket IN (SELECT unnest(?))", [buckets])
    state_rows = state_frame(owned, answered, pending, stored.filter(pl.col("item_id").is_in([b.item_id for b in owned])), now)
    store.replace_rows("book_enrichment_state", state_rows, state_rows.select("item_id"))
    context.log.info(f"book_metadata: {levels_line(level_counts(state_rows['best_level']))} asked in this run")
    for bucket in buckets:
        in_bucket = pl.col("bucket") == bucket
        bucket_state = state_rows.filter(in_bucket)
        context.add_asset_metadata(
            {
                **table_metadata(candidates.filter(in_bucket), profile, ["item_id", "provider", "title", "match_score", "match_level"]),
                "books_asked": MetadataValue.int(bucket_state.height),
                "books_pending_a_provider": int((bucket_state["pending"].list.len() > 0).sum()),
                "book_levels": MetadataValue.md(counts_table(level_counts(bucket_state["best_level"]), "level", "books", keep_order=True)),
            },
            partition_key=bucket,
        )
    return MaterializeResult(
        metadata={
            "run_books_asked (every bucket of this run)": len(queries),
            "providers": MetadataValue.md(_stats_table(stats)),
            "providers_unreachable": MetadataValue.md(
                "\n".join(f"- {name}: {s.unreachable}" for name, s in stats.items() if s.unreachable) or "_none_"
            ),
            "providers_skipped": MetadataValue.md("\n".join(f"- {p.disabled_reason}" for p in providers if not p.enabled) or "_none_"),
            "errors": lines_md(errors),
            "cache_hits (requests answered from the cache, this run)": sum(s.cache_hits for s in stats.values()),
        }
    )


def _stats_table(stats: dict) -> str:
    if not stats:
        return "_no provider was asked_"
    lines = ["| provider | requests | cache hits | errors | throttled s | 429s | skipped | reachable |", "|---|---|---|---|---|---|---|---|"]
    for name, s in stats.items():
        m = s.as_metadata()
        skipped = ", ".join(f"{k} {v}" for k, v in m["skipped"].items()) or "-"
        lines.append(f"| {name} | {m['requests']} | {m['cache_hits']} | {m['errors']} | {m['throttled_seconds']} | {m['rate_limited_answers']} | {skipped} | {'no' if s.unreachable else 'yes'} |")
    return "\n".join(lines)


@asset(**BUCKETED, deps=[book_metadata], pool=WAREHOUSE_POOL, kinds={"duckdb", "polars"})
def enriched_books(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    profile: ProfileResource,
    audible: MetadataProvider,
    audnexus: MetadataProvider,
    hardcover: MetadataProvider,
    google_books: MetadataProvider,
    openlibrary: MetadataProvider,
    custom_providers: CustomProviders,
) -> MaterializeResult:
    """Best value per (book, field) with its provider, the providers that agree, and a confidence."""
    store = warehouse.get()
    buckets = context.partition_keys
    candidates = store.read_optional("book_metadata")
    candidates = (
        candidates.filter(pl.col("bucket").is_in(buckets)) if candidates is not None else pl.DataFrame(schema=CANDIDATE_SCHEMA)
    )
    providers = all_providers(audible, audnexus, hardcover, google_books, openlibrary, custom=custom_providers)
    weights = {p.provider_name: p.weight for p in providers}
    table = enriched_frame(candidates, weights)
    store.replace_rows("enriched_books", table, pl.DataFrame({"bucket": buckets}))
    titles = dict(store.read_table("library_books", ["item_id", "title"]).iter_rows())
    context.log.info(f"enriched_books: {table.height} field values for {table['item_id'].n_unique()} books with a match")
    for bucket in buckets:
        rows = table.filter(pl.col("bucket") == bucket)
        books = rows.unique("item_id")
        conflicts = rows.filter(pl.col("conflict")).select(
            "item_id", pl.col("item_id").replace_strict(titles, default=None).alias("title"), "field", "value_json", "alternatives_json"
        )
        context.add_asset_metadata(
            {
                **table_metadata(rows, profile, ["item_id", "field", "value_json", "provider", "confidence", "conflict"]),
                "books_with_a_match": books.height,
                "book_confidence": MetadataValue.md(counts_table(level_counts(books["book_confidence"]), "level", "books", keep_order=True)),
                "conflicting_fields": int(rows["conflict"].sum()),
                "conflicts": MetadataValue.md(markdown_table(conflicts)),
            },
            partition_key=bucket,
        )
    return MaterializeResult(metadata={"run_field_values (every bucket of this run)": table.height})


@asset(**BUCKETED, deps=[enriched_books], pool=WAREHOUSE_POOL, kinds={"duckdb"})
def abs_metadata_writeback(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    profile: ProfileResource,
    enrichment: EnrichmentSettings,
    abs_client: AudiobookshelfResource,
) -> MaterializeResult:
    """Confident corrections sent to ABS (or, in a dry run, only recorded) in `metadata_corrections`."""
    store = warehouse.get()
    buckets = context.partition_keys
    fields = store.read_optional("enriched_books")
    snapshot = {r["item_id"]: r for r in store.read_table("abs_library_items").iter_rows(named=True)}
    fields = fields.filter(pl.col("bucket").is_in(buckets)) if fields is not None else None
    mode = "applied" if enrichment.writeback_enabled else "dry_run"
    now = datetime.now(UTC)
    rows, outcomes, field_counts = [], Counter(), Counter()  # books and fields per outcome
    groups = {item_id: group.to_dicts() for (item_id,), group in fields.group_by("item_id", maintain_order=True)} if (
        fields is not None) else {}
    # Books no provider answered for still get a phrase sequence rescued (see plan_writeback).
    groups.update({item_id: [] for item_id in snapshot if item_id not in groups and bucket_of(item_id) in buckets})
    done = store.read_optional("metadata_corrections")
    ours = earlier_writes(done.filter(pl.col("mode") == "applied").to_dicts() if done is not None else [])
    for item_id, offered in groups.items():
        if item_id not in snapshot:
            outcomes["item no longer in ABS"] += 1
            continue
        body, corrections = plan_writeback(
            item_id, current_values(snapshot[item_id]), offered, enrichment.writeback_min_confidence, ours
        )
        if not body:
            continue
        outcome = mode
        if enrichment.writeback_enabled:
            try:
                # ABS replaces the whole series set: plan again on the item as it is now,
                # so nothing added in ABS since the snapshot is dropped.
                fresh = snapshot_rows([abs_client.get_item(item_id)], Skipped()).row(0, named=True)
                body, corrections = plan_writeback(
                    item_id, current_values(fresh), offered, enrichment.writeback_min_confidence, ours
                )
                if not body:
                    continue
                outcome = "applied" if abs_client.update_media(item_id, body) else "unchanged"
            except AbsError as exc:
                outcome = "failed"
                context.log.warning(f"{item_id}: {exc}")
        outcomes[outcome] += 1
        field_counts[outcome] += len(corrections)
        rows += [{**c.__dict__, "mode": outcome, "corrected_at": now} for c in corrections]
    table = pl.DataFrame(rows, schema=CORRECTIONS_SCHEMA)
    if table.height:
        store.upsert("metadata_corrections", table, key=("item_id", "field", "corrected_at"))
    summary = outcome_summary(outcomes, field_counts)
    context.log.info(f"write-back ({mode}): {summary}")
    for bucket in buckets:  # each partition's event shows its own corrections
        preview = ["item_id", "field", "old", "new", "provider", "confidence", "mode"]
        context.add_asset_metadata(table_metadata(_in_buckets(table, [bucket]), profile, preview), partition_key=bucket)
    return MaterializeResult(
        metadata={
            **table_metadata(table, profile, ["item_id", "field", "old", "new", "provider", "confidence", "mode"]),
            "mode": "dry run: nothing sent to ABS (set MAMCRAWLER_WRITEBACK=1 to apply)" if mode == "dry_run" else "applied to ABS",
            "min_confidence": enrichment.writeback_min_confidence,
            "summary": summary,
            "books": MetadataValue.md(counts_table(outcomes, "outcome", unit="books")),
            "fields": MetadataValue.md(counts_table(field_counts, "outcome", unit="fields")),
        }
    )

