"""Matching provider candidates to owned books, and an honest consensus per field.

Evidence, strongest first: identifiers (ASIN, ISBN), then folded title + author
(rapidfuzz), then duration (an audiobook edition within a minute of the file is the same
edition; more than ten minutes off is another edition). Sequel numbers never match each
other ("Remnant II" vs "Remnant III"). Contradictions between providers are kept visible
with their providers, never averaged away.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any

import polars as pl
from rapidfuzz import fuzz

from mamcrawler.candidates import Candidate, isbn13, plain_text
from mamcrawler.frames import frame_from_rows
from mamcrawler.names import author_key, fold, series_key, title_key
from mamcrawler.positions import number_value, parse_position
from mamcrawler.series_recovery import from_subtitle, from_title, strip_series_note

LEVELS = ("UNMATCHED", "LOW", "MEDIUM", "HIGH")
RANK = {level: i for i, level in enumerate(LEVELS)}
SAME_EDITION_S = 60
OTHER_EDITION_S = 600

_SEQUEL = re.compile(r"\b(\d{1,4}|[ivxlc]{1,6}|one|two|three|four|five|six|seven|eight|nine|ten)\b")


@dataclass(frozen=True)
class OwnedBook:
    """The parts of a `library_books` row that matching needs."""

    item_id: str
    title: str
    authors: tuple[str, ...] = ()
    isbn: str | None = None
    asin: str | None = None
    duration_s: float | None = None


@dataclass(frozen=True)
class Match:
    candidate: Candidate
    score: float  # 0..100
    level: str
    evidence: tuple[str, ...]
    edition: str | None = None  # "same" / "other" audiobook edition, by runtime; None when unknown


def sequel_numbers(title: str | None) -> set[float]:
    """Numbers that make a title a different volume: "Remnant II" -> {2}, "Book 3" -> {3}."""
    found = set()
    for token in _SEQUEL.findall(fold(title)):
        value = number_value(token)
        if value is not None and not (token.isdigit() and len(token) == 4):  # 4 digits: a year, not a volume
            found.add(value)
    return found


def _title_score(book: str, candidate: Candidate) -> float:
    owned = title_key(strip_series_note(book))
    offered = [title_key(candidate.title)]
    if candidate.subtitle:
        offered.append(title_key(f"{candidate.title} {candidate.subtitle}"))
    return max(fuzz.ratio(owned, o) for o in offered if o) if owned else 0.0


def _author_score(book: OwnedBook, candidate: Candidate) -> float | None:
    mine = {author_key(a) for a in book.authors} - {""}
    theirs = {author_key(a) for a in candidate.authors} - {""}
    if not mine or not theirs:
        return None
    return max(fuzz.ratio(a, b) for a in mine for b in theirs)


def _volume_subtitle(candidate: Candidate) -> str:
    """The candidate's subtitle, or "" when it only restates the candidate's own series
    position ("Book 2 of the Stormlight Archive" for a book at Stormlight Archive #2)."""
    subtitle = candidate.subtitle or ""
    note = from_subtitle(subtitle) or from_title(f"{candidate.title}: {subtitle}")
    if note is None or (pos := parse_position(note.position)) is None:
        return subtitle
    own = {(series_key(name), p.sort_key) for name, raw in candidate.series if (p := parse_position(raw)) is not None}
    return "" if (series_key(note.series), pos.sort_key) in own else subtitle


def match(book: OwnedBook, candidate: Candidate) -> Match:
    """Score one candidate against one owned book, with the evidence for the score."""
    evidence: list[str] = []
    # Titles that carry different volume numbers are different books, whatever else agrees.
    mine = sequel_numbers(strip_series_note(book.title))
    theirs = sequel_numbers(f"{candidate.title} {_volume_subtitle(candidate)}")
    if mine and theirs and mine != theirs:
        return Match(candidate, 0.0, "UNMATCHED", ("sequel_number_mismatch",))
    if book.asin and candidate.asin and book.asin.upper() == candidate.asin.upper():
        evidence.append("asin")
    book_isbn = isbn13(book.isbn)
    if book_isbn and candidate.isbn and book_isbn == candidate.isbn:
        evidence.append("isbn")
    title = _title_score(book.title, candidate)
    author = _author_score(book, candidate)
    evidence.append(f"title {title:.0f}")
    if author is not None:
        evidence.append(f"author {author:.0f}")
    score = 0.65 * title + 0.35 * (author if author is not None else 70.0)
    if mine != theirs:
        score -= 15
        evidence.append("volume number on one side only")
    edition = None
    if book.duration_s and candidate.duration_s and candidate.is_audiobook:
        off = abs(book.duration_s - candidate.duration_s)
        if off <= SAME_EDITION_S:
            score += 10
            edition = "same"
            evidence.append("runtime within a minute: same edition")
        elif off > OTHER_EDITION_S and "asin" not in evidence:
            # The same book, another recording: its ASIN, narrators and runtime are not ours.
            edition = "other"
            evidence.append(f"runtime off by {off / 60:.0f} min: another edition")
    if "asin" in evidence:
        edition = "same"  # an ASIN names the edition itself
    if "asin" in evidence or "isbn" in evidence:
        score = max(score, 95.0) if title >= 60 else max(score, 80.0)
    score = max(0.0, min(100.0, score))
    identified = ("asin" in evidence or "isbn" in evidence) and title >= 60
    if identified or (score >= 92 and author is not None and author >= 90):
        level = "HIGH"
    elif score >= 85:
        level = "MEDIUM"
    elif score >= 72:
        level = "LOW"
    else:
        level = "UNMATCHED"
    return Match(candidate, round(score, 1), level, tuple(evidence), edition)


# --- consensus ------------------------------------------------------------------

def field_key(name: str, value: Any) -> Any:
    """What counts as "the same value" when providers are compared."""
    if name == "series":
        out = []
        for series, position in value:
            pos = parse_position(position)
            out.append((series_key(series), pos.sort_key if pos else None))
        return tuple(sorted(out, key=str))
    if name in ("authors", "narrators"):
        return tuple(sorted(author_key(v) for v in value))
    if name == "genres":
        return tuple(sorted(fold(v) for v in value))
    if name == "description":  # the same words, with or without HTML
        return fold(plain_text(value))[:200]
    if name in ("title", "subtitle", "publisher", "language"):
        return fold(value)[:200]
    if name == "duration_s":
        return round(float(value) / 60)  # minutes
    if name == "isbn":
        return isbn13(value) or value  # 0-7653-1178-X and 9780765311788 are one book
    return value


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == () or value == []


def _to_json(value: Any) -> str:
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        value = [{"name": n, "sequence": s} for n, s in value]
    return json.dumps(value, ensure_ascii=False, default=list)


@dataclass(frozen=True)
class FieldValue:
    field: str
    value_json: str
    provider: str
    agreeing: tuple[str, ...]
    providers_with_value: int
    confidence: str
    conflict: bool
    alternatives_json: str


# Fields that describe an edition: only audiobook candidates of the same edition count.
EDITION_FIELDS = {"narrators", "duration_s", "asin"}
CONSENSUS_FIELDS = (
    "title", "subtitle", "authors", "narrators", "series", "year", "publisher", "isbn", "asin",
    "language", "genres", "description", "cover", "duration_s",
)


def consensus(matches: list[Match], weights: dict[str, float], book_level: str) -> list[FieldValue]:
    """Best value per field: weighted vote of accepted candidates, conflicts kept visible.

    A field's confidence is the book's, lowered when providers disagree: a clear majority
    (>= 75% of the weight) keeps it, a split majority lowers it one level, a tie makes it LOW.
    """
    accepted = [m for m in matches if RANK[m.level] >= RANK["LOW"]]
    out: list[FieldValue] = []
    for name in CONSENSUS_FIELDS:
        # One vote per provider: its best-matching candidate that has the field, so a provider
        # returning several editions cannot outvote the others.
        votes: dict[str, tuple[float, Match, Any]] = {}
        for m in accepted:
            value = getattr(m.candidate, name)
            if _empty(value):
                continue
            if name in EDITION_FIELDS and (not m.candidate.is_audiobook or m.edition == "other"):
                continue
            weight = weights.get(m.candidate.provider, 0.5) * m.score / 100
            if m.candidate.provider not in votes or weight > votes[m.candidate.provider][0]:
                votes[m.candidate.provider] = (weight, m, value)
        groups: dict[Any, list[tuple[float, Match, Any]]] = defaultdict(list)
        for weight, m, value in votes.values():
            groups[field_key(name, value)].append((weight, m, value))
        if not groups:
            continue
        ranked = sorted(groups.values(), key=lambda g: (-sum(w for w, _, _ in g), -max(w for w, _, _ in g)))
        total = sum(w for g in ranked for w, _, _ in g)
        best = ranked[0]
        best_weight = sum(w for w, _, _ in best)
        _, top_match, top_value = max(best, key=lambda t: t[0])
        share = best_weight / total if total else 0.0
        tie = len(ranked) > 1 and abs(sum(w for w, _, _ in ranked[1]) - best_weight) < 1e-9
        # A value is no surer than the best match that offers it.
        level = LEVELS[min(RANK[book_level], max(RANK[m.level] for _, m, _ in best))]
        if tie:
            level = "LOW"
        elif share < 0.75:
            level = LEVELS[max(1, RANK[level] - 1)]
        alternatives = [
            {"value": json.loads(_to_json(g[0][2])), "providers": sorted({m.candidate.provider for _, m, _ in g})}
            for g in ranked[1:]
        ]
        out.append(
            FieldValue(
                field=name,
                value_json=_to_json(top_value),
                provider=top_match.candidate.provider,
                agreeing=tuple(sorted({m.candidate.provider for _, m, _ in best})),
                providers_with_value=len({m.candidate.provider for g in ranked for _, m, _ in g}),
                confidence=level if RANK[book_level] > 0 else "UNMATCHED",
                conflict=len(ranked) > 1,
                alternatives_json=json.dumps(alternatives, ensure_ascii=False),
            )
        )
    return out


def book_confidence(matches: list[Match]) -> tuple[str, tuple[str, ...]]:
    """The book's level: its best match, raised to HIGH when two providers agree at MEDIUM."""
    if not matches:
        return "UNMATCHED", ("no candidates",)
    best = max(matches, key=lambda m: (RANK[m.level], m.score))
    medium_providers = {m.candidate.provider for m in matches if RANK[m.level] >= RANK["MEDIUM"]}
    if best.level == "MEDIUM" and len(medium_providers) >= 2:
        return "HIGH", (*best.evidence, f"{len(medium_providers)} providers agree")
    return best.level, best.evidence


# --- tables -------------------------------------------------------------------------

N_BUCKETS = 16
BUCKETS = tuple(f"{i:02d}" for i in range(N_BUCKETS))

CANDIDATE_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.Utf8, "bucket": pl.Utf8, "provider": pl.Utf8, "rank": pl.Int64, "provider_id": pl.Utf8,
    "match_score": pl.Float64, "match_level": pl.Utf8, "evidence": pl.List(pl.Utf8), "edition": pl.Utf8,
    "title": pl.Utf8, "subtitle": pl.Utf8, "authors": pl.List(pl.Utf8), "narrators": pl.List(pl.Utf8),
    "series": pl.List(pl.Struct({"name": pl.Utf8, "sequence": pl.Utf8})), "year": pl.Int32,
    "publisher": pl.Utf8, "isbn": pl.Utf8, "asin": pl.Utf8, "language": pl.Utf8, "genres": pl.List(pl.Utf8),
    "description": pl.Utf8, "cover": pl.Utf8, "duration_s": pl.Float64, "is_audiobook": pl.Boolean,
    "series_refs": pl.List(pl.Struct({"name": pl.Utf8, "ref": pl.Utf8})),
    "author_refs": pl.List(pl.Struct({"name": pl.Utf8, "ref": pl.Utf8})),
    # Other titles and ISBNs of the same work (other editions, US/UK titles), where the provider gives them.
    "alt_titles": pl.List(pl.Utf8), "isbns": pl.List(pl.Utf8),
    "fetched_at": pl.Datetime("us", "UTC"),
}
STATE_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.Utf8, "bucket": pl.Utf8, "enriched_at": pl.Datetime("us", "UTC"),
    "providers": pl.List(pl.Utf8), "pending": pl.List(pl.Utf8), "candidates": pl.Int64, "best_level": pl.Utf8,
}
ENRICHED_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.Utf8, "bucket": pl.Utf8, "field": pl.Utf8, "value_json": pl.Utf8, "provider": pl.Utf8,
    "agreeing": pl.List(pl.Utf8), "providers_with_value": pl.Int64, "confidence": pl.Utf8, "conflict": pl.Boolean,
    "alternatives_json": pl.Utf8, "book_confidence": pl.Utf8, "book_evidence": pl.List(pl.Utf8),
}


def bucket_of(item_id: str) -> str:
    """A fixed hash bucket per item: the partition its metadata lives in."""
    return BUCKETS[int(hashlib.sha1(item_id.encode()).hexdigest()[:8], 16) % N_BUCKETS]


def owned_books(books: pl.DataFrame) -> list[OwnedBook]:
    return [
        OwnedBook(r["item_id"], r["title"], tuple(r["authors"] or ()), r["isbn"], r["asin"], r["duration_s"])
        for r in books.select("item_id", "title", "authors", "isbn", "asin", "duration_s").iter_rows(named=True)
    ]


def candidate_frame(books: list[OwnedBook], found: dict[str, list[Candidate]], now: datetime) -> pl.DataFrame:
    """One row per (book, candidate) with the match score and its evidence."""
    rows = []
    for book in books:
        ranks: dict[str, int] = defaultdict(int)
        for candidate in found.get(book.item_id, []):
            m = match(book, candidate)
            row = candidate.as_row()
            ranks[candidate.provider] += 1
            refs = candidate.extra.get("series_asins") or candidate.extra.get("series_ids") or {}
            authors = candidate.extra.get("author_ids") or {}
            row.update(
                series_refs=[{"name": n, "ref": str(r)} for n, r in refs.items() if r is not None],
                author_refs=[{"name": n, "ref": str(r)} for n, r in authors.items() if r is not None],
                alt_titles=[str(t) for t in candidate.extra.get("alternative_titles") or () if t],
                isbns=[i for i in (isbn13(x) for x in candidate.extra.get("isbns") or ()) if i],
                item_id=book.item_id, bucket=bucket_of(book.item_id), rank=ranks[candidate.provider],
                match_score=m.score, match_level=m.level, edition=m.edition,
                evidence=list(m.evidence), fetched_at=now,
            )
            rows.append(row)
    return frame_from_rows(rows, CANDIDATE_SCHEMA)


def state_frame(
    books: list[OwnedBook],
    answered: dict[str, set[str]],
    pending: dict[str, set[str]],
    candidates: pl.DataFrame,
    now: datetime,
) -> pl.DataFrame:
    """Per book: when it was asked, which providers answered, which still owe an answer, and
    its level as `book_confidence` decides it (the level `enriched_books` carries).

    `candidates` are all the book's stored candidates (earlier answers kept included); a book
    without any is UNMATCHED only when no provider owes an answer, else PENDING."""
    best = {item_id: level for item_id, (level, _) in book_levels(candidates).items()}
    counts = dict(candidates.group_by("item_id").len().iter_rows())
    rows = [
        {
            "item_id": b.item_id, "bucket": bucket_of(b.item_id), "enriched_at": now,
            "providers": sorted(p for p, items in answered.items() if b.item_id in items),
            "pending": sorted(row_pending),
            "candidates": counts.get(b.item_id, 0), "best_level": best.get(b.item_id, "PENDING" if row_pending else "UNMATCHED"),
        }
        for b in books
        for row_pending in [[p for p, items in pending.items() if b.item_id in items]]
    ]
    return frame_from_rows(rows, STATE_SCHEMA)


def _stored_matches(candidates: pl.DataFrame) -> dict[str, list[Match]]:
    """The matches of each book, rebuilt from stored candidate rows."""
    fields = [f.name for f in dataclass_fields(Candidate) if f.name != "extra"]
    out: dict[str, list[Match]] = {}
    for (item_id,), group in candidates.group_by("item_id", maintain_order=True):
        matches = out.setdefault(item_id, [])
        for r in group.iter_rows(named=True):
            values = {k: r[k] for k in fields if k in r}
            for key in ("authors", "narrators", "genres"):
                values[key] = tuple(values[key] or ())
            values["series"] = tuple((s["name"], s["sequence"]) for s in r["series"] or [])
            matches.append(Match(Candidate(**values), r["match_score"], r["match_level"], tuple(r["evidence"]), r["edition"]))
    return out


def book_levels(candidates: pl.DataFrame) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each book's level and evidence from its stored candidates: the one place it is decided."""
    return {item_id: book_confidence(matches) for item_id, matches in _stored_matches(candidates).items()}


def enriched_frame(candidates: pl.DataFrame, weights: dict[str, float]) -> pl.DataFrame:
    """Consensus per (book, field) from the stored candidate rows."""
    rows = []
    for item_id, matches in _stored_matches(candidates).items():
        level, evidence = book_confidence(matches)
        for fv in consensus(matches, weights, level):
            rows.append(
                {
                    "item_id": item_id, "bucket": bucket_of(item_id), "field": fv.field, "value_json": fv.value_json,
                    "provider": fv.provider, "agreeing": list(fv.agreeing), "providers_with_value": fv.providers_with_value,
                    "confidence": fv.confidence, "conflict": fv.conflict, "alternatives_json": fv.alternatives_json,
                    "book_confidence": level, "book_evidence": list(evidence),
                }
            )
    return frame_from_rows(rows, ENRICHED_SCHEMA)
