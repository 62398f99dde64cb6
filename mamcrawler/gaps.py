"""Gaps inside each series as the library itself shows them.

Which memberships form one series is decided in `identity.series_memberships` (a folded
name and a shared author, or a provider's series id): two unrelated series both called
"Legacy" stay apart, while a co-written book joins its series through the author it shares
with the rest.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime

import polars as pl

from mamcrawler.identity import series_memberships

MISSING_SCHEMA: dict[str, pl.DataType] = {
    "missing_id": pl.Utf8,
    "series_id": pl.Utf8,  # null for an author gap outside the owned series
    "series": pl.Utf8,
    "author": pl.Utf8,
    "position": pl.Float64,  # 2.5 for a novella; null for a standalone
    "position_label": pl.Utf8,
    "line": pl.Utf8,  # main / novella / prequel / standalone
    "title": pl.Utf8,
    "title_note": pl.Utf8,  # why there is no title
    "title_alternatives": pl.Utf8,  # other providers' titles for the same position
    "reason": pl.Utf8,  # series_gap / author_gap
    "priority": pl.Int64,
    "status": pl.Utf8,
    "asin": pl.Utf8,
    "release_date": pl.Utf8,
    "provider": pl.Utf8,
    "owned_positions": pl.Utf8,
    "first_seen_at": pl.Datetime("us", "UTC"),
    "updated_at": pl.Datetime("us", "UTC"),
}

LIFECYCLE = ("identified", "queued", "downloading", "completed", "failed", "ignored")


def owned_by_series(memberships: pl.DataFrame) -> dict[str, set[int]]:
    owned: dict[str, set[int]] = defaultdict(set)
    columns = memberships.select("series_id", "kind", "sort_key", "range_lo", "range_hi").iter_rows()
    for series_id, kind, key, lo, hi in columns:
        if kind == "main":
            owned[series_id].add(int(key))
        elif kind == "omnibus":
            owned[series_id].update(range(int(lo), int(hi) + 1))
    return owned


def missing_id(series_id: str, position: int) -> str:
    return hashlib.sha1(f"{series_id}#{position}".encode()).hexdigest()[:16]


def find_series_gaps(books: pl.DataFrame, now: datetime | None = None) -> pl.DataFrame:
    """The holes in each series as the library alone shows them: main-line positions below
    the highest owned one. Novellas (2.5) and prequels (0, 0.5) make no holes; an omnibus
    ("1-3") covers its range. The catalogue-aware version is `completeness.find_missing`,
    which this is with no catalogue."""
    from mamcrawler.completeness import CompletenessSettings, find_missing  # completeness builds on this module

    return find_missing(books, None, None, None, CompletenessSettings(), now).missing


def carry_lifecycle(fresh: pl.DataFrame, previous: pl.DataFrame | None) -> pl.DataFrame:
    """Keep each row's status and first-seen time across rebuilds.

    Rebuilding the table must never move a `queued` or `downloading` book back to
    `identified`; rows that are no longer missing simply leave the table.
    """
    if previous is None or previous.is_empty() or "missing_id" not in previous.columns:
        return fresh
    prior = previous.select("missing_id", pl.col("status").alias("_status"), pl.col("first_seen_at").alias("_first"))
    return (
        fresh.join(prior, on="missing_id", how="left")
        .with_columns(
            # An `ignore_book` override decides `ignored` both ways; otherwise the stored status wins.
            pl.when(pl.col("status") == "ignored")
            .then(pl.lit("ignored"))
            .when(pl.col("_status") == "ignored")
            .then(pl.col("status"))
            .otherwise(pl.coalesce("_status", "status"))
            .alias("status"),
            pl.coalesce("_first", "first_seen_at").alias("first_seen_at"),
        )
        .drop("_status", "_first")
        .select(list(MISSING_SCHEMA))
    )


DEPARTED_TABLE = "missing_books_departed"
_MEMORY = ("missing_id", "status", "first_seen_at")


def lifecycle_memory(previous: pl.DataFrame | None, departed: pl.DataFrame | None) -> pl.DataFrame | None:
    """What `carry_lifecycle` remembers: the current rows plus those that left the table.

    A row can leave for a reason that later goes away (a catalogue that answered short);
    when it comes back it keeps its `first_seen_at` and its status (and so its download).
    """
    frames = [f.select(_MEMORY) for f in (previous, departed) if f is not None and set(_MEMORY) <= set(f.columns)]
    return pl.concat(frames).unique("missing_id", keep="first", maintain_order=True) if frames else None


def departed_rows(memory: pl.DataFrame | None, current: pl.DataFrame) -> pl.DataFrame:
    """The remembered rows no longer in `current`: kept in `DEPARTED_TABLE`."""
    if memory is None:
        return pl.DataFrame(schema={k: MISSING_SCHEMA[k] for k in _MEMORY})
    return memory.join(current.select("missing_id"), on="missing_id", how="anti")


def owned_positions(books: pl.DataFrame, matched: pl.DataFrame | None = None) -> pl.DataFrame:
    """(series_id, position) of every owned main-line position: what must never be missing."""
    owned = owned_by_series(series_memberships(books, matched))
    return pl.DataFrame(
        [(s, p) for s, ps in owned.items() for p in ps], schema={"series_id": pl.Utf8, "position": pl.Int64}, orient="row"
    )
