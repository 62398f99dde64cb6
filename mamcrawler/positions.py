"""Series positions: a position is not a number.

ABS keeps sequences verbatim ("2.0", "Book Two", "1-3"), so a position keeps its raw
text next to what it means: a sort key, the range an omnibus covers, and a kind that
says whether it counts towards completeness (main) or not (prequel, novella).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["main", "novella", "prequel", "omnibus", "unknown"]

_WORD_NUMBERS = {
    w: i
    for i, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
    )
}
_ORDINALS = {
    w: i
    for i, w in enumerate(
        ["zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth", "twentieth"]
    )
}
_ROMAN = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100}
_ROMAN_RE = re.compile(r"^(?=[ivxlc]+$)c{0,3}(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})$")

NUMBER = r"(?:\d+(?:\.\d+)?|[ivxlc]+|" + "|".join(sorted(_WORD_NUMBERS, key=len, reverse=True)) + ")"
_PREFIX = re.compile(r"^(?:books?|bks?|volumes?|vols?|tome|part|no|number|episode|#)\.?\s*#?\s*", re.IGNORECASE)
_RANGE = re.compile(rf"^({NUMBER})\s*(?:-|–|—|to|&|,|\+)\s*({NUMBER})$", re.IGNORECASE)
_PART = re.compile(rf"^({NUMBER})\s*[,;:]?\s*(?:part|pt\.?)\s*(\d+)$", re.IGNORECASE)
_MAX_POSITION = 10_000  # larger numbers are years or catalogue ids, not positions


@dataclass(frozen=True, slots=True)
class Position:
    raw: str
    sort_key: float | None
    lo: float | None
    hi: float | None
    part: int | None
    kind: Kind

    @property
    def covered(self) -> list[int]:
        """Main-line integer positions this entry stands for (an omnibus covers its range)."""
        if self.kind == "main" and self.sort_key is not None:
            return [int(self.sort_key)]
        if self.kind == "omnibus" and self.lo is not None and self.hi is not None:
            return list(range(int(self.lo), int(self.hi) + 1))
        return []


def number_value(token: str) -> float | None:
    """"3", "3.5", "three", "third", "III" -> number; anything else -> None."""
    t = token.strip().lower().rstrip(".")
    if not t:
        return None
    if re.fullmatch(r"\d+(?:\.\d+)?", t):
        value = float(t)
        return value if value < _MAX_POSITION else None
    if t in _WORD_NUMBERS:
        return float(_WORD_NUMBERS[t])
    if t in _ORDINALS:
        return float(_ORDINALS[t])
    if _ROMAN_RE.match(t):
        total, prev = 0, 0
        for ch in reversed(t):
            val = _ROMAN[ch]
            total = total - val if val < prev else total + val
            prev = max(prev, val)
        return float(total)
    return None


def _kind(value: float) -> Kind:
    if value < 1:
        return "prequel"
    return "main" if value == int(value) else "novella"


def parse_position(raw: str | int | float | None) -> Position | None:
    """Parse an ABS sequence; None when there is no position at all."""
    if raw is None:
        return None
    text = str(raw).strip()
    if not text:
        return None
    body = _PREFIX.sub("", text).strip()
    if match := _RANGE.match(body):
        lo, hi = number_value(match.group(1)), number_value(match.group(2))
        if lo is not None and hi is not None and lo == int(lo) and hi == int(hi) and 1 <= lo < hi <= lo + 50:
            return Position(text, lo, lo, hi, None, "omnibus")
    if match := _PART.match(body):
        value = number_value(match.group(1))
        if value is not None:
            return Position(text, value, None, None, int(match.group(2)), _kind(value))
    value = number_value(body)
    if value is None:
        return Position(text, None, None, None, None, "unknown")
    return Position(text, value, None, None, None, _kind(value))


def format_position(value: float | None) -> str:
    """3.0 -> "3", 2.5 -> "2.5": the string ABS wants back in a PATCH."""
    if value is None:
        return ""
    if not math.isfinite(value):
        return f"{value:g}"  # "inf", "nan": never a position we write, but never a crash
    return str(int(value)) if value == int(value) else f"{value:g}"
