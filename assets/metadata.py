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
    state_rows = state_frame(owned, answered, pending, candidates, now)
    store.replace_rows("book_enrichment_state", state_rows, state_rows.select("item_id"))
    levels = Counter(
        candidates.group_by("item_id").agg(pl.col("match_level").max())["match_level"].to_list()
    ) if candidates.height else Counter()
    return MaterializeResult(
        metadata={
            **table_metadata(candidates, profile, ["item_id", "provider", "title", "match_score", "match_level"]),
            "books_asked": len(queries),
            "books_pending_a_provider": int((state_rows["pending"].list.len() > 0).sum()),
            "providers": MetadataValue.md(_stats_table(stats)),
            "providers_skipped": MetadataValue.md("\n".join(f"- {p.disabled_reason}" for p in providers if not p.enabled) or "_none_"),
            "errors": lines_md(errors),
            "cache_hits": sum(s.cache_hits for s in stats.values()),
            "best_match_levels": MetadataValue.md(counts_table(levels, "level")),
        }
    )


def _stats_table(stats: dict) -> str:
    if not stats:
        return "_no provider was asked_"
    lines = ["| provider | requests | cache hits | errors | throttled s | 429s | skipped |", "|---|---|---|---|---|---|---|"]
    for name, s in stats.items():
        m = s.as_metadata()
        skipped = ", ".join(f"{k} {v}" for k, v in m["skipped"].items()) or "-"
        lines.append(f"| {name} | {m['requests']} | {m['cache_hits']} | {m['errors']} | {m['throttled_seconds']} | {m['rate_limited_answers']} | {skipped} |")
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
    books = table.unique("item_id").select("book_confidence")["book_confidence"].to_list()
    context.log.info(f"enriched_books: {table.height} field values for {len(books)} books")
    return MaterializeResult(
        metadata={
            **table_metadata(table, profile, ["item_id", "field", "value_json", "provider", "confidence", "conflict"]),
            "books": len(books),
            "book_confidence": MetadataValue.md(counts_table(Counter(books), "confidence")),
            "conflicting_fields": int(table["conflict"].sum()) if table.height else 0,
            "conflicts": MetadataValue.md(markdown_table(table.filter(pl.col("conflict")).select("item_id", "field", "value_json", "alternatives_json"))),
        }
    )


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

