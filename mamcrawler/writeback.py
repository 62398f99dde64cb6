"""Which enriched values go back to ABS, as one PATCH body per book.

Rules from the real ABS 2.36 server (`shared/services/audiobookshelf/README.md`): `series`
replaces the book's whole set, so the body always carries the memberships the book already
has (a membership is never dropped); `sequence` must be a string, and one with a space or a
"#" ("Book Three") does not survive ABS's next rescan of the item's `metadata.json` (it
becomes a series "X #Book Three" without a position), so a known position is always sent
as a numeric string; `genres` replaces the whole list, so it is sent merged; `publishedYear`
is a string. Authors, narrators and descriptions are only filled when ABS has none: ABS
makes a new author entity for every spelling, and a description is often the user's own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mamcrawler.enrichment import RANK, field_key
from mamcrawler.names import clean_text, clean_title, fold, series_key
from mamcrawler.positions import format_position, parse_position

ABS_FIELD = {
    "title": "title", "subtitle": "subtitle", "authors": "authors", "narrators": "narrators", "series": "series",
    "year": "publishedYear", "publisher": "publisher", "isbn": "isbn", "asin": "asin", "language": "language",
    "genres": "genres", "description": "description",
}
FILL_ONLY = {"authors", "narrators", "description"}


@dataclass(frozen=True)
class Correction:
    item_id: str
    field: str
    old: str
    new: str
    provider: str
    confidence: str
    reason: str


def current_values(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot (`abs_library_items`) row in the shape consensus values have."""
    year = snapshot.get("published_year")
    return {
        "title": snapshot.get("title"),
        "subtitle": snapshot.get("subtitle"),
        "authors": tuple(snapshot.get("authors") or ()),
        "narrators": tuple(snapshot.get("narrators") or ()),
        "series": tuple((s["name"], s["sequence"]) for s in snapshot.get("series") or []),
        "year": int(year[:4]) if year and year[:4].isdigit() else None,
        "publisher": snapshot.get("publisher"),
        "isbn": snapshot.get("isbn"),
        "asin": snapshot.get("asin"),
        "language": snapshot.get("language"),
        "genres": tuple(snapshot.get("genres") or ()),
        "description": snapshot.get("description"),
    }


def _from_json(name: str, value_json: str) -> Any:
    value = json.loads(value_json)
    if name == "series":
        return tuple((s["name"], s["sequence"]) for s in value)
    return tuple(value) if isinstance(value, list) else value


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == ()


def merge_series(current: tuple, offered: tuple) -> tuple:
    """The book's memberships plus the offered ones it lacks; a missing position is filled.

    The book's own sequences stay as ABS has them ("1a", "3.0") unless ABS would lose them
    on its next rescan; every added, filled or rescued one is an ABS-safe string.
    """
    merged = [[name, None if seq is None else (str(seq) if survives_rescan(str(seq)) else abs_sequence(seq))]
              for name, seq in current]
    keys = {series_key(entry[0]): entry for entry in merged}
    for name, position in offered:
        entry = keys.get(series_key(name))
        if entry is None:
            merged.append([name, abs_sequence(position)])
            keys[series_key(name)] = merged[-1]
        elif entry[1] in (None, "") and position:
            entry[1] = abs_sequence(position)
    return tuple((name, seq) for name, seq in merged)


# ABS's `parseSeriesString` ("Name #seq" in metadata.json) keeps only a sequence of non-space, non-# characters.
_SURVIVES = re.compile(r"[^#\s]+")


def survives_rescan(sequence: str) -> bool:
    """Does ABS read this sequence back from the item's metadata.json on a rescan?"""
    return bool(_SURVIVES.fullmatch(sequence))


def abs_sequence(raw: Any) -> str | None:
    """The sequence to send ABS: a numeric string whenever the position is known ("Book Three"
    -> "3", "Books 1-3" -> "1-3", "3, Part 2" -> "3,Part2"); an unreadable phrase as it is."""
    if raw is None or str(raw).strip() == "":
        return None
    pos = parse_position(str(raw))
    if pos is None or pos.sort_key is None:
        return str(raw).strip()
    if pos.kind == "omnibus":
        return f"{format_position(pos.lo)}-{format_position(pos.hi)}"
    number = format_position(pos.sort_key)
    return f"{number},Part{pos.part}" if pos.part is not None else number


def merge_names(current: tuple, offered: tuple) -> tuple:
    """Genres or tags: the book's own first, then the offered ones it lacks (ABS replaces the list)."""
    have = {fold(v) for v in current}
    return tuple(current) + tuple(v for v in dict.fromkeys(offered) if fold(v) not in have)


def _to_abs(name: str, value: Any) -> Any:
    if name == "series":
        return [{"name": n, "sequence": s} for n, s in value]
    if name == "authors":
        return [{"name": a} for a in value]
    if name == "year":
        return str(value)
    return list(value) if isinstance(value, tuple) else value


def earlier_writes(corrections: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[str, str]]:
    """(item, field) -> (value sent, confidence) of the latest correction ABS applied.

    `corrections` are `metadata_corrections` rows: `new` is the JSON sent to ABS.
    """
    latest: dict[tuple[str, str], tuple[Any, str, str]] = {}
    for row in corrections:
        if row.get("mode") != "applied":
            continue
        key = (row["item_id"], row["field"])
        if key not in latest or row["corrected_at"] >= latest[key][0]:
            latest[key] = (row["corrected_at"], row["new"], row["confidence"])
    return {key: (new, confidence) for key, (_, new, confidence) in latest.items()}


def _stands(name: str, old: Any, offered_confidence: str, ours: tuple[str, str] | None) -> bool:
    """Is ABS's value one we wrote earlier, and the offer not a HIGH one above that write?

    A write changes what providers are matched on next time (a filled subtitle or ISBN
    finds another edition), so the next offer is partly our own doing: only a HIGH offer,
    more certain than the write was, replaces it. Otherwise runs would flip the field.
    """
    if ours is None:
        return False
    sent, confidence = ours
    value = json.loads(sent)
    if name == "year":
        value = int(value) if str(value).isdigit() else value
    written = _from_json(name, json.dumps(value))
    outranks = offered_confidence == "HIGH" and RANK[offered_confidence] > RANK[confidence]
    return field_key(name, written) == field_key(name, old) and not outranks


def plan_writeback(
    item_id: str, current: dict[str, Any], fields: list[dict[str, Any]], min_confidence: str,
    ours: dict[tuple[str, str], tuple[str, str]] | None = None,
) -> tuple[dict[str, Any], list[Correction]]:
    """(PATCH `metadata` body, corrections) for one book; empty body when nothing to change.

    `ours` (`earlier_writes`) keeps a value an earlier run wrote (see `_stands`), so a
    second run sends nothing new.
    """
    body: dict[str, Any] = {}
    corrections: list[Correction] = []
    for row in fields:
        name = row["field"]
        if name not in ABS_FIELD or RANK[row["confidence"]] < RANK[min_confidence]:
            continue
        offered = _from_json(name, row["value_json"])
        old = current.get(name)
        if name not in ("series", "genres") and not _empty(old) and _stands(
            name, old, row["confidence"], (ours or {}).get((item_id, name))
        ):
            continue
        if name == "series":
            new = merge_series(old or (), offered)
            if _same_series(new, old or ()):
                continue
            reason = "series memberships added, completed or made numeric; existing ones kept"
        elif name == "genres":
            new = merge_names(old or (), offered)
            if len(new) == len(old or ()):
                continue
            reason = "genres added; existing ones kept"
        else:
            if not _empty(old) and (name in FILL_ONLY or field_key(name, old) == field_key(name, offered)):
                continue
            new = offered
            reason = "filled an empty field" if _empty(old) else f"providers agree: {', '.join(row['agreeing'])}"
        body[ABS_FIELD[name]] = _to_abs(name, new)
        corrections.append(
            Correction(
                item_id, name, json.dumps(_to_abs(name, old) if not _empty(old) else None, ensure_ascii=False),
                json.dumps(body[ABS_FIELD[name]], ensure_ascii=False), row["provider"], row["confidence"], reason,
            )
        )
    rescued = merge_series(current.get("series") or (), ())
    if "series" not in body and not _same_series(rescued, current.get("series") or ()):
        body["series"] = _to_abs("series", rescued)
        corrections.append(Correction(
            item_id, "series", json.dumps(_to_abs("series", current["series"]), ensure_ascii=False),
            json.dumps(body["series"], ensure_ascii=False), "mamcrawler", "HIGH",
            "sequence written as a number: ABS loses a phrase sequence on its next rescan",
        ))
    return body, corrections


def _same_series(new: tuple, old: tuple) -> bool:
    return [(series_key(n), s) for n, s in new] == [(series_key(n), None if s is None else str(s)) for n, s in old]


def plan_import_metadata(wanted: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """The PATCH `metadata` body for a book just imported, from what we searched for.

    The same rules as enrichment write-back: the series set is merged (ABS replaces it
    whole) with numeric string sequences, authors and ASIN only fill what ABS left empty.
    The title is the wanted one without edition noise: ABS keeps what the tags say
    ("Iron Gold (Unabridged)", "Iron Gold [MP3]"), which a folded comparison would call equal;
    without a wanted title, ABS's own loses its noise.
    """
    body: dict[str, Any] = {}
    title = clean_title(wanted.get("title")) or clean_title(metadata.get("title"))
    if title and clean_text(metadata.get("title")) != title:
        body["title"] = title
    if wanted.get("author") and not metadata.get("authors"):
        body["authors"] = [{"name": wanted["author"]}]
    if wanted.get("series"):
        current = tuple((s["name"], s.get("sequence")) for s in metadata.get("series") or [])
        merged = merge_series(current, ((wanted["series"], wanted.get("position_label")),))
        if merged != current:
            body["series"] = _to_abs("series", merged)
    if wanted.get("asin") and not metadata.get("asin"):
        body["asin"] = wanted["asin"]
    return body


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}{'' if n == 1 else 's'}"


def outcome_summary(books: Mapping[str, int], fields: Mapping[str, int]) -> str:
    """Write-back outcomes with their units said: "applied: 2 books (10 fields)".

    The one wording the run log, the materialisation and the CLI use: a PATCH is per book,
    a correction per field, and a bare number cannot say which it counts.
    """
    if not books:
        return "nothing to change"
    parts = []
    for outcome, n in sorted(books.items(), key=lambda kv: (-kv[1], kv[0])):
        changed = fields.get(outcome, 0)
        parts.append(f"{outcome}: {_count(n, 'book')}" + (f" ({_count(changed, 'field')})" if changed else ""))
    return "; ".join(parts)
