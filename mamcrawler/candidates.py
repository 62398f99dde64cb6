"""What a metadata provider says about one book, in one shape for every provider.

Providers answer in their own shapes; each resource turns an answer into `Candidate`s
and `sanitise` rejects absurd values (year 0, negative durations, 500 authors) with a
counted reason, so nothing absurd can reach the consensus or ABS.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mamcrawler.names import clean_text

FIELDS = (
    "title", "subtitle", "authors", "narrators", "series", "year", "publisher", "isbn", "asin",
    "language", "genres", "description", "cover", "duration_s",
)
MAX_PEOPLE = 20
MAX_DESCRIPTION = 20_000
_ASIN = re.compile(r"^[A-Z0-9]{10}$")
_TAGS = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class BookQuery:
    """What we know about an owned book when asking a provider."""

    item_id: str
    title: str
    author: str | None = None
    isbn: str | None = None
    asin: str | None = None
    duration_s: float | None = None


@dataclass(frozen=True)
class Candidate:
    provider: str
    provider_id: str | None = None
    title: str | None = None
    subtitle: str | None = None
    authors: tuple[str, ...] = ()
    narrators: tuple[str, ...] = ()
    series: tuple[tuple[str, str | None], ...] = ()  # (name, raw position)
    year: int | None = None
    publisher: str | None = None
    isbn: str | None = None  # ISBN-13 where the provider gives one
    asin: str | None = None
    language: str | None = None
    genres: tuple[str, ...] = ()
    description: str | None = None
    cover: str | None = None
    duration_s: float | None = None
    is_audiobook: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["series"] = [{"name": n, "sequence": s} for n, s in self.series]
        for key in ("authors", "narrators", "genres"):
            row[key] = list(row[key])
        row.pop("extra")
        return row


def isbn13(raw: str | None) -> str | None:
    """Normalise an ISBN-10 or -13 to a valid ISBN-13; None when the check digit fails."""
    if not raw:
        return None
    digits = re.sub(r"[^0-9Xx]", "", str(raw)).upper()
    if len(digits) == 10:
        if not digits[:9].isdigit():
            return None
        total = sum((10 - i) * (10 if c == "X" else int(c)) for i, c in enumerate(digits))
        if total % 11:
            return None
        digits = "978" + digits[:9]
        return digits + str((10 - sum((1 if i % 2 == 0 else 3) * int(c) for i, c in enumerate(digits)) % 10) % 10)
    if len(digits) == 13 and digits.isdigit():
        check = (10 - sum((1 if i % 2 == 0 else 3) * int(c) for i, c in enumerate(digits[:12])) % 10) % 10
        return digits if check == int(digits[12]) else None
    return None


def year_of(raw: Any) -> int | None:
    match = re.match(r"^\s*(\d{4})", str(raw or ""))
    return int(match.group(1)) if match else None


def plain_text(html: str | None) -> str | None:
    if not html:
        return None
    text = clean_text(_TAGS.sub(" ", html))
    return text or None


_KEPT_TAG = re.compile(r"<(/?)(p|br|b|i|em|strong|ul|ol|li)\b[^<>]*?(/?)\s*>", re.IGNORECASE)
_OTHER_TAG = re.compile(r"<!--.*?(?:-->|$)|</?[A-Za-z!][^<>]*>", re.DOTALL)
_HIDDEN = re.compile(r"<\s*(script|style|iframe|object)\b.*?(?:<\s*/\s*\1\s*>|$)", re.IGNORECASE | re.DOTALL)


def description_html(html: str | None) -> str | None:
    """A provider's description with its formatting, as ABS keeps it: paragraphs, line breaks,
    emphasis and lists stay (without attributes); every other tag, and what scripts and
    styles hold, goes. Plain text stays plain text."""
    if not html or not isinstance(html, str):
        return None
    if "<" not in html:
        return plain_text(html)
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(f"<{match.group(1)}{match.group(2).lower()}{'/' if match.group(3) else ''}>")
        return f"\x00{len(kept) - 1}\x00"

    text = _OTHER_TAG.sub(" ", _KEPT_TAG.sub(keep, _HIDDEN.sub(" ", html.replace("\x00", ""))))
    text = " ".join(text.replace("<", "&lt;").replace(">", "&gt;").split())
    text = re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], text)
    return text if plain_text(text) else None


def sanitise(candidate: Candidate, current_year: int = 2100) -> tuple[Candidate | None, list[str]]:
    """Drop absurd values; reject the candidate when it has no usable title.

    Returns the cleaned candidate (or None) and the reasons, for counting.
    """
    reasons: list[str] = []
    title = clean_text(candidate.title)
    if not title:
        return None, ["no_title"]
    changes: dict[str, Any] = {"title": title}
    if candidate.year is not None and not 1400 <= candidate.year <= current_year:
        changes["year"] = None
        reasons.append("absurd_year")
    if candidate.duration_s is not None and not 0 < candidate.duration_s < 400 * 3600:
        changes["duration_s"] = None
        reasons.append("absurd_duration")
    for key in ("authors", "narrators"):
        people = tuple(p for p in (clean_text(x) for x in getattr(candidate, key)) if p)
        if len(people) > MAX_PEOPLE:
            reasons.append(f"too_many_{key}")
            people = ()
        changes[key] = people
    if candidate.asin and not _ASIN.match(candidate.asin):
        changes["asin"] = None
        reasons.append("bad_asin")
    if candidate.isbn is not None:
        changes["isbn"] = isbn13(candidate.isbn)
        if changes["isbn"] is None:
            reasons.append("bad_isbn")
    if candidate.description and len(candidate.description) > MAX_DESCRIPTION:
        changes["description"] = candidate.description[:MAX_DESCRIPTION]
        reasons.append("long_description")
    return replace(candidate, **changes), reasons
