"""From raw ABS items to a snapshot table and to normalised, owned books.

Bad input never crashes and never silently changes a gap: every item either lands in
the table (with flags saying what was odd about it) or is skipped with a counted reason.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from mamcrawler.frames import bulk, frame_from_rows
from mamcrawler.identity import author_aliases
from mamcrawler.names import author_key, clean_text, clean_title, display_author, series_key, split_authors, title_key
from mamcrawler.positions import parse_position
from mamcrawler.series_recovery import from_folder, from_subtitle, from_title

SERIES_STRUCT = pl.Struct({"name": pl.Utf8, "sequence": pl.Utf8})

SNAPSHOT_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.Utf8,
    "library_id": pl.Utf8,
    "path": pl.Utf8,
    "rel_path": pl.Utf8,
    "title": pl.Utf8,
    "subtitle": pl.Utf8,
    "authors": pl.List(pl.Utf8),
    "narrators": pl.List(pl.Utf8),
    "series": pl.List(SERIES_STRUCT),
    "genres": pl.List(pl.Utf8),
    "published_year": pl.Utf8,
    "publisher": pl.Utf8,
    "description": pl.Utf8,
    "isbn": pl.Utf8,
    "asin": pl.Utf8,
    "language": pl.Utf8,
    "abridged": pl.Boolean,
    "duration_s": pl.Float64,
    "size_bytes": pl.Int64,
    "num_audio_files": pl.Int64,
    "added_at": pl.Datetime("us", "UTC"),
    "updated_at": pl.Datetime("us", "UTC"),
    "is_missing": pl.Boolean,
}

MEMBERSHIP_STRUCT = pl.Struct(
    {
        "series": pl.Utf8,
        "series_key": pl.Utf8,
        "position_raw": pl.Utf8,
        "sort_key": pl.Float64,
        "range_lo": pl.Float64,
        "range_hi": pl.Float64,
        "part": pl.Int64,
        "kind": pl.Utf8,
        "source": pl.Utf8,
    }
)

BOOKS_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.Utf8,
    "library_id": pl.Utf8,
    "title": pl.Utf8,
    "title_key": pl.Utf8,
    "subtitle": pl.Utf8,
    "authors": pl.List(pl.Utf8),
    "author_keys": pl.List(pl.Utf8),
    "author": pl.Utf8,
    "narrators": pl.List(pl.Utf8),
    "series": pl.List(MEMBERSHIP_STRUCT),
    "published_year": pl.Int32,
    "isbn": pl.Utf8,
    "asin": pl.Utf8,
    "language": pl.Utf8,
    "duration_s": pl.Float64,
    "rel_path": pl.Utf8,
    "dedup_key": pl.Utf8,
    "flags": pl.List(pl.Utf8),
}


@dataclass
class Skipped:
    """Reasons rows were dropped (and fields repaired), counted for the materialisation metadata."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    repaired: Counter = field(default_factory=Counter)

    def add(self, reason: str, example: str = "") -> None:
        self.counts[reason] += 1
        self.examples.setdefault(reason, example[:120])

    def repair(self, reason: str) -> None:
        self.repaired[reason] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# Caps on what one item may store: a hostile or broken server cannot fill the warehouse.
MAX_FIELD_CHARS = 2_000
MAX_DESCRIPTION_CHARS = 20_000
MAX_LIST_ENTRIES = 100
_LATEST_MS = 253_402_300_799_000  # 9999-12-31


def _ms(value: Any, repaired: Counter) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    if not value <= _LATEST_MS:  # also NaN
        repaired["timestamp_out_of_range"] += 1
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _text(value: Any, repaired: Counter, limit: int = MAX_FIELD_CHARS) -> str:
    """Any JSON value as storable text: lone surrogates replaced, cut at `limit` characters."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        repaired["field_cut_to_size"] += 1
        text = text[:limit]
    try:
        text.encode()
    except UnicodeEncodeError:
        repaired["invalid_unicode_replaced"] += 1
        text = text.encode("utf-8", "replace").decode()
    return text


def _strings(values: Any, repaired: Counter) -> list[str]:
    if not isinstance(values, list):
        return []
    if len(values) > MAX_LIST_ENTRIES:
        repaired["list_cut_to_size"] += 1
    out = []
    for v in values[:MAX_LIST_ENTRIES]:
        name = v.get("name") if isinstance(v, dict) else v
        if name is not None and (text := clean_text(_text(name, repaired))):
            out.append(text)
    return out


def _opt(value: Any, repaired: Counter, limit: int = MAX_FIELD_CHARS) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = _text(value, repaired, limit).strip()
    return text or None


def _number(value: Any, name: str, repaired: Counter) -> float:
    """A finite non-negative number, or 0 with a counted reason."""
    if value is None or value == "":
        return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0 or number > 1e15:
        repaired[f"{name}_not_a_number"] += 1
        return 0.0
    return number


def snapshot_rows(items: list[dict[str, Any]], skipped: Skipped) -> pl.DataFrame:
    """Flatten expanded ABS items (batch/get shape) into the snapshot table."""
    with bulk():
        return _snapshot_rows(items, skipped)


def _snapshot_rows(items: list[dict[str, Any]], skipped: Skipped) -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in items:
        try:
            row = _snapshot_row(item, seen, skipped)
        except Exception as exc:  # a shape nobody foresaw: skip the item, count why, keep the rest
            skipped.add(f"unreadable_item ({type(exc).__name__})", _text(item, Counter(), 80))
            continue
        if row is not None:
            rows.append(row)
    return frame_from_rows(rows, SNAPSHOT_SCHEMA)


def _snapshot_row(item: Any, seen: set[str], skipped: Skipped) -> dict[str, Any] | None:
    fixed = skipped.repaired
    if not isinstance(item, dict) or not item.get("id") or isinstance(item["id"], (dict, list)):
        skipped.add("no_item_id", _text(item, Counter(), 80))
        return None
    item_id = _text(item["id"], fixed)
    if item_id in seen:
        skipped.add("duplicate_item_id", item_id)
        return None
    if item.get("mediaType", "book") != "book":
        skipped.add("not_a_book", item_id)
        return None
    media = item.get("media") or {}
    meta = media.get("metadata") if isinstance(media, dict) else None
    if not isinstance(meta, dict):
        skipped.add("no_metadata", item_id)
        return None
    seen.add(item_id)
    series = []
    for s in (meta.get("series") if isinstance(meta.get("series"), list) else [])[:MAX_LIST_ENTRIES]:
        if isinstance(s, dict) and (name := _opt(s.get("name"), fixed)):
            seq = _opt(s.get("sequence"), fixed)
            series.append({"name": clean_text(name), "sequence": None if s.get("sequence") is None else seq or ""})
    files = media.get("audioFiles")
    return {
        "item_id": item_id,
        "library_id": _opt(item.get("libraryId"), fixed),
        "path": _opt(item.get("path"), fixed),
        "rel_path": _opt(item.get("relPath"), fixed),
        "title": _opt(meta.get("title"), fixed),
        "subtitle": _opt(meta.get("subtitle"), fixed),
        "authors": _strings(meta.get("authors"), fixed),
        "narrators": _strings(meta.get("narrators"), fixed),
        "series": series,
        "genres": _strings(meta.get("genres"), fixed),
        "published_year": _opt(meta.get("publishedYear"), fixed),
        "publisher": _opt(meta.get("publisher"), fixed),
        "description": _opt(meta.get("description"), fixed, MAX_DESCRIPTION_CHARS),
        "isbn": _opt(meta.get("isbn"), fixed),
        "asin": _opt(meta.get("asin"), fixed),
        "language": _opt(meta.get("language"), fixed),
        "abridged": meta.get("abridged") is True,
        "duration_s": _number(media.get("duration"), "duration", fixed),
        "size_bytes": int(_number(item.get("size") or media.get("size"), "size", fixed)),
        "num_audio_files": int(_number(media.get("numAudioFiles"), "num_audio_files", fixed))
        or (len(files) if isinstance(files, list) else 0),
        "added_at": _ms(item.get("addedAt"), fixed),
        "updated_at": _ms(item.get("updatedAt"), fixed),
        "is_missing": item.get("isMissing") is True,
    }


_YEAR = re.compile(r"^\s*(\d{4})")
_NAMED_SEQUENCE = re.compile(r"^(.+?)\s+#\s*(\S.*)$")
LONG_DESCRIPTION = 5_000


def _year(raw: str | None, flags: list[str]) -> int | None:
    if not raw:
        return None
    match = _YEAR.match(raw)
    if not match:
        flags.append("unparsed_year")
        return None
    if raw.strip() != match.group(1):
        flags.append("year_from_date")
    return int(match.group(1))


def _membership(name: str, raw: str | None, source: str, flags: list[str]) -> dict[str, Any]:
    pos = parse_position(raw)
    if pos is None:
        flags.append("series_without_position")
    elif pos.kind == "unknown":
        flags.append("unparsed_position")
    return {
        "series": name,
        "series_key": series_key(name),
        "position_raw": None if pos is None else pos.raw,
        "sort_key": None if pos is None else pos.sort_key,
        "range_lo": None if pos is None else pos.lo,
        "range_hi": None if pos is None else pos.hi,
        "part": None if pos is None else pos.part,
        "kind": "unknown" if pos is None else pos.kind,
        "source": source,
    }


def normalise_book(row: dict[str, Any], skipped: Skipped) -> dict[str, Any] | None:
    """One snapshot row -> one owned book, or None (counted in `skipped`)."""
    flags: list[str] = []
    raw_title = row.get("title")
    if not raw_title or not clean_title(raw_title):
        skipped.add("no_title", row.get("rel_path") or row["item_id"])
        return None
    if row.get("is_missing"):
        flags.append("files_missing_in_abs")
    title = clean_title(raw_title)
    if title != clean_text(raw_title):
        flags.append("title_noise_removed")

    memberships: list[dict[str, Any]] = []
    for s in row.get("series") or []:
        if s["sequence"] is not None and not s["sequence"].strip():
            flags.append("empty_sequence")
        name, sequence = s["name"], s["sequence"]
        # ABS's watcher turns the sequence "Book Two" into a series "X #Book Two" without one.
        if not (sequence or "").strip() and (split := _NAMED_SEQUENCE.match(name)) and parse_position(split[2]).sort_key is not None:
            name, sequence = split[1], split[2]
            flags.append("sequence_in_series_name")
        memberships.append(_membership(name, sequence, "abs", flags))

    recovered = [from_title(title), from_subtitle(row.get("subtitle")), from_folder(row.get("rel_path"), title)]
    for rec in recovered:
        if rec is None:
            continue
        if rec.clean_title:
            title = rec.clean_title
        key = series_key(rec.series)
        existing = [m for m in memberships if m["series_key"] == key]
        if not existing:
            memberships.append(_membership(rec.series, rec.position, rec.source, flags))
            continue
        pos = parse_position(rec.position)
        if pos is not None and all(m["sort_key"] is not None and m["sort_key"] != pos.sort_key for m in existing):
            flags.append("position_conflict")
        # A membership with no position gains the one the title/folder states.
        for m in existing:
            if m["sort_key"] is None and pos is not None and pos.sort_key is not None:
                m.update(_membership(m["series"], rec.position, f"{m['source']}+{rec.source}", flags))

    authors = [display_author(a) for raw in row.get("authors") or [] for a in split_authors(raw)]
    authors = list(dict.fromkeys(a for a in authors if a))
    keys = list(dict.fromkeys(k for k in (author_key(a) for a in authors) if k))
    if not keys:
        flags.append("no_author")
    description = row.get("description") or ""
    if len(description) > LONG_DESCRIPTION:
        flags.append("long_description")
    tkey = title_key(title)
    return {
        "item_id": row["item_id"],
        "library_id": row.get("library_id"),
        "title": title,
        "title_key": tkey,
        "subtitle": row.get("subtitle"),
        "authors": authors,
        "author_keys": keys,
        "author": authors[0] if authors else None,
        "narrators": row.get("narrators") or [],
        "series": memberships,
        "published_year": _year(row.get("published_year"), flags),
        "isbn": row.get("isbn"),
        "asin": row.get("asin"),
        "language": row.get("language"),
        "duration_s": row.get("duration_s"),
        "rel_path": row.get("rel_path"),
        "dedup_key": f"{'|'.join(sorted(keys))}::{tkey}",
        "flags": sorted(set(flags)),
    }


def _normalise_or_skip(row: dict[str, Any], skipped: Skipped) -> dict[str, Any] | None:
    try:
        return normalise_book(row, skipped)
    except Exception as exc:  # one odd book never fails the refresh: skipped with its reason
        skipped.add(f"unreadable_book ({type(exc).__name__})", str(row.get("item_id")))
        return None


def normalise_library(snapshot: pl.DataFrame, skipped: Skipped) -> pl.DataFrame:
    """The snapshot table -> `library_books`; duplicates of the same book are flagged."""
    with bulk():
        books = [b for row in snapshot.iter_rows(named=True) if (b := _normalise_or_skip(row, skipped)) is not None]
        aliases = author_aliases({k for b in books for k in b["author_keys"]})
        for b in books:
            if any(k in aliases for k in b["author_keys"]):
                b["author_keys"] = list(dict.fromkeys(aliases.get(k, k) for k in b["author_keys"]))
                b["dedup_key"] = f"{'|'.join(sorted(b['author_keys']))}::{b['title_key']}"
        frame = frame_from_rows(books, BOOKS_SCHEMA)
    dup = pl.col("dedup_key").count().over("dedup_key") > 1
    return frame.with_columns(
        pl.when(dup).then(pl.col("flags").list.concat(pl.lit(["duplicate_book"]))).otherwise(pl.col("flags")).alias("flags")
    )
