"""Series memberships that ABS does not read: from the title, the subtitle and the folder.

ABS 2.36 ignores "The Titan's Curse (Percy Jackson and the Olympians, Book 3)", "The Black
Prism: Lightbringer, Book 1", a subtitle "Mistborn Book One" and folders "Dune Book 3 -
Children of Dune", "Dune 03 - Children of Dune" or "Bobiverse/Bobiverse 3"; it also drops
the folder series when a tag series exists (Three-Body). Only explicit markers count ("Book
3", "#3", "Vol. 3", a numbered folder under a series folder, a series folder named in the
title): a number that is part of a title ("Fahrenheit 451", "Catch-22") never becomes a
position. The same patterns strip a series note from a catalogue title (`strip_series_note`)
and recognise one part of a split edition (`split_edition_base`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mamcrawler.names import clean_text, fold, series_key, title_key
from mamcrawler.positions import NUMBER

_MARKER = r"(?:book|bk\.?|volume|vol\.?|#)"
_NUM = rf"(?P<num>{NUMBER}(?:\s*-\s*{NUMBER})?)"

# "Title (Series, Book 3)", "Title [Series #3]"
_TITLE_SUFFIX = re.compile(
    rf"^(?P<title>.+?)\s*[\(\[]\s*(?P<series>[^()\[\]]+?)\s*[,:;]?\s+{_MARKER}\s*{_NUM}\s*[\)\]]\s*$",
    re.IGNORECASE,
)
# "Series Book 3 - Title", "Series, Book 3: Title"
_SERIES_PREFIX = re.compile(
    rf"^(?P<series>.+?)\s*,?\s+{_MARKER}\s*{_NUM}\s*(?:-|–|:|\.)\s+(?P<title>.+)$", re.IGNORECASE
)
# "Title: Series, Book 3", "Title - Series Book 3", "Title: Book 3 of the Series"
_TITLE_COLON = re.compile(
    rf"^(?P<title>.+?)\s*(?::|\s-|\s–)\s+(?:(?P<series>[^:]+?)\s*,?\s+{_MARKER}\s*{_NUM}"
    rf"|{_MARKER}\s*(?P<num2>{NUMBER})\s+(?:of|in)\s+(?P<series2>[^:]+?))\s*$",
    re.IGNORECASE,
)
# Leaf folder "Series 04 - Title" (no marker: only when its title part is the book's title)
_SERIES_NUMBER_PREFIX = re.compile(
    r"^(?P<series>.*?[^\W\d_].*?)\s+(?P<num>\d{1,3}(?:\.\d+)?)\s*(?:-|–|:|\.)\s+(?P<title>.+)$"
)
# A title that is its series' name plus a number ("Bobiverse 3"), under that series' folder
_SERIES_AND_NUMBER = re.compile(rf"^(?P<series>.+?)\s*,?\s+(?:{_MARKER}\s*)?(?P<num>\d{{1,3}}(?:\.\d+)?|{NUMBER})$", re.IGNORECASE)
# Subtitle "Mistborn Book One", "Percy Jackson and the Olympians, Book 3"
_SUBTITLE_SERIES = re.compile(rf"^(?P<series>.+?)\s*,?\s+{_MARKER}\s*{_NUM}$", re.IGNORECASE)
# Subtitle "Book Two of the Stormlight Archive"
_SUBTITLE_OF = re.compile(rf"^{_MARKER}\s*{_NUM}\s+(?:of|in)\s+(?P<series>.+)$", re.IGNORECASE)
# Leaf folder under a series folder: "Book 1 - Title", "01 - Title", "08. Title"
_NUMBERED_LEAF = re.compile(
    r"^(?:(?P<marker>book|bk\.?|volume|vol\.?|#)\s*)?(?P<num>\d{1,3}(?:\.\d+)?)\s*(?:-|–|\.|:)\s+(?P<title>.+)$",
    re.IGNORECASE,
)


# Organisers' and rippers' folders (audiobook-organizer, posted in ABS issues): a leaf
# "Author - Series [01] - Title", a series folder "Series [3]/Title", a leaf "05 Title".
_BRACKETED_LEAF = re.compile(r"^(?P<series>.*?[^\W\d_].*?)\s*\[(?P<num>\d{1,3}(?:\.\d+)?)\]\s*(?:-|–|:)\s+(?P<title>.+)$")
_BRACKETED_FOLDER = re.compile(r"^(?P<series>.*?[^\W\d_].*?)\s*\[(?P<num>\d{1,3}(?:\.\d+)?)\]$")
_BARE_NUMBERED_LEAF = re.compile(r"^(?P<num>\d{1,2})\s+(?P<title>.*[^\W\d_].*)$")


@dataclass(frozen=True, slots=True)
class Recovered:
    series: str
    position: str
    source: str  # title | subtitle | folder
    clean_title: str | None = None  # the title with the series part removed


def from_title(title: str | None) -> Recovered | None:
    text = clean_text(title)
    if match := _TITLE_SUFFIX.match(text):
        return Recovered(match["series"].strip(), match["num"], "title", match["title"].strip())
    if match := _SERIES_PREFIX.match(text):
        return Recovered(match["series"].strip(), match["num"], "title", match["title"].strip())
    if (match := _TITLE_COLON.match(text)) and _has_words(match["title"]):
        series, num = (match["series"], match["num"]) if match["series"] else (match["series2"], match["num2"])
        if _has_words(series):
            return Recovered(series.strip(), num, "title", match["title"].strip())
    return None


def _is_series_name(text: str) -> bool:
    return _has_words(text) and not re.fullmatch(rf"\s*{_MARKER}\s*", text, re.IGNORECASE)


def _has_words(text: str | None) -> bool:
    return bool(re.search(r"[^\W\d_]{2}", text or ""))


def strip_series_note(title: str | None) -> str:
    """The title without a series note: "The Well of Ascension (Mistborn, Book 2)",
    "The Black Prism: Lightbringer, Book 1" and "Mistborn Book 2 - The Well of Ascension"
    are the titles "The Well of Ascension" and "The Black Prism"."""
    rec = from_title(title)
    return rec.clean_title if rec is not None and rec.clean_title else clean_text(title)


_WORD_PART = rf"(?:{NUMBER}|first|second|third|fourth|fifth|sixth)"
# "Part One of The Way of Kings", "The Way of Kings, Part 2", "The Way of Kings (2 of 3)", "Title: Part 1 of 2"
_SPLIT_OF = re.compile(rf"^\s*(?:the\s+)?(?:part|pt\.?)\s+{_WORD_PART}\s+of\s+(?:\d+\s*[:,-]\s*)?(?P<base>.+)$", re.IGNORECASE)
_SPLIT_TAIL = re.compile(rf"^(?P<base>.+?)\s+(?:part|pt\.?)\s+{_WORD_PART}(?:\s+of\s+{_WORD_PART})?\s*$", re.IGNORECASE)
_SPLIT_SUFFIX = re.compile(
    rf"^(?P<base>.+?)\s*(?:,|:|-|–|\(|\[)\s*(?:(?:part|pt\.?)\s+{_WORD_PART}(?:\s+of\s+{_WORD_PART})?"
    rf"|{_WORD_PART}\s+of\s+{_WORD_PART})\s*[\)\]]?\s*$",
    re.IGNORECASE,
)


def split_edition_base(title: str | None) -> str | None:
    """The whole book's title when `title` is one part of a split edition ("Part One of X",
    "X, Part 2", "X (Part 1 of 3)"); None for a whole book."""
    text = clean_text(title)
    match = _SPLIT_OF.match(text) or _SPLIT_SUFFIX.match(text) or _SPLIT_TAIL.match(text)
    if match and _has_words(match["base"]):
        return match["base"].strip(" ,:-–")
    return None


def from_subtitle(subtitle: str | None) -> Recovered | None:
    text = clean_text(subtitle)
    match = _SUBTITLE_SERIES.match(text) or _SUBTITLE_OF.match(text)
    if match:
        return Recovered(match["series"].strip(), match["num"], "subtitle")
    return None


def from_folder(rel_path: str | None, title: str | None) -> Recovered | None:
    """Series from `Author/Series/Book N - Title` or a leaf `Series Book N - Title`.

    The leaf's own title must agree with the item's title, so an unrelated folder
    name never invents a series.
    """
    parts = [p for p in (rel_path or "").replace("\\", "/").split("/") if p]
    if not parts:
        return None
    leaf = clean_text(parts[-1])
    item_key = title_key(title)
    # ABS names an untagged book after its folder: then the folder's title part is the title.
    whole = title_key(leaf) == item_key
    for pattern in (_SERIES_PREFIX, _SERIES_NUMBER_PREFIX):
        if (
            (match := pattern.match(leaf))
            and (whole or _same_title(match["title"], item_key))
            and _is_series_name(match["series"])
            and title_key(f"{match['series']} {match['num']}") != item_key  # "Room 237 - Room 237": the title's own number
        ):
            return Recovered(match["series"].strip(), match["num"], "folder", match["title"].strip() if whole else None)
    if (match := _BRACKETED_LEAF.match(leaf)) and (whole or _same_title(match["title"], item_key)):
        series = _without_author(match["series"], parts[:-1])
        if _is_series_name(series):
            return Recovered(series, match["num"], "folder", match["title"].strip() if whole else None)
    if len(parts) < 3:
        return None
    folder = _BRACKETED_FOLDER.match(clean_text(parts[-2]))
    if folder and _same_title(leaf, item_key) and fold(folder["series"]) != fold(parts[-3]):
        return Recovered(folder["series"].strip(), folder["num"], "folder")
    series = clean_text(parts[-2])
    if not fold(series) or fold(series) == fold(parts[-3]):
        return None
    if (match := _NUMBERED_LEAF.match(leaf)) and (whole or _same_title(match["title"], item_key)):
        return Recovered(series, match["num"], "folder", match["title"].strip() if whole else None)
    # "05 Death Masks": only when the rest is the book's own title ("11 22 63" is a title).
    if not whole and (match := _BARE_NUMBERED_LEAF.match(leaf)) and _same_title(match["title"], item_key):
        return Recovered(series, match["num"], "folder")
    # "Bobiverse/Bobiverse 3": the title is the series folder's name plus a number.
    match = _SERIES_AND_NUMBER.match(clean_text(title))
    if match and series_key(match["series"]) == series_key(series) and _same_title(leaf, item_key):
        return Recovered(series, match["num"], "folder")
    return None


def _without_author(series: str, parents: list[str]) -> str:
    """ "Jim Butcher - The Dresden Files" under the folder "Jim Butcher" is "The Dresden Files"."""
    head, sep, tail = series.partition(" - ")
    return tail.strip() if sep and fold(head) in {fold(p) for p in parents} else series.strip()


def _same_title(folder_title: str, item_key: str) -> bool:
    # Folder names carry extra noise such as "{Narrator}" or "(2015)".
    folder_key = title_key(re.sub(r"\s*[\(\[\{][^()\[\]{}]*[\)\]\}]\s*", " ", folder_title))
    return bool(item_key) and (folder_key == item_key or folder_key.startswith(item_key + " "))
