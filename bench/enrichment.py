"""`python -m bench enrichment`: provider throughput against the simulator, and METADATA_NEW at scale.

1. Throughput: a provider limited to 10 requests/second answering after 200 ms. The paced
   client (token bucket at the limit, several requests in flight) against the sequential
   baseline (one request at a time), with the 429s each provoked.
2. METADATA_NEW: a 50,000-item library where 100 books were never enriched; the
   `book_metadata` asset over all buckets with `only_new`, through Dagster, against the
   simulator: how many requests it sent and how long it took.
"""

import os
import random
import tempfile
import time
from pathlib import Path

from bench.simulator import SimulatedProvider, provider_simulator
from mamcrawler.candidates import BookQuery

LATENCY_S = 0.2
LIMIT = 10.0


def _rate(provider: SimulatedProvider, n: int) -> tuple[float, int, int]:
    queries = [BookQuery(item_id=f"i{i}", title=f"Book {i}") for i in range(n)]
    started = time.perf_counter()
    found, stats, errors = provider.enrich(queries)
    seconds = time.perf_counter() - started
    assert len(found) == n and not errors, errors[:3]
    return n / seconds, stats.rate_limited, stats.requests


def throughput(n_paced: int = 150, n_sequential: int = 30) -> dict:
    with provider_simulator(LATENCY_S, LIMIT) as (url, sim):
        paced = SimulatedProvider(base_url=url, server_name="paced", requests_per_second=LIMIT, burst=1, concurrency=4)
        paced_rps, paced_429, _ = _rate(paced, n_paced)
        sequential = SimulatedProvider(base_url=url, server_name="sequential", requests_per_second=1000, concurrency=1)
        time.sleep(1.2)  # let the server's bucket refill between the two runs
        sequential_rps, _, _ = _rate(sequential, n_sequential)
        provoked = sim.throttled
    return {
        "limit_rps": LIMIT,
        "latency_s": LATENCY_S,
        "paced_rps": round(paced_rps, 2),
        "paced_fraction_of_limit": round(paced_rps / LIMIT, 3),
        "paced_429s": paced_429,
        "server_429s": provoked,
        "sequential_rps": round(sequential_rps, 2),
        "speedup_vs_sequential": round(paced_rps / sequential_rps, 2),
    }


def synthetic_library(tmp: Path, n_items: int):
    """A warehouse in `tmp` (MAMCRAWLER_WAREHOUSE) holding `library_books` of a synthetic library."""
    os.environ["MAMCRAWLER_WAREHOUSE"] = str(tmp / "bench.duckdb")
    from mamcrawler.library import Skipped, normalise_library, snapshot_rows
    from mamcrawler.synthetic import generate_library
    from mamcrawler.warehouse import Warehouse, default_warehouse_path

    store = Warehouse(default_warehouse_path())
    skipped = Skipped()
    books = normalise_library(snapshot_rows(generate_library(n_items).items, skipped), skipped)
    store.write_table("library_books", books)
    return store, books


def metadata_new(n_items: int = 50_000, n_new: int = 100) -> dict:
    from dagster import DagsterInstance, materialize

    with tempfile.TemporaryDirectory() as tmp:
        store, books = synthetic_library(Path(tmp), n_items)
        from assets.metadata import book_metadata
        from mamcrawler.enrichment import BUCKETS, STATE_SCHEMA, bucket_of
        from mamcrawler.frames import frame_from_rows
        from pipelines.profiles import Profile, build_resources

        ids = books["item_id"].to_list()
        new = set(random.Random(3).sample(ids, n_new))
        done = [{"item_id": i, "bucket": bucket_of(i), "enriched_at": None, "providers": ["simulated"], "pending": [], "candidates": 1,
                 "best_level": "HIGH"} for i in ids if i not in new]
        store.write_table("book_enrichment_state", frame_from_rows(done, STATE_SCHEMA))
        with provider_simulator(LATENCY_S, LIMIT) as (url, sim):
            resources = build_resources(Profile("demo", "benchmark"))
            off = SimulatedProvider(base_url="")
            resources |= {key: off for key in ("audnexus", "hardcover", "google_books", "openlibrary")}
            resources["audible"] = SimulatedProvider(base_url=url, server_name="audible", requests_per_second=LIMIT, burst=1)
            resources["custom_providers"] = type(resources["custom_providers"])(servers=[])
            started = time.perf_counter()
            result = materialize(
                [book_metadata],
                resources=resources,
                instance=DagsterInstance.ephemeral(),
                tags={"dagster/asset_partition_range_start": BUCKETS[0], "dagster/asset_partition_range_end": BUCKETS[-1]},
                run_config={"ops": {"book_metadata": {"config": {"only_new": True}}}},
            )
            seconds = time.perf_counter() - started
            requests = sim.served + sim.throttled + sim.failed
        assert result.success
        enriched = store.query("SELECT count(*) AS n FROM book_enrichment_state")["n"][0]
    return {
        "library_items": n_items,
        "new_items": n_new,
        "requests_sent": requests,
        "seconds": round(seconds, 2),
        "state_rows_after": int(enriched),
    }


def enrichment() -> dict:
    return {"benchmark": "enrichment", "throughput": throughput(), "metadata_new": metadata_new()}
