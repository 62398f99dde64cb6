"""Series catalogues from providers: which owned series a provider's series id stands for,
and the titles of the positions the library is missing.

A provider's series is tied to one of our series (`series_id`, see identity.py) only through
a book we own that the provider matched at the ownership level or better (default MEDIUM),
and only when the provider's series name folds to the same key as our membership, or names
the book at the same position of a series no provider names ("ACOTAR").
"""

from __future__ import annotations

from typing import Any

import polars as pl

from mamcrawler.frames import frame_from_rows
from mamcrawler.identity import DEFAULT_MIN_CONFIDENCE, matched_candidates, same_author, series_memberships
from mamcrawler.names import author_key, series_key
from mamcrawler.positions import parse_position

CATALOG_SCHEMA: dict[str, pl.DataType] = {
    "series_id": pl.Utf8, "provider": pl.Utf8, "provider_series": pl.Utf8, "title": pl.Utf8,
    "position_raw": pl.Utf8, "sort_key": pl.Float64, "kind": pl.Utf8, "compilation": pl.Boolean,
    "release_date": pl.Utf8, "asin": pl.Utf8, "duration_s": pl.Float64,
    "work_id": pl.Utf8,  # the provider's id of the work (Hardcover book id, Audible ASIN)
}
PROVIDER_PREFERENCE = ("audible", "hardcover")
AUTHOR_CATALOG_SCHEMA: dict[str, pl.DataType] = {
    "author_key": pl.Utf8, "author": pl.Utf8, "provider": pl.Utf8, "provider_author": pl.Utf8, "work_id": pl.Utf8,
    "title": pl.Utf8, "series": pl.Utf8, "position_raw": pl.Utf8, "release_date": pl.Utf8, "compilation": pl.Boolean,
    "contribution": pl.Utf8, "language": pl.Utf8,
}


def series_refs(
    books: pl.DataFrame, candidates: pl.DataFrame | None, min_confidence: str = DEFAULT_MIN_CONFIDENCE
) -> list[tuple[str, str, str]]:
    """(series_id, provider, provider series ref) for every owned series a provider named."""
    matched = matched_candidates(candidates, min_confidence)
    if matched is None:
        return []
    memberships = series_memberships(books, matched).select("item_id", "series_id", "series_key", "sort_key")
    accepted = matched.select("item_id", "provider", "series_refs").explode("series_refs").drop_nulls("series_refs").unnest("series_refs")
    if accepted.is_empty():
        return []
    accepted = accepted.with_columns(pl.col("name").map_elements(series_key, return_dtype=pl.Utf8).alias("series_key"))
    joined = accepted.join(memberships, on=["item_id", "series_key"], how="inner")
    found = set(joined.select("series_id", "provider", "ref").iter_rows())
    # A tag that names the series otherwise ("ACOTAR" for Audible's "A Court of Thorns and
    # Roses"): the provider's series stands for the book's membership at the same position,
    # in a series no provider names.
    named = set(joined["series_id"].to_list())
    placed: dict[str, list[tuple[str, float]]] = {}
    for item_id, sid, position in memberships.select("item_id", "series_id", "sort_key").iter_rows():
        if sid not in named and position is not None:
            placed.setdefault(item_id, []).append((sid, position))
    positions = {}
    if "series" in matched.columns:
        for item_id, entries in matched.select("item_id", "series").iter_rows():
            for entry in entries or ():
                if entry and entry.get("name") and (pos := parse_position(entry.get("sequence"))) is not None:
                    positions.setdefault((item_id, series_key(entry["name"])), pos.sort_key)
    unlinked = accepted.join(memberships, on=["item_id", "series_key"], how="anti")
    for item_id, provider, ref, key in unlinked.select("item_id", "provider", "ref", "series_key").iter_rows():
        position = positions.get((item_id, key))
        found |= {(sid, provider, ref) for sid, at in placed.get(item_id, ()) if position is not None and at == position}
    return sorted(found)


def author_refs(
    candidates: pl.DataFrame | None, followed: set[str], min_confidence: str = DEFAULT_MIN_CONFIDENCE
) -> list[tuple[str, str, str]]:
    """(author_key, provider, provider author id) for followed authors, from matched candidates.
    A provider's author is ours when the keys are one author (`identity.same_author`: the pen
    name Audible credits is the author ABS misread as "Real Name Pen Name")."""
    matched = matched_candidates(candidates, min_confidence)
    if matched is None or not followed or "author_refs" not in matched.columns:
        return []
    refs = matched.select("provider", "author_refs").explode("author_refs").drop_nulls("author_refs").unnest("author_refs")
    found, ordered = set(), sorted(followed)
    for provider, name, ref in refs.select("provider", "name", "ref").iter_rows():
        key = author_key(name)
        ours = key if key in followed else next((f for f in ordered if same_author(f, key)), None)
        if ours is not None:
            found.add((ours, provider, ref))
    return sorted(found)


def catalog_rows(series_id: str, provider: str, ref: str, members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Provider members ({title, sequence, release_date, compilation, asin, duration_s}) as rows."""
    rows = []
    for m in members:
        pos = parse_position(m.get("sequence"))
        rows.append(
            {
                "series_id": series_id, "provider": provider, "provider_series": ref, "title": m.get("title"),
                "position_raw": None if pos is None else pos.raw, "sort_key": None if pos is None else pos.sort_key,
                "kind": "unknown" if pos is None else pos.kind, "compilation": bool(m.get("compilation")),
                "release_date": m.get("release_date"), "asin": m.get("asin"), "duration_s": m.get("duration_s"),
                "work_id": None if m.get("work_id") is None else str(m["work_id"]),
            }
        )
    return rows


def catalog_frame(rows: list[dict[str, Any]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return frame_from_rows(rows, schema)
