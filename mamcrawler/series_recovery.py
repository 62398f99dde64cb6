"""Series memberships that ABS does not read: from the title, the subtitle and the folder.

ABS 2.36 ignores "The Titan's Curse (Percy Jackson and the Olympians, Book 3)", a
subtitle "Mistborn Book One" and a folder "Dune Book 3 - Children of Dune"; it also
drops the folder series when a tag series exists (Three-Body). Only explicit markers
count ("Book 3", "#3", "Vol. 3", a numbered folder under a series folder): a number
that is part of a title ("Fahrenheit 451", "Catch-22") never becomes a position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mamcrawler.names import clean_text, fold, title_key
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
# Subtitle "Mistborn Book One", "Percy Jackson and the Olympians, Book 3"
_SUBTITLE_SERIES = re.compile(rf"^(?P<series>.+?)\s*,?\s+{_MARKER}\s*{_NUM}$", re.IGNORECASE)
# Subtitle "Book Two of the Stormlight Archive"
_SUBTITLE_OF = re.compile(rf"^{_MARKER}\s*{_NUM}\s+(?:of|in)\s+(?P<series>.+)$", re.IGNORECASE)
# Leaf folder under a series folder: "Book 1 - Title", "01 - Title", "08. Title"
_NUMBERED_LEAF = re.compile(
    r"^(?:(?P<marker>book|bk\.?|volume|vol\.?|#)\s*)?(?P<num>\d{1,3}(?:\.\d+)?)\s*(?:-|–|\.|:)\s+(?P<title>.+)$",
    re.IGNORECASE,
)


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
    if (match := _SERIES_PREFIX.match(leaf)) and _same_title(match["title"], item_key):
        return Recovered(match["series"].strip(), match["num"], "folder")
    if len(parts) >= 3 and (match := _NUMBERED_LEAF.match(leaf)):
        series = clean_text(parts[-2])
        if fold(series) and fold(series) != fold(parts[-3]) and _same_title(match["title"], item_key):
            return Recovered(series, match["num"], "folder")
    return None


def _same_title(folder_title: str, item_key: str) -> bool:
    # Folder names carry extra noise such as "{Narrator}" or "(2015)".
    folder_key = title_key(re.sub(r"\s*[\(\[\{][^()\[\]{}]*[\)\]\}]\s*", " ", folder_title))
    return bool(item_key) and (folder_key == item_key or folder_key.startswith(item_key + " "))
