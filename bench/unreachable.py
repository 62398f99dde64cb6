"""`python -m bench unreachable [N]`: enrichment of N books (default 5,000) with every provider
unreachable, through Dagster: half of them on a loopback port with nothing listening, the
others on a server that accepts connections and drops them. Target: under 120 s at 5,000.
"""

import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench.enrichment import synthetic_library


@contextlib.contextmanager
def dropping_server() -> Iterator[tuple[str, list[int]]]:
    """A loopback server that accepts every connection and closes it at once; yields its URL
    and a one-item list counting the connections it dropped."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    dropped, stop = [0], threading.Event()

    def loop() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                conn, _ = listener.accept()
                conn.close()
                dropped[0] += 1

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", dropped
    finally:
        stop.set()
        thread.join()
        listener.close()


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def unreachable(n_items: int = 5_000) -> dict:
    from dagster import DagsterInstance, materialize

    with tempfile.TemporaryDirectory() as tmp:
        store, books = synthetic_library(Path(tmp), n_items)
        from assets.metadata import book_metadata
        from mamcrawler.enrichment import BUCKETS
        from pipelines.profiles import Profile, build_resources
        from resources.audible import AudibleProvider
        from resources.audnexus import AudnexusProvider
        from resources.custom_provider import CustomProviders, CustomServerConfig
        from resources.google_books import GoogleBooksProvider
        from resources.hardcover import HardcoverProvider
        from resources.openlibrary import OpenLibraryProvider

        with dropping_server() as (dropping, dropped):
            refused = closed_port_url()
            resources = build_resources(Profile("demo", "benchmark")) | {
                "audible": AudibleProvider(base_url=refused),
                "audnexus": AudnexusProvider(base_url=dropping),
                "hardcover": HardcoverProvider(base_url=dropping, token="bench-token"),
                "google_books": GoogleBooksProvider(base_url=refused),
                "openlibrary": OpenLibraryProvider(base_url=dropping),
                "custom_providers": CustomProviders(servers=[CustomServerConfig(name="custom", url=refused)]),
            }
            started = time.perf_counter()
            result = materialize(
                [book_metadata], resources=resources, instance=DagsterInstance.ephemeral(),
                tags={"dagster/asset_partition_range_start": BUCKETS[0], "dagster/asset_partition_range_end": BUCKETS[-1]},
            )
            seconds = time.perf_counter() - started
        assert result.success
        meta = result.asset_materializations_for_node("book_metadata")[0].metadata
        state = store.query("SELECT count(*) AS n, count(*) FILTER (WHERE len(pending) > 0) AS p, "
                            "count(*) FILTER (WHERE best_level = 'UNMATCHED') AS u FROM book_enrichment_state")
        spent = store.query("SELECT coalesce(sum(used), 0) AS n FROM provider_budget") if store.has_table("provider_budget") else None
    return {
        "benchmark": "unreachable",
        "books": books.height,
        "seconds": round(seconds, 2),
        "target_seconds": 120,
        "providers_unreachable": meta["providers_unreachable"].value.count("- "),
        "books_pending": int(state["p"][0]),
        "books_unmatched": int(state["u"][0]),
        "connections_dropped": dropped[0],
        "budget_requests_spent": 0 if spent is None else int(spent["n"][0]),
    }
