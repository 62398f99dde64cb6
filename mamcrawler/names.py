"""Folding of titles, author names and series names into match keys.

ABS treats "J. R. R. Tolkien" and "J.R.R. Tolkien" as two authors and keeps
"Lem, Stanisław" and "Stanisław Lem" apart only when the tags differ, so every
comparison in MAMcrawler goes through these keys, never through raw strings.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Characters NFKD does not decompose into a base letter + combining mark.
_TRANSLITERATE = str.maketrans(
    {
        "ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ß": "ss",
        "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "þ": "th", "Þ": "Th", "ı": "i",
        "’": "'", "‘": "'", "–": "-", "—": "-",
    }
)
_NON_WORD = re.compile(r"[^0-9a-z]+")
_LEADING_ARTICLE = re.compile(r"^(the|a|an) ")
_SERIES_SUFFIX = re.compile(r" (series|saga|sequence|cycle)$")

# Release noise that is not part of a title: "(Unabridged)", "[m4b]", "{64kbps}".
_NOISE_WORDS = (
    r"unabridged|abridged|retail|m4b|m4a|mp3|flac|ogg|opus|aac|audiobook|audio ?book|"
    r"\d{2,3} ?kbps|\d{2,3}k|vbr|cbr|narrated by [^)\]}]+|read by [^)\]}]+|full[- ]cast|dramati[sz]ed"
)
_NOISE_BRACKETS = re.compile(
    rf"\s*[\(\[\{{]\s*(?:{_NOISE_WORDS})(?:\s*[,/;-]\s*(?:{_NOISE_WORDS}))*\s*[\)\]\}}]", re.IGNORECASE
)
_NOISE_TRAILING = re.compile(r"\s*[-:]\s*(?:unabridged|audiobook)\s*$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def fold(text: str | None) -> str:
    """Lower-case ASCII words separated by single spaces; "" for nothing."""
    return _fold(text) if text else ""


@lru_cache(maxsize=262_144)  # author and series names repeat across a library
def _fold(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATE))
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.lower().replace("&", " and ").replace("'", "")
    return _NON_WORD.sub(" ", text).strip()


def clean_text(text: str | None) -> str:
    """Collapse whitespace and drop control characters, keeping everything else; anything that
    is not text (a provider's `"title": NaN`) is no text."""
    if not text or not isinstance(text, str):
        return ""
    if not text.isprintable():
        text = _CONTROL.sub(" ", text)
    return " ".join(text.split())


def clean_title(title: str | None) -> str:
    """A display title without release noise such as "(Unabridged)" or "[m4b]"."""
    text = clean_text(title)
    if not any(ch in text for ch in "([{-:"):
        return text
    previous = None
    while previous != text:
        previous = text
        text = _NOISE_TRAILING.sub("", _NOISE_BRACKETS.sub("", text)).strip()
    return text


def title_key(title: str | None) -> str:
    """Match key of a title: folded, noise and a leading article removed."""
    return _LEADING_ARTICLE.sub("", fold(clean_title(title)))


@lru_cache(maxsize=65_536)  # series names repeat on every book of the series
def series_key(name: str | None) -> str:
    """Match key of a series name ("The Expanse Series" == "Expanse")."""
    return _SERIES_SUFFIX.sub("", _LEADING_ARTICLE.sub("", fold(name)))


_AUTHOR_SEPARATORS = re.compile(r"\s*(?:;|&|\band\b|\bwith\b|/)\s*", re.IGNORECASE)
_SUFFIXES = {"jr", "sr", "ii", "iii", "iv", "phd", "md"}


def split_authors(text: str | None) -> list[str]:
    """Split "A & B", "A and B", "A; B" and "A, B" into names; keeps "Last, First" whole."""
    text = clean_text(text)
    if not text:
        return []
    names: list[str] = []
    for part in _AUTHOR_SEPARATORS.split(text):
        pieces: list[str] = []
        for piece in (p.strip() for p in part.split(",") if p.strip()):
            if pieces and fold(piece) in _SUFFIXES:  # "Martin Luther King, Jr." is one name
                pieces[-1] += f", {piece}"
            else:
                pieces.append(piece)
        # "Lem, Stanisław", "Le Guin, Ursula K." and "García Márquez, Gabriel" are one name;
        # "Terry Pratchett, Neil Gaiman" and "Rebecca Moesta, Kevin J. Anderson" are two.
        if len(pieces) == 2 and _is_last_first(pieces[0], pieces[1]):
            names.append(f"{pieces[0]}, {pieces[1]}")
        else:
            names.extend(pieces)
    return names


def _is_last_first(last: str, first: str) -> bool:
    words = first.split()
    if fold(first) in _SUFFIXES or not words:
        return False
    # Given names are one word or end in an initial ("Tolkien, J. R. R.", "Le Guin, Ursula K.");
    # after a one-word surname two words are given names too ("Lem, Stanisław Herman").
    given = len(words) == 1 or len(fold(words[-1])) == 1
    return given or (" " not in last and len(words) <= 2) if len(last.split()) <= 3 else False


def author_key(name: str | None) -> str:
    """Match key of one author: "Lem, Stanisław", "Stanislaw Lem" and "S. Lem" share
    the surname; initials are joined so "J. R. R. Tolkien" == "J.R.R. Tolkien"."""
    text = clean_text(name)
    if not text:
        return ""
    if text.count(",") == 1:
        last, first = (p.strip() for p in text.split(","))
        if fold(first) not in _SUFFIXES:
            text = f"{first} {last}"
    # "J.R.R." -> "J. R. R.", then runs of single letters join: "jrr tolkien".
    text = re.sub(r"\.(?=\S)", ". ", text)
    tokens: list[str] = []
    in_initials = False
    for word in fold(text).split():
        if word in _SUFFIXES:
            continue
        if len(word) == 1 and in_initials:
            tokens[-1] += word
        else:
            tokens.append(word)
            in_initials = len(word) == 1
    return " ".join(tokens)


def display_author(name: str | None) -> str:
    """"Lem, Stanisław" -> "Stanisław Lem"; other names unchanged."""
    text = clean_text(name)
    if text.count(",") == 1:
        last, first = (p.strip() for p in text.split(","))
        if first and fold(first) not in _SUFFIXES:
            return f"{first} {last}"
    return text
