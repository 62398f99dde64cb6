"""What a collector is missing, from the providers' catalogues and the library itself.

A catalogue entry is missing only when no owned book stands for it (`identity`): not its
position in the series (directly or inside an owned omnibus), not its ASIN, ISBN or provider
work id (the library's, or what enrichment matched to an owned book), and not its folded
title by the same author (with the sequel-number guard, so "Remnant II" never owns
"Remnant III"). Unreleased books are upcoming, not missing; translations and parts of split
editions are not listed; novellas and prequels are listed below the main line and count
towards completeness only when asked to. The user's overrides (ignore a book or a series,
mark a series complete, follow or unfollow an author) are applied last.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from mamcrawler.frames import bulk, frame_from_rows
from mamcrawler.gaps import MISSING_SCHEMA, missing_id, owned_by_series
from mamcrawler.identity import (
    DEFAULT_MIN_CONFIDENCE,
    OwnedIndex,
    match_keys,
    matched_candidates,
    merge_by_catalogue,
    series_memberships,
    work_key,
    work_title,
    works_per_author,
)
from mamcrawler.names import author_key, fold, series_key, title_key
from mamcrawler.positions import format_position, parse_position
from mamcrawler.series_recovery import split_edition_base

OVERRIDES_TABLE = "completeness_overrides"
OVERRIDE_KINDS = ("ignore_book", "ignore_series", "series_complete", "follow_author", "unfollow_author")
OVERRIDES_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.Utf8, "target": pl.Utf8, "note": pl.Utf8, "created_at": pl.Datetime("us", "UTC"),
}
SERIES_COMPLETENESS_SCHEMA: dict[str, pl.DataType] = {
    "series_id": pl.Utf8, "series": pl.Utf8, "author": pl.Utf8, "total": pl.Int64, "owned": pl.Int64,
    "missing": pl.Int64, "upcoming": pl.Int64, "percentage": pl.Float64, "status": pl.Utf8, "sources": pl.List(pl.Utf8),
}
AUTHOR_COMPLETENESS_SCHEMA: dict[str, pl.DataType] = {
    "author_key": pl.Utf8, "author": pl.Utf8, "followed_because": pl.Utf8, "total": pl.Int64, "owned": pl.Int64,
    "missing": pl.Int64, "upcoming": pl.Int64, "percentage": pl.Float64, "status": pl.Utf8,
}
UPCOMING_SCHEMA: dict[str, pl.DataType] = {
    "series_id": pl.Utf8, "series": pl.Utf8, "author": pl.Utf8, "position_label": pl.Utf8, "title": pl.Utf8,
    "release_date": pl.Utf8, "provider": pl.Utf8,
}
_LINE_RANK = {"main": 0, "standalone": 1, "unplaced": 1, "novella": 2, "prequel": 3}
LINES = tuple(_LINE_RANK)
# Catalogues do not always flag box sets; their titles do.
_COMPILATION = re.compile(r"\b(box(ed)? set|omnibus|collection|books? \d+ ?(-|–|to|&) ?\d+|trilogy)\b", re.IGNORECASE)


def looks_like_compilation(title: str | None) -> bool:
    """By the title's own words: a series note ("Fall of Giants (The Century Trilogy, #1)") names
    the series, not a box set."""
    return bool(title and _COMPILATION.search(work_title(title)))


# Another production of a book (GraphicAudio, a full cast) or one part of a split edition.
_ADAPTATION = re.compile(r"dramati[sz]ed|full[- ]cast|graphic ?audio|\bpart \d+ of \d+\b", re.IGNORECASE)


def looks_like_adaptation(title: str | None, series: str | None = None) -> bool:
    return bool(_ADAPTATION.search(f"{title or ''} {series or ''}")) or split_edition_base(title) is not None


@dataclass(frozen=True)
class CompletenessSettings:
    today: date = field(default_factory=lambda: datetime.now(UTC).date())
    include_novellas: bool = False  # novellas and prequels count towards completeness
    language: str = "English"
    follow_min_books: int = 3  # authors with this many owned books are followed
    ownership_min_confidence: str = DEFAULT_MIN_CONFIDENCE  # enrichment matches this sure say "owned"


@dataclass(frozen=True)
class Completeness:
    missing: pl.DataFrame
    upcoming: pl.DataFrame
    series: pl.DataFrame
    authors: pl.DataFrame
    skipped: Counter


def _released(dates: list[str | None], today: date) -> tuple[bool, str | None]:
    # A full date beats a bare year ("2026" would read as December and hide a March release).
    known = sorted(d for d in dates if d and len(d) >= 10) or sorted(d for d in dates if d)
    if not known:
        return True, None  # nothing says it is in the future
    first = known[0]
    try:
        when = date.fromisoformat(first[:10]) if len(first) >= 10 else date(int(first[:4]), 12, 31)
    except ValueError:
        return True, first
    return when <= today, first


def override_sets(overrides: pl.DataFrame | None) -> dict[str, set[str]]:
    sets: dict[str, set[str]] = {k: set() for k in OVERRIDE_KINDS}
    if overrides is None:
        return sets
    for kind, target in overrides.select("kind", "target").iter_rows():
        if kind in sets and target:
            sets[kind].add(target.strip())
    return sets


def _series_matches(series_id: str, name: str, targets: set[str]) -> bool:
    return series_id in targets or series_key(name) in {series_key(t) for t in targets}


def _row(now: datetime, **values: Any) -> dict[str, Any]:
    return {"first_seen_at": now, "updated_at": now, "status": "identified", **values}


def find_missing(
    books: pl.DataFrame,
    series_catalog: pl.DataFrame | None,
    author_catalog: pl.DataFrame | None,
    overrides: pl.DataFrame | None,
    settings: CompletenessSettings,
    now: datetime | None = None,
    evidence: pl.DataFrame | None = None,
) -> Completeness:
    """`evidence`: the `book_metadata` candidates; those matched at or above
    `settings.ownership_min_confidence` count as owned books and link series."""
    matched = matched_candidates(evidence, settings.ownership_min_confidence)
    with bulk():
        return _find_missing(books, series_catalog, author_catalog, overrides, settings, now or datetime.now(UTC), matched)


def _find_missing(books, series_catalog, author_catalog, overrides, settings, now, matched) -> Completeness:
    skipped: Counter = Counter()
    ov = override_sets(overrides)
    memberships = merge_by_catalogue(series_memberships(books, matched), books, series_catalog)
    owned_main = owned_by_series(memberships)
    owned_minor: dict[str, set[float]] = defaultdict(set)
    for sid, kind, key in memberships.select("series_id", "kind", "sort_key").iter_rows():
        if kind in ("novella", "prequel") and key is not None:
            owned_minor[sid].add(key)
    names = dict(memberships.group_by("series_id").agg(pl.col("series").mode().sort().first()).iter_rows())
    author_keys_of: dict[str, set[str]] = defaultdict(set)
    for sid, keys in memberships.select("series_id", "author_keys").iter_rows():
        author_keys_of[sid].update(keys or ())
    authors_of = _series_authors(memberships, books)
    index = OwnedIndex(books, matched)

    # Catalogue entries per (series, position), every provider's titles and dates together.
    entries: dict[tuple[str, float], dict[str, Any]] = {}
    sources: dict[str, set[str]] = defaultdict(set)
    if series_catalog is not None:
        for row in series_catalog.iter_rows(named=True):
            sid = row["series_id"]
            if sid not in names:
                skipped["catalogue entry for a series no longer owned"] += 1
                continue
            if row["compilation"] or row["kind"] == "omnibus":
                skipped["omnibus in catalogue (covers, is not a book to fetch)"] += 1
                continue
            if row["sort_key"] is None or row["kind"] == "unknown":
                skipped["catalogue entry without a usable position"] += 1
                continue
            sources[sid].add(row["provider"])
            slot = entries.setdefault((sid, row["sort_key"]), _slot(row["kind"]))
            if (base := split_edition_base(row["title"])) is not None:
                # One part of a split edition: not a book of its own, but it names the book's position.
                skipped["part of a split edition in catalogue"] += 1
                slot["parts"].setdefault(row["provider"], base)
                continue
            if row["title"]:
                slot["titles"].setdefault(row["provider"], work_title(row["title"]))
            slot["dates"].append(row["release_date"])
            if row["asin"]:
                slot["asins"].add(row["asin"])
            if row.get("work_id"):
                slot["works"].add((row["provider"], row["work_id"]))

    # An author's bibliography is a catalogue of their owned series too (Audible and Hardcover
    # name the series and position of each work).
    owned_by_key = {(series_key(name), k): sid for sid, name in names.items() for k in author_keys_of[sid]}
    if author_catalog is not None:
        for row in author_catalog.filter(pl.col("series").is_not_null()).iter_rows(named=True):
            sid = owned_by_key.get((series_key(row["series"]), row["author_key"]))
            pos = parse_position(row["position_raw"])
            if sid is None or pos is None or pos.kind in ("unknown", "omnibus") or row["compilation"]:
                continue
            if split_edition_base(row["title"]) is not None:
                continue
            sources[sid].add(row["provider"])
            slot = entries.setdefault((sid, pos.sort_key), _slot(pos.kind))
            if row["title"]:
                slot["titles"].setdefault(row["provider"], work_title(row["title"]))
            slot["dates"].append(row["release_date"])
            if row.get("work_id"):
                slot["works"].add((row["provider"], row["work_id"]))

    # A series whose every owned book a provider lists at the same position under another
    # series is that series under another name (the tag "The Three-Body Problem" #1 vs
    # "Remembrance of Earth's Past" #1): its own numbering invents no holes. A sub-series
    # keeps its own numbering (City Watch #1 is Discworld #8) and is not an alias.
    placed: dict[str, set[tuple[str, float]]] = defaultdict(set)  # title -> (series key, position)
    for (sid, position), entry in entries.items():
        for t in entry["titles"].values():
            for key in match_keys(t, index.known_authors):
                placed[key].add((sid.split("|")[0], position))
    if author_catalog is not None:  # an author's bibliography places a book in its series too
        for title, series, raw in author_catalog.filter(pl.col("series").is_not_null()).select(
            "title", "series", "position_raw"
        ).iter_rows():
            pos = parse_position(raw)
            if pos is not None and pos.sort_key is not None:
                for key in match_keys(title, index.known_authors):
                    placed[key].add((series_key(series), pos.sort_key))
    in_series: dict[str, set[tuple[str, float | None]]] = defaultdict(set)
    for sid, item_title, position in memberships.join(books.select("item_id", "title"), on="item_id").select(
        "series_id", "title", "sort_key"
    ).iter_rows():
        in_series[sid].add((work_key(item_title), position))
    aliases = {
        sid for sid, owned_books in in_series.items()
        if sid not in sources
        and all(any(key != sid.split("|")[0] and p == pos for key, p in placed.get(t, ())) for t, pos in owned_books)
    }
    skipped["series under another name (an alias of a catalogued series)"] += len(aliases)

    # Positions the library itself shows as holes, whether or not a provider lists them
    # (a position only a provider's match gives is owned but makes no holes).
    for sid, owned in owned_by_series(memberships.filter(pl.col("source") != "enrichment")).items():
        if sid in aliases:
            continue
        for position in range(1, max(owned) + 1):
            entries.setdefault((sid, float(position)), _slot("main"))

    missing_rows: list[dict[str, Any]] = []
    upcoming_rows: list[dict[str, Any]] = []
    listed_titles: dict[str, set[str]] = defaultdict(set)  # per author: titles already listed
    series_stats: dict[str, Counter] = defaultdict(Counter)
    for (sid, position), entry in sorted(entries.items()):
        name, author = names[sid], authors_of.get(sid)
        kind = entry["kind"]
        counts = kind == "main" or settings.include_novellas
        title = _pick_title(entry["titles"]) or _pick_title(entry["parts"])
        owned = bool(
            (kind == "main" and int(position) in owned_main.get(sid, set()))
            or (kind != "main" and position in owned_minor.get(sid, set()))
            or any(index.owns(t, author_keys_of[sid]) for t in [*entry["titles"].values(), *entry["parts"].values()])
            or any(index.owns(None, set(), asin=a) for a in entry["asins"])
            or any(index.owns(None, set(), work=w) for w in entry["works"])
        )
        released, release_date = _released(entry["dates"], settings.today)
        if counts:
            series_stats[sid]["total" if released else "upcoming"] += 1
            series_stats[sid]["owned"] += owned and released
        if owned:
            continue
        if title:
            for k in author_keys_of[sid]:
                listed_titles[k].add(work_key(title))
        if not released:
            upcoming_rows.append({"series_id": sid, "series": name, "author": author, "position": position,
                                  "position_label": format_position(position), "title": title,
                                  "release_date": release_date, "provider": _pick_provider(entry["titles"])})
            continue
        missing_rows.append(
            _row(
                now,
                missing_id=missing_id(sid, int(position)) if position == int(position) else missing_id(sid, position),
                series_id=sid, series=name, author=author, position=position, position_label=format_position(position),
                line=kind, title=title, title_note=_title_note(entry, title), reason="series_gap",
                asin=min(entry["asins"]) if entry["asins"] else None, release_date=release_date,
                provider=_pick_provider(entry["titles"]), owned_positions=", ".join(str(p) for p in sorted(owned_main.get(sid, ()))),
                title_alternatives=_alternatives(entry["titles"], title),
            )
        )

    missing_rows = _once_per_work(missing_rows, author_keys_of, owned_main, skipped)
    # An announced book of a series and its sub-series (Poirot #44 is New Poirot #6) is one book too.
    upcoming_rows = sorted(_once_per_work(upcoming_rows, author_keys_of, owned_main, Counter()),
                           key=lambda r: (r["series_id"], r["position"]))
    followed, why = followed_authors(books, ov, settings)
    display_names = {
        k: a for keys, authors in books.select("author_keys", "authors").iter_rows() for k, a in zip(keys or (), authors or ())
    }
    author_stats: dict[str, Counter] = defaultdict(Counter)
    author_names: dict[str, str] = {}
    if author_catalog is not None and followed:
        seen_works: set[tuple[str, str]] = set()
        for row in author_catalog.iter_rows(named=True):
            akey = row["author_key"]
            if akey not in followed:
                continue
            if row["compilation"] or looks_like_compilation(row["title"]):
                skipped["compilation in author catalogue"] += 1
                continue
            if looks_like_adaptation(row["title"], row["series"]):
                skipped["dramatization or split part in author catalogue"] += 1
                continue
            if row["language"] and fold(row["language"]) not in (fold(settings.language), fold(settings.language)[:2], "eng"):
                skipped["other language (translation)"] += 1
                continue
            tkey = work_key(row["title"])
            if not tkey or (akey, tkey) in seen_works:
                continue
            seen_works.add((akey, tkey))
            author_names.setdefault(akey, row.get("author") or display_names.get(akey, akey))
            released, release_date = _released([row["release_date"]], settings.today)
            owned = index.owns(row["title"], {akey}, work=(row["provider"], row.get("work_id"))) is not None
            author_stats[akey]["total" if released else "upcoming"] += 1
            author_stats[akey]["owned"] += owned and released
            if owned or not released or tkey in listed_titles[akey]:
                continue
            if row["series"] and (series_key(row["series"]), akey) in owned_by_key:
                continue  # a book of an owned series: the series catalogue decides about it
            if any((key, akey) in owned_by_key for t in match_keys(row["title"], index.known_authors) for key, _ in placed.get(t, ())):
                skipped["author work a catalogue places in an owned series"] += 1
                continue  # OpenLibrary names no series, but a series catalogue lists the work
            pos = parse_position(row["position_raw"])
            missing_rows.append(
                _row(
                    now,
                    missing_id=hashlib.sha1(f"author|{akey}|{tkey}".encode()).hexdigest()[:16],
                    series_id=None, series=row["series"], author=author_names[akey],
                    position=pos.sort_key if pos else None, position_label=pos.raw if pos else None,
                    # Hardcover says when a work is in no series; OpenLibrary cannot say either way.
                    line="main" if row["series"] else ("standalone" if row["provider"] == "hardcover" else "unplaced"),
                    title=row["title"], title_note=None,
                    reason="author_gap", asin=None, release_date=release_date, provider=row["provider"],
                    owned_positions=None, title_alternatives=None,
                )
            )

    missing = frame_from_rows(missing_rows, MISSING_SCHEMA)
    missing = _apply_overrides(missing, ov, names)
    missing = _prioritise(missing, owned_main)
    return Completeness(
        missing=missing,
        upcoming=frame_from_rows(upcoming_rows, UPCOMING_SCHEMA),
        series=_series_table(series_stats, names, authors_of, sources, ov),
        authors=_author_table(author_stats, display_names | author_names, followed, why),
        skipped=skipped,
    )


def _once_per_work(rows: list[dict[str, Any]], author_keys_of, owned_main, skipped: Counter) -> list[dict[str, Any]]:
    """A book missing from a series and from its sub-series (Discworld #24 is City Watch #5) is
    one missing book: it is listed under the series the library owns most of."""
    def preference(row: dict[str, Any]) -> tuple:
        return (-len(owned_main.get(row["series_id"], ())), row["series_id"], row["position"])

    seen: set[tuple[str, str]] = set()
    kept = []
    for row in sorted(rows, key=preference):
        pairs = {(a, work_key(row["title"])) for a in author_keys_of[row["series_id"]]} if row["title"] else set()
        if pairs & seen:
            skipped["listed under another owned series too"] += 1
            continue
        seen |= pairs
        kept.append(row)
    return kept


def _slot(kind: str) -> dict[str, Any]:
    """One catalogue position: every provider's title (and split-part base title), dates and identifiers."""
    return {"kind": kind, "titles": {}, "parts": {}, "dates": [], "asins": set(), "works": set()}


def _series_authors(memberships: pl.DataFrame, books: pl.DataFrame) -> dict[str, str]:
    """Each series' display author: the author of most of its distinct works (ties:
    alphabetical), so neither ABS's co-author order nor a duplicate folder changes it."""
    display = {k: a for keys, authors in books.select("author_keys", "authors").iter_rows() for k, a in zip(keys or (), authors or ())}
    counts: dict[str, Counter] = defaultdict(Counter)
    for sid, keys in memberships.unique(["series_id", "item_id"]).select("series_id", "author_keys").iter_rows():
        counts[sid].update(keys or ())
    return {sid: display.get(min(c, key=lambda k: (-c[k], k))) for sid, c in counts.items() if c}


def _pick_title(titles: dict[str, str]) -> str | None:
    for provider in ("audible", "hardcover"):
        if titles.get(provider):
            return titles[provider]
    return next(iter(titles.values()), None)


def _pick_provider(titles: dict[str, str]) -> str | None:
    title = _pick_title(titles)
    return next((p for p, t in titles.items() if t == title), None)


def _alternatives(titles: dict[str, str], chosen: str | None) -> str | None:
    others = sorted({f"{t} ({p})" for p, t in titles.items() if t and title_key(t) != title_key(chosen)})
    return "; ".join(others) or None


def _title_note(entry: dict[str, Any], title: str | None) -> str | None:
    if title:
        return None
    return "no provider lists this position" if not entry["dates"] else "the providers list it without a title"


def followed_authors(
    books: pl.DataFrame, ov: dict[str, set[str]], settings: CompletenessSettings
) -> tuple[set[str], dict[str, str]]:
    """Authors whose whole bibliography is checked, and why: owned books, or the user's word."""
    counts = works_per_author(books)
    why = {k: f"{n} books owned" for k, n in counts.items() if n >= settings.follow_min_books}
    why |= {author_key(a): "followed" for a in ov["follow_author"]}
    for name in ov["unfollow_author"]:
        why.pop(author_key(name), None)
    return set(why), why


def _apply_overrides(missing: pl.DataFrame, ov: dict[str, set[str]], names: dict[str, str]) -> pl.DataFrame:
    if missing.is_empty():
        return missing
    dropped = ov["ignore_series"] | ov["series_complete"]
    keep = [
        not ((sid is not None or series) and _series_matches(sid or "", names.get(sid, series or ""), dropped))
        for sid, series in missing.select("series_id", "series").iter_rows()
    ]
    missing = missing.filter(pl.Series(keep))
    ignored = pl.col("missing_id").is_in(list(ov["ignore_book"])) | pl.col("title").is_in(list(ov["ignore_book"]))
    return missing.with_columns(pl.when(ignored).then(pl.lit("ignored")).otherwise(pl.col("status")).alias("status"))


def _prioritise(missing: pl.DataFrame, owned_main: dict[str, set[int]]) -> pl.DataFrame:
    """Within a series: the next book after the highest owned one first, then the holes in
    reading order, then later books; novellas and prequels after the whole main line.
    An author's standalone gaps follow their release order, newest first."""
    if missing.is_empty():
        return missing
    groups: dict[str, list[tuple[tuple, int]]] = defaultdict(list)
    rows = missing.select("series_id", "author", "position", "line", "release_date").iter_rows()
    for i, (sid, author, position, line, release) in enumerate(rows):
        if sid is None:
            groups[f"author|{author}"].append(((0, "".join(chr(0x10FFFF - ord(c)) for c in release or "")), i))
            continue
        highest = max(owned_main.get(sid, {0}))
        if line == "main" and position == highest + 1:
            key: tuple = (0, 0.0)
        else:
            key = (1 + _LINE_RANK.get(line, 1), position or 0.0)
        groups[sid].append((key, i))
    priority = [0] * missing.height
    for members in groups.values():
        for rank, (_, i) in enumerate(sorted(members), start=1):
            priority[i] = rank
    return missing.with_columns(pl.Series("priority", priority, dtype=pl.Int64)).sort(
        "author", "series", "priority", nulls_last=True
    )


def _status(owned: int, total: int, marked_complete: bool) -> str:
    if marked_complete or owned >= total:
        return "complete"
    return "partial" if owned * 2 >= total else "incomplete"


def _series_table(stats, names, authors_of, sources, ov) -> pl.DataFrame:
    rows = []
    for sid, name in names.items():
        if _series_matches(sid, name, ov["ignore_series"]):
            continue
        s = stats.get(sid, Counter())
        total, owned = s["total"], min(s["owned"], s["total"])
        marked = _series_matches(sid, name, ov["series_complete"])
        rows.append({
            "series_id": sid, "series": name, "author": authors_of.get(sid), "total": total, "owned": owned,
            "missing": 0 if marked else total - owned, "upcoming": s["upcoming"],
            "percentage": 100.0 if marked or not total else round(100 * owned / total, 1),
            "status": _status(owned, total, marked), "sources": sorted(sources.get(sid, ())) or ["library"],
        })
    return frame_from_rows(rows, SERIES_COMPLETENESS_SCHEMA).sort("percentage", "series")


def _author_table(stats, names, followed, why) -> pl.DataFrame:
    rows = []
    for akey in sorted(followed):
        s = stats.get(akey, Counter())
        total, owned = s["total"], min(s["owned"], s["total"])
        rows.append({
            "author_key": akey, "author": names.get(akey, akey), "followed_because": why.get(akey), "total": total,
            "owned": owned, "missing": total - owned, "upcoming": s["upcoming"],
            "percentage": round(100 * owned / total, 1) if total else None, "status": _status(owned, total, False) if total else "unknown",
        })
    return frame_from_rows(rows, AUTHOR_COMPLETENESS_SCHEMA)


def change_overrides(
    current: pl.DataFrame | None, add: list[dict[str, str]], remove: list[dict[str, str]], now: datetime | None = None
) -> pl.DataFrame:
    """The overrides table after adding and removing entries ({kind, target[, note]})."""
    now = now or datetime.now(UTC)
    rows = [] if current is None else current.to_dicts()
    for entry in [*add, *remove]:
        if entry.get("kind") not in OVERRIDE_KINDS:
            raise ValueError(f"override kind must be one of {', '.join(OVERRIDE_KINDS)}, not {entry.get('kind')!r}")
        if not (entry.get("target") or "").strip():
            raise ValueError(f"an override needs a target: {entry}")
    gone = {(e["kind"], e["target"].strip()) for e in remove}
    rows = [r for r in rows if (r["kind"], r["target"]) not in gone]
    present = {(r["kind"], r["target"]) for r in rows}
    for entry in add:
        key = (entry["kind"], entry["target"].strip())
        if key not in present:
            rows.append({"kind": key[0], "target": key[1], "note": entry.get("note"), "created_at": now})
            present.add(key)
    return frame_from_rows(rows, OVERRIDES_SCHEMA)
