"""Gaps inside each series as the library itself shows them.

A series is identified by its folded name *and* the authors who write it: two
unrelated series both called "Legacy" stay apart, while a co-written book joins its
series through the author it shares with the rest.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import polars as pl

MISSING_SCHEMA: dict[str, pl.DataType] = {
    "missing_id": pl.Utf8,
    "series_id": pl.Utf8,
    "series": pl.Utf8,
    "author": pl.Utf8,
    "position": pl.Int64,
    "title": pl.Utf8,
    "reason": pl.Utf8,
    "priority": pl.Int64,
    "status": pl.Utf8,
    "owned_positions": pl.Utf8,
    "first_seen_at": pl.Datetime("us", "UTC"),
    "updated_at": pl.Datetime("us", "UTC"),
}

LIFECYCLE = ("identified", "queued", "downloading", "completed", "failed", "ignored")


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def series_memberships(books: pl.DataFrame) -> pl.DataFrame:
    """One row per (book, series membership), with the series identity `series_id`."""
    flat = (
        books.select("item_id", "author", "author_keys", "series")
        .explode("series")
        .drop_nulls("series")
        .unnest("series")
        .filter(pl.col("series_key") != "")
    )
    uf = _UnionFind()
    for key, authors in zip(flat["series_key"], flat["author_keys"]):
        nodes = [f"{key}\x1f{a}" for a in authors]
        for node in nodes[1:]:
            uf.union(nodes[0], node)
        if nodes:
            uf.find(nodes[0])
    # Books without an author join the series' largest author group.
    largest: dict[str, str] = {}
    sizes = Counter(uf.find(f"{k}\x1f{a[0]}") for k, a in zip(flat["series_key"], flat["author_keys"]) if len(a))
    for root, _ in sizes.most_common():
        largest.setdefault(root.split("\x1f", 1)[0], root)
    ids = []
    for key, authors in zip(flat["series_key"], flat["author_keys"]):
        root = uf.find(f"{key}\x1f{authors[0]}") if len(authors) else largest.get(key, f"{key}\x1f")
        ids.append(root.replace("\x1f", "|"))
    return flat.with_columns(pl.Series("series_id", ids, dtype=pl.Utf8))


def _owned_main_positions(group: pl.DataFrame) -> set[int]:
    owned: set[int] = set()
    for kind, key, lo, hi in zip(group["kind"], group["sort_key"], group["range_lo"], group["range_hi"]):
        if kind == "main":
            owned.add(int(key))
        elif kind == "omnibus":
            owned.update(range(int(lo), int(hi) + 1))
    return owned


def _most_common(values: list[Any]) -> Any:
    values = [v for v in values if v]
    return Counter(values).most_common(1)[0][0] if values else None


def missing_id(series_id: str, position: int) -> str:
    return hashlib.sha1(f"{series_id}#{position}".encode()).hexdigest()[:16]


def find_series_gaps(books: pl.DataFrame, now: datetime | None = None) -> pl.DataFrame:
    """Missing main-line positions below the highest owned one, per series.

    Novellas (2.5) and prequels (0, 0.5) create no holes; an omnibus ("1-3") covers its
    range. `priority` ranks the gaps within a series: the first gap after the books
    read in order comes first (1), the rest follow in reading order.
    """
    now = now or datetime.now(UTC)
    memberships = series_memberships(books)
    rows: list[dict[str, Any]] = []
    for (series_id,), group in memberships.group_by("series_id", maintain_order=True):
        owned = _owned_main_positions(group)
        if not owned:
            continue
        gaps = sorted(set(range(1, max(owned) + 1)) - owned)
        if not gaps:
            continue
        series = _most_common(group["series"].to_list())
        author = _most_common(group["author"].to_list())
        owned_text = ", ".join(str(p) for p in sorted(owned))
        for priority, position in enumerate(gaps, start=1):
            rows.append(
                {
                    "missing_id": missing_id(series_id, position),
                    "series_id": series_id,
                    "series": series,
                    "author": author,
                    "position": position,
                    "title": None,
                    "reason": "series_gap",
                    "priority": priority,
                    "status": "identified",
                    "owned_positions": owned_text,
                    "first_seen_at": now,
                    "updated_at": now,
                }
            )
    return pl.DataFrame(rows, schema=MISSING_SCHEMA).sort("series", "position")


def carry_lifecycle(fresh: pl.DataFrame, previous: pl.DataFrame | None) -> pl.DataFrame:
    """Keep each row's status and first-seen time across rebuilds.

    Rebuilding the table must never move a `queued` or `downloading` book back to
    `identified`; rows that are no longer missing simply leave the table.
    """
    if previous is None or previous.is_empty():
        return fresh
    prior = previous.select("missing_id", pl.col("status").alias("_status"), pl.col("first_seen_at").alias("_first"))
    return (
        fresh.join(prior, on="missing_id", how="left")
        .with_columns(
            pl.coalesce("_status", "status").alias("status"),
            pl.coalesce("_first", "first_seen_at").alias("first_seen_at"),
        )
        .drop("_status", "_first")
        .select(list(MISSING_SCHEMA))
    )


def owned_positions(books: pl.DataFrame) -> pl.DataFrame:
    """(series_id, position) of every owned main-line position: what must never be missing."""
    memberships = series_memberships(books)
    out: dict[str, set[int]] = defaultdict(set)
    for (series_id,), group in memberships.group_by("series_id"):
        out[series_id] |= _owned_main_positions(group)
    return pl.DataFrame(
        [(s, p) for s, ps in out.items() for p in ps], schema={"series_id": pl.Utf8, "position": pl.Int64}, orient="row"
    )
