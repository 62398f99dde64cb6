"""`python -m bench library`: normalisation + gap detection on synthetic libraries."""

import itertools
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path


def _library_once(n_items: int, queue: mp.Queue) -> None:
    from mamcrawler.gaps import find_series_gaps
    from mamcrawler.library import Skipped, normalise_library, snapshot_rows
    from mamcrawler.synthetic import generate_library
    from mamcrawler.warehouse import Warehouse

    lib = generate_library(n_items)
    started = time.perf_counter()
    skipped = Skipped()
    snapshot = snapshot_rows(lib.items, skipped)
    books = normalise_library(snapshot, skipped)
    gaps = find_series_gaps(books)
    seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = Warehouse(Path(tmp) / "bench.duckdb")
        w_started = time.perf_counter()
        for name, frame in (("abs_library_items", snapshot), ("library_books", books), ("missing_books", gaps)):
            warehouse.write_table(name, frame)
        warehouse.read_table("library_books")
        warehouse_seconds = time.perf_counter() - w_started
    found = set(zip(gaps["series"].to_list(), gaps["position"].to_list()))
    queue.put(
        {
            "items": n_items,
            "seconds": round(seconds, 3),
            "warehouse_seconds": round(warehouse_seconds, 3),
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "books": books.height,
            "gaps": gaps.height,
            "gaps_correct": found == lib.expected_gaps,
        }
    )


def library(sizes: list[int]) -> dict:
    ctx = mp.get_context("spawn")  # a fresh process per size, so peak RSS is that size's own
    results = []
    for n in sizes:
        queue = ctx.Queue()
        proc = ctx.Process(target=_library_once, args=(n, queue))
        proc.start()
        results.append(queue.get())
        proc.join()
    growth = [
        {"from_items": a["items"], "to_items": b["items"], "time_ratio": round(b["seconds"] / a["seconds"], 2)}
        for a, b in itertools.pairwise(results)
    ]
    return {"benchmark": "library", "results": results, "growth": growth}
