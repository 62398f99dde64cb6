"""A synthetic ABS library with a known answer, for benchmarks and scale tests.

Items have the shape of `POST /api/items/batch/get` (ABS 2.36.0). Each series owns a
random subset of its books; some positions are novellas or omnibuses, some titles
carry release noise, some series exist only in the folder path or inside the title.
"""

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from mamcrawler.positions import format_position

_WORDS = ["shadow", "storm", "iron", "glass", "ember", "winter", "crown", "silent", "river", "broken", "star", "hollow", "ash", "golden", "last", "lost", "night", "dawn", "blood", "stone", "sky", "wolf", "dragon", "empire", "song", "fire", "sea"]
_NOISE = ["", "", "", " (Unabridged)", " [m4b]", " {64kbps}", " (Unabridged) [mp3]"]


@dataclass
class SyntheticLibrary:
    items: list[dict[str, Any]]
    expected_gaps: set[tuple[str, int]] = field(default_factory=set)  # (series name, position)


def _title(rng: random.Random) -> str:
    return " ".join(w.capitalize() for w in rng.sample(_WORDS, rng.randint(2, 4)))


def generate_library(n_items: int, seed: int = 7, library_id: str = "lib-synthetic") -> SyntheticLibrary:
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    expected: set[tuple[str, int]] = set()
    series_no = 0
    while len(items) < n_items:
        series_no += 1
        author = f"{_title(rng).split()[0]} Author{series_no // 3}"
        series = f"{_title(rng)} Saga {series_no}"
        length = rng.randint(3, 14)
        owned = sorted(p for p in range(1, length + 1) if rng.random() < 0.7) or [1]
        owned = owned[: n_items - len(items)]  # the library may end inside a series
        positions: list[str] = [str(p) for p in owned]
        if len(owned) >= 3 and rng.random() < 0.1:  # an omnibus replaces its first three books
            lo = owned[0]
            positions = [f"{lo}-{lo + 2}"] + [str(p) for p in owned if p > lo + 2]
            owned = sorted(set(owned) | set(range(lo, lo + 3)))
        if rng.random() < 0.2 and len(items) + len(positions) < n_items:
            positions.append(f"{owned[0]}.5")  # a novella never makes a gap
        # Only holes below the highest owned book are gaps (the library knows no more).
        expected |= {(series, p) for p in range(1, max(owned) + 1) if p not in owned}
        style = rng.random()
        for seq in positions:
            title = _title(rng)
            meta_series = [{"id": f"s{series_no}", "name": series, "sequence": seq}]
            rel = f"{author}/{series}/Book {seq} - {title}"
            shown_title = title + rng.choice(_NOISE)
            if style < 0.1 and "-" not in seq:  # series only in the folder path
                meta_series = []
            elif style < 0.15 and "-" not in seq:  # series only inside the title
                meta_series = []
                shown_title = f"{title} ({series}, Book {seq})"
                rel = f"{author}/{title}"
            items.append(_item(library_id, author, shown_title, meta_series, rel, rng))
    return SyntheticLibrary(items, expected)


def _item(library_id: str, author: str, title: str, series: list, rel: str, rng: random.Random) -> dict[str, Any]:
    item_id = str(uuid.UUID(int=rng.getrandbits(128)))
    return {
        "id": item_id, "libraryId": library_id, "mediaType": "book", "path": f"/audiobooks/{rel}", "relPath": rel,
        "addedAt": 1_700_000_000_000 + rng.randint(0, 10**9), "updatedAt": 1_700_000_000_000, "isMissing": False,
        "size": rng.randint(10**7, 10**9),
        "media": {
            "duration": float(rng.randint(3600, 90000)), "numAudioFiles": 1,
            "metadata": {
                "title": title, "subtitle": None, "authors": [{"id": author, "name": author}],
                "narrators": ["Some Narrator"], "series": series, "genres": ["Fantasy"],
                "publishedYear": str(rng.randint(1950, 2025)), "publisher": None, "description": "A synthetic book.",
                "isbn": None, "asin": None, "language": "English", "abridged": False,
            },
        },
    }


# --- a world with catalogues and a known answer (the completeness benchmark) ------------

_ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"]


@dataclass
class SyntheticWorld:
    """Owned ABS items, provider catalogues and the missing books a perfect tool lists."""

    items: list[dict[str, Any]]
    series_catalog: list[dict[str, Any]]  # catalog_rows input, keyed by series name (series_id set later)
    author_catalog: list[dict[str, Any]]
    truth: set[tuple[str, str]]  # (author, title) of every book that should be listed
    sequel_traps: set[tuple[str, str]]  # (author, title) of missing books whose owned sibling differs only by number
    today: str = "2026-11-25"


def generate_world(n_authors: int = 60, series_per_author: int = 3, books_per_series: int = 8, seed: int = 11) -> SyntheticWorld:
    """Series with novellas, prequels, omnibuses and unreleased books; owned books under variant
    titles ("(Unabridged)", upper case, "(Series, Book 3)" in the title, another series name);
    translations and box sets in the author catalogues; sequel titles that differ only by number."""
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    series_rows: list[dict[str, Any]] = []
    author_rows: list[dict[str, Any]] = []
    truth: set[tuple[str, str]] = set()
    traps: set[tuple[str, str]] = set()
    for a in range(n_authors):
        author = f"{_title(rng).split()[0]} Writer{a}"
        owned_count = 0
        author_truth: set[tuple[str, str]] = set()
        for s in range(series_per_author):
            series = f"{_title(rng)} Cycle {a}-{s}"
            trap = rng.random() < 0.15
            base = _title(rng)
            roman = rng.random() < 0.5
            entries: list[tuple[float, str, str, bool]] = []  # position, title, release, compilation
            for pos in range(1, books_per_series + 1):
                if trap:  # "Remnant II" / "Remnant III", "Save State Hero 3" / "Save State Hero 5"
                    title = f"{base} {_ROMAN[pos - 1] if roman else pos}"
                else:
                    title = f"{_title(rng)} {a}-{s}-{pos}"
                entries.append((float(pos), title, f"{2000 + pos}-01-01", False))
            if rng.random() < 0.3:
                entries.append((2.5, f"A Tale Between {a}-{s}", "2003-06-01", False))
            if rng.random() < 0.1:
                entries.append((0.0, f"Before It All {a}-{s}", "1999-01-01", False))
            if rng.random() < 0.2:
                entries.append((float(books_per_series + 1), f"Still Coming {a}-{s}", "2031-01-01", False))
            omnibus = rng.random() < 0.2
            owned = {p for p, *_ in entries if p == int(p) and 1 <= p <= books_per_series and rng.random() < 0.6}
            owned_minor = {p for p, *_ in entries if p != int(p) or p == 0 if rng.random() < 0.5}
            if not owned:
                owned = {1.0}
            titles = {p: t for p, t, *_ in entries}
            for p in sorted(owned | owned_minor):
                if p > books_per_series:
                    continue
                items.append(_owned_item(rng, author, series, p, titles[p]))
                owned_count += 1
            if omnibus:
                items.append(_owned_item(rng, author, series, "1-3", f"{series}: Books 1-3", plain=True))
                owned |= {1.0, 2.0, 3.0}
                owned_count += 1
                series_rows.append({"series": series, "sequence": "1-3", "title": f"{series} Omnibus", "release_date": "2010-01-01", "compilation": True})
            for p, title, release, _ in entries:
                series_rows.append({"series": series, "sequence": format_position(p), "title": title, "release_date": release, "compilation": False})
                author_rows.append({"author": author, "title": title, "series": series, "position_raw": format_position(p),
                                    "release_date": release, "compilation": False, "language": "English"})
                if p not in owned and p not in owned_minor and release <= "2026-11-25":
                    truth.add((author, title))
                    if trap and any(o == int(o) and o >= 1 for o in owned):
                        traps.add((author, title))
        for k in range(2):  # standalones, one owned sometimes; a translation and a box set
            title = f"Standalone {a}-{k} {_title(rng)}"
            author_rows.append({"author": author, "title": title, "series": None, "position_raw": None,
                                "release_date": "2015-01-01", "compilation": False, "language": "English"})
            if rng.random() < 0.4:
                items.append(_owned_item(rng, author, None, None, title))
                owned_count += 1
            else:
                author_truth.add((author, title))
        author_rows.append({"author": author, "title": f"Übersetzung {a}", "series": None, "position_raw": None,
                            "release_date": "2016-01-01", "compilation": False, "language": "German"})
        author_rows.append({"author": author, "title": f"The Complete Box Set {a}", "series": None, "position_raw": None,
                            "release_date": "2017-01-01", "compilation": False, "language": "English"})
        if owned_count >= 3:  # followed by default: their standalones count too
            truth |= author_truth
    return SyntheticWorld(items, series_rows, author_rows, truth, traps)


def _owned_item(rng: random.Random, author: str, series: str | None, position: Any, title: str, plain: bool = False) -> dict[str, Any]:
    """An owned book as ABS would hold it, in one of the ways real libraries differ."""
    shown, series_meta, rel = title, [], f"{author}/{title}"
    if series is not None:
        seq = position if isinstance(position, str) else format_position(position)
        series_meta = [{"id": series, "name": series, "sequence": seq}]
        style = 0 if plain else rng.randrange(6)
        if style == 1:
            shown = f"{title} (Unabridged)"
        elif style == 2:
            shown = title.upper()
        elif style == 3 and position == int(position) and position >= 1:
            shown, series_meta = f"{title} ({series}, Book {seq})", []  # series only in the title
        elif style == 4:
            series_meta = [{"id": "x", "name": f"{series} Universe", "sequence": seq}]  # another series name
    return _item("lib-world", author, shown, series_meta, rel, rng)
