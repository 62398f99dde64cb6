"""`python -m bench completeness`: missing books against a world with a known answer.

The world (mamcrawler.synthetic.generate_world) has novellas, prequels, omnibuses,
unreleased books, owned books under variant titles and another series name, translations,
box sets and sequel traps. Catalogues come from frames (as from the warehouse cache: no
network in the timing). Precision and recall are over (author, title) of listed books.
"""

import time
from datetime import date

import polars as pl

from mamcrawler.catalog import AUTHOR_CATALOG_SCHEMA, CATALOG_SCHEMA, catalog_frame, catalog_rows
from mamcrawler.completeness import CompletenessSettings, find_missing
from mamcrawler.gaps import series_memberships
from mamcrawler.library import Skipped, normalise_library, snapshot_rows
from mamcrawler.names import author_key, title_key
from mamcrawler.synthetic import SyntheticWorld, generate_world


def world_frames(world: SyntheticWorld) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    skipped = Skipped()
    books = normalise_library(snapshot_rows(world.items, skipped), skipped)
    ids = dict(series_memberships(books).select("series", "series_id").unique("series").iter_rows())
    by_series: dict[str, list[dict]] = {}
    for row in world.series_catalog:
        by_series.setdefault(row["series"], []).append(row)
    rows = [r for name, members in by_series.items() if name in ids
            for r in catalog_rows(ids[name], "audible", name, [m | {"asin": None, "duration_s": None} for m in members])]
    authors = [{**r, "author_key": author_key(r["author"]), "provider": "hardcover", "provider_author": r["author"],
                "work_id": r["title"], "contribution": None} for r in world.author_catalog]
    return books, catalog_frame(rows, CATALOG_SCHEMA), catalog_frame(authors, AUTHOR_CATALOG_SCHEMA)


def evaluate(world: SyntheticWorld) -> dict:
    books, series, authors = world_frames(world)
    settings = CompletenessSettings(today=date.fromisoformat(world.today))
    started = time.perf_counter()
    result = find_missing(books, series, authors, None, settings)
    seconds = time.perf_counter() - started
    listed = {(author_key(a), title_key(t)) for a, t in result.missing.select("author", "title").iter_rows() if t}
    untitled = int(result.missing["title"].is_null().sum())  # cannot be in the truth: counted as wrong
    truth = {(author_key(a), title_key(t)) for a, t in world.truth}
    traps = {(author_key(a), title_key(t)) for a, t in world.sequel_traps}
    hits = len(listed & truth)
    return {
        "owned_books": books.height,
        "truth": len(truth),
        "listed": len(listed),
        "untitled_rows": untitled,
        "precision": round(hits / (len(listed) + untitled), 4) if listed or untitled else 1.0,
        "recall": round(hits / len(truth), 4) if truth else 1.0,
        "sequel_traps_right": len(traps & listed),
        "sequel_traps_total": len(traps),
        "seconds": round(seconds, 3),
    }


def completeness() -> dict:
    small = evaluate(generate_world(60, 3, 8))
    large = evaluate(generate_world(6_200, 3, 8, seed=5))
    return {
        "benchmark": "completeness",
        "world_60x3x8": small,
        "precision": small["precision"],
        "recall": small["recall"],
        "sequel_traps": f"{small['sequel_traps_right']}/{small['sequel_traps_total']}",
        "seconds_60x3x8": small["seconds"],
        "owned_books_large": large["owned_books"],
        "seconds_large": large["seconds"],
        "large_precision": large["precision"],
        "large_recall": large["recall"],
    }
