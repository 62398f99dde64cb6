"""A synthetic ABS library with a known answer, for benchmarks and scale tests.

Items have the shape of `POST /api/items/batch/get` (ABS 2.36.0). Each series owns a
random subset of its books; some positions are novellas or omnibuses, some titles
carry release noise, some series exist only in the folder path or inside the title.
"""

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

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
