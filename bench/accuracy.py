"""`python -m bench accuracy`: missing_books on a corpus that looks like the wild, against a
truth written by hand from what a collector would call missing (bench/corpus/README.md).

`run_pipeline` is the one adapter between the corpus and the pipeline's domain code: it
makes the calls the assets make, in their order. Everything else here is scoring, which
never uses the pipeline's own folding so that a change to it cannot move the yardstick.
"""

from __future__ import annotations

import re
import sys
import time
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from bench.corpus import Corpus, load

WRONG_CAP = 20


@dataclass(frozen=True)
class Listed:
    """What the pipeline said: missing rows and upcoming rows, as plain tuples."""

    missing: list[dict[str, Any]]  # series, author, position, title, reason
    upcoming: list[dict[str, Any]]  # series, author, position, title


def run_pipeline(corpus: Corpus) -> Listed:
    """snapshot -> library_books -> book_metadata -> catalogues -> find_missing, as the assets do."""
    from mamcrawler.catalog import (
        AUTHOR_CATALOG_SCHEMA,
        CATALOG_SCHEMA,
        author_refs,
        catalog_frame,
        catalog_rows,
        series_refs,
    )
    from mamcrawler.completeness import CompletenessSettings, find_missing, followed_authors, override_sets
    from mamcrawler.enrichment import candidate_frame, owned_books
    from mamcrawler.library import Skipped, normalise_library, snapshot_rows
    from resources.audible import AudibleProvider
    from resources.catalog import author_works, series_members
    from resources.hardcover import HardcoverProvider
    from resources.openlibrary import OpenLibraryProvider

    class Audible(AudibleProvider):
        base_url: str = "http://audible.corpus"
        requests_per_second: float = 10_000.0

        def _transport(self):
            return corpus.transport("audible")

    class Hardcover(HardcoverProvider):
        base_url: str = "http://hardcover.corpus"
        token: str = "corpus"
        requests_per_second: float = 10_000.0

        def _transport(self):
            return corpus.transport("hardcover")

    class OpenLibrary(OpenLibraryProvider):
        base_url: str = "http://openlibrary.corpus"
        requests_per_second: float = 10_000.0

        def _transport(self):
            return corpus.transport("openlibrary")

    settings = CompletenessSettings(today=date.fromisoformat(corpus.today))
    now = datetime.fromisoformat(corpus.today).replace(tzinfo=UTC)
    audible, hardcover, openlibrary = Audible(), Hardcover(), OpenLibrary()
    log = lambda _: None  # noqa: E731
    skipped = Skipped()
    books = normalise_library(snapshot_rows(corpus.items, skipped), skipped)  # abs_library_items, library_books
    candidates = candidate_frame(owned_books(books), corpus.candidates(), now)  # book_metadata
    found, _, errors = series_members(audible, hardcover, series_refs(books, candidates), None, None, log)
    series = catalog_frame(
        [row for sid, name, ref, members in found for row in catalog_rows(sid, name, ref, members)], CATALOG_SCHEMA
    )
    followed, _ = followed_authors(books, override_sets(None), settings)
    rows, _, author_errors = author_works(audible, hardcover, openlibrary, author_refs(candidates, followed), None, None, log)
    names = dict(books.select(pl.col("author_keys").list.first().alias("k"), "author").drop_nulls().unique("k").iter_rows())
    authors = catalog_frame([{**r, "author": names.get(r["author_key"])} for r in rows], AUTHOR_CATALOG_SCHEMA)
    if errors or author_errors:
        raise RuntimeError(f"the corpus providers failed: {(errors + author_errors)[:3]}")
    result = find_missing(books, series, authors, None, settings, now, evidence=candidates)  # matches are ownership
    return Listed(
        result.missing.select("series", "author", "position", "title", "reason").to_dicts(),
        [{**r, "position": _number(r["position_label"])} for r in
         result.upcoming.select("series", "author", "position_label", "title").to_dicts()],
    )


# --- scoring ------------------------------------------------------------------------------


def fold(text: str | None) -> str:
    """Lower-case ASCII words; "&" is "and"; apostrophes vanish; a leading article is dropped."""
    text = unicodedata.normalize("NFKD", (text or "").replace("ł", "l").replace("Ł", "L"))
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold().replace("&", " and ")
    text = re.sub(r"['’]", "", text)
    text = " ".join(re.sub(r"[^0-9a-z]+", " ", text).split())
    return re.sub(r"^(the|a|an) ", "", text)


def title_fold(title: str | None) -> str:
    """A title without a trailing bracketed note ("(Mistborn, Book 2)", "[Unabridged]")."""
    text = title or ""
    while (stripped := re.sub(r"\s*[\(\[][^()\[\]]*[\)\]]\s*$", "", text)) != text:
        text = stripped
    return fold(text)


def _number(raw: Any) -> float | None:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


@dataclass
class Truth:
    """truth.yaml, indexed: series worlds by folded name, the rows a collector wants."""

    worlds: dict[str, dict[str, Any]]
    missing: dict[tuple[str, float], str]  # (world, position) -> title
    upcoming: dict[tuple[str, float], str]
    author_gaps: dict[tuple[str, str], str]  # (author, folded title) -> title
    owned: set[tuple[str, float]]
    owned_titles: set[str]
    same: dict[tuple[str, float], tuple[str, float]]  # a position that is another world's book

    def canon(self, world: str, position: float) -> tuple[str, float]:
        return self.same.get((world, position), (world, position))

    @classmethod
    def of(cls, corpus: Corpus) -> Truth:
        worlds, missing, upcoming, same = {}, {}, {}, {}
        for wid, world in (corpus.truth.get("series") or {}).items():
            worlds[wid] = {"names": {fold(n) for n in world["names"]}, "authors": {fold(a) for a in world["authors"]}}
            for pos, other in (world.get("same") or {}).items():
                w2, p2 = other.split("#")
                same[(wid, float(pos))] = (w2, float(p2))
            for pos, title in (world.get("missing") or {}).items():
                missing[(wid, float(pos))] = title
            for pos, title in (world.get("upcoming") or {}).items():
                upcoming[(wid, float(pos))] = title
        gaps = {}
        for author, entry in (corpus.truth.get("authors") or {}).items():
            for title in entry.get("missing") or []:
                gaps[(author, title_fold(title))] = title
        owned, owned_titles = set(), set()
        for works in corpus.owns().values():
            for work in works:
                if "#" in work:
                    wid, pos = work.split("#")
                    lo, _, hi = pos.partition("-")
                    if hi:
                        owned.update(same.get((wid, float(p)), (wid, float(p))) for p in range(int(lo), int(hi) + 1))
                    else:
                        owned.add(same.get((wid, float(pos)), (wid, float(pos))))
                else:
                    owned_titles.add(title_fold(work.split(":", 1)[-1]))
        for spec in corpus.specs:
            owned_titles.add(title_fold(spec["title"]))
        return cls(worlds, missing, upcoming, gaps, owned, owned_titles, same)

    def world_of(self, series: str | None, author: str | None) -> str | None:
        """The series world a listed row names: by series name, and by author among namesakes."""
        named = [w for w, world in self.worlds.items() if fold(series) in world["names"]]
        if len(named) > 1:
            named = [w for w in named if fold(author) in self.worlds[w]["authors"]] or named[:0]
        return named[0] if len(named) == 1 else None

    def author_names(self, corpus: Corpus) -> dict[str, set[str]]:
        return {a: {fold(a), *(fold(x) for x in e.get("aliases") or [])}
                for a, e in (corpus.truth.get("authors") or {}).items()}


def score(corpus: Corpus, listed: Listed) -> dict[str, Any]:
    """Precision/recall of the listed rows against the truth; wrong rows with their reason."""
    truth = Truth.of(corpus)
    aliases = truth.author_names(corpus)
    series_titles = {title_fold(t): key for key, t in truth.missing.items()}
    hit: set[Any] = set()
    wrong: list[dict[str, Any]] = []
    right_author_rows = author_rows = 0
    for row in listed.missing:
        position = row["position"]
        key: Any = None
        why = "not missing"
        if row["reason"] == "author_gap":
            author_rows += 1
            author = next((a for a, names in aliases.items() if fold(row["author"]) in names), None)
            tkey = title_fold(row["title"])
            if author and (author, tkey) in truth.author_gaps:
                key = ("author", author, tkey)
            elif tkey in series_titles:  # a series book listed through its author: still the right book
                key = ("series", *series_titles[tkey])
            if key is None and tkey in truth.owned_titles:
                why = "owned"
        else:
            world = truth.world_of(row["series"], row["author"])
            if world is None:
                why = "unknown series"
            elif position is not None and truth.canon(world, float(position)) in truth.missing:
                key = ("series", *truth.canon(world, float(position)))
            elif (position is not None and truth.canon(world, float(position)) in truth.owned) or title_fold(row["title"]) in truth.owned_titles:
                why = "owned"
        if key is not None and key in hit:
            key, why = None, "duplicate"
        if key is None:
            wrong.append({"why": why, **{k: row[k] for k in ("series", "author", "position", "title", "reason")}})
            continue
        hit.add(key)
        right_author_rows += row["reason"] == "author_gap"
    total_truth = len(truth.missing) + len(truth.author_gaps)
    listed_n = len(listed.missing)
    author_hits = sum(1 for k in hit if k[0] == "author")
    up_hit, up_wrong = set(), 0
    for row in listed.upcoming:
        world = truth.world_of(row["series"], row["author"])
        key = truth.canon(world, row["position"]) if world and row["position"] is not None else (world, None)
        if world is not None and row["position"] is not None and key in truth.upcoming and key not in up_hit:
            up_hit.add(key)
        else:
            up_wrong += 1
    missed = [{"series": w, "position": p, "title": t} for (w, p), t in truth.missing.items() if ("series", w, p) not in hit]
    missed += [{"author": a, "title": t} for (a, k), t in truth.author_gaps.items() if ("author", a, k) not in hit]
    return {
        "missing_listed": listed_n,
        "missing_truth": total_truth,
        "missing_precision": _ratio(listed_n - len(wrong), listed_n),
        "missing_recall": _ratio(len(hit), total_truth),
        "owned_listed_as_missing": sum(1 for w in wrong if w["why"] == "owned"),
        "wrong_by_reason": {r: sum(1 for w in wrong if w["why"] == r) for r in sorted({w["why"] for w in wrong})},
        "upcoming_listed": len(listed.upcoming),
        "upcoming_truth": len(truth.upcoming),
        "upcoming_precision": _ratio(len(listed.upcoming) - up_wrong, len(listed.upcoming)),
        "upcoming_recall": _ratio(len(up_hit), len(truth.upcoming)),
        "author_gaps_listed": author_rows,
        "author_gaps_truth": len(truth.author_gaps),
        "author_gap_precision": _ratio(right_author_rows, author_rows),
        "author_gap_recall": _ratio(author_hits, len(truth.author_gaps)),
        "wrong": wrong,
        "missed": missed,
    }


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 1.0


def truth_as_listed(corpus: Corpus) -> Listed:
    """The truth itself in the listed shape: what a perfect pipeline would answer."""
    truth = corpus.truth
    missing = [{"series": w["names"][0], "author": w["authors"][0], "position": float(p), "title": t,
                "reason": "series_gap"} for w in truth["series"].values() for p, t in (w.get("missing") or {}).items()]
    missing += [{"series": None, "author": a, "position": None, "title": t, "reason": "author_gap"}
                for a, e in (truth.get("authors") or {}).items() for t in e.get("missing") or []]
    upcoming = [{"series": w["names"][0], "author": w["authors"][0], "position": float(p), "title": t}
                for w in truth["series"].values() for p, t in (w.get("upcoming") or {}).items()]
    return Listed(missing, upcoming)


def accuracy() -> dict[str, Any]:
    corpus = load()
    started = time.perf_counter()
    listed = run_pipeline(corpus)
    seconds = time.perf_counter() - started
    figures = score(corpus, listed)
    for row in figures["wrong"]:
        print(f"wrong ({row['why']}): {row}", file=sys.stderr)
    for row in figures["missed"]:
        print(f"missed: {row}", file=sys.stderr)
    figures["wrong"], figures["missed"] = figures["wrong"][:WRONG_CAP], figures["missed"][:WRONG_CAP]
    per_world: dict[str, int] = defaultdict(int)
    for spec in corpus.specs:
        for work in spec.get("owns") or []:
            per_world[work.split("#")[0].split(":")[0]] += 1
    return {"benchmark": "accuracy", "items": len(corpus.items), "worlds": len(per_world), **figures,
            "seconds": round(seconds, 3)}
