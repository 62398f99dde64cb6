"""`python -m bench acquisition`: release scoring and send planning at collection scale.

Scoring runs over MAM-shaped rows (the replay's synthetic rows plus the fixture traps),
parsed by the same code the MAM resource uses. Planning runs over 20,000 missing books
with a chosen release each and 2,000 requests already in flight.
"""

import random
import time
from datetime import UTC, datetime

import polars as pl

from mamcrawler.acquisition import REQUEST_SCHEMA, RetryPolicy, SendLimits, plan_sends, request_row
from mamcrawler.gaps import MISSING_SCHEMA
from mamcrawler.mam_rows import release_from_mam_row
from mamcrawler.release_score import ReleasePreferences, WantedBook, choose_release, rank_releases
from resources.replay.mam import synthetic_row


def _scoring(rows: int) -> dict:
    releases = [release_from_mam_row(synthetic_row("The Way of Kings", n)) for n in range(rows)]
    book = WantedBook(missing_id="m", title="The Way of Kings", author="Brandon Sanderson", series="The Stormlight Archive",
                      position=1.0, position_label="1", expected_duration_s=45 * 3600)
    started = time.perf_counter()
    ranked = rank_releases(book, releases, ReleasePreferences())
    choose_release(ranked)
    seconds = time.perf_counter() - started
    return {"releases": rows, "seconds": round(seconds, 3), "releases_per_s": round(rows / seconds)}


def _planning(books: int, active: int) -> dict:
    now = datetime.now(UTC)
    rng = random.Random(7)
    missing = pl.DataFrame(
        [{"missing_id": f"m{i}", "series_id": f"s{i % 3000}", "series": "S", "author": "A", "position": float(i % 12 + 1),
          "line": "main", "reason": "series_gap", "priority": rng.randint(1, 12),
          "status": "queued" if i < active else "identified", "first_seen_at": now, "updated_at": now} for i in range(books)],
        schema=MISSING_SCHEMA,
    )
    chosen = pl.DataFrame({"missing_id": [f"m{i}" for i in range(books)], "indexer": "mam",
                           "release_id": [str(i) for i in range(books)], "title": "T", "score": 90.0})
    requests = pl.DataFrame(
        [request_row({"missing_id": f"m{i}"}, {"indexer": "mam", "release_id": str(i), "title": "T"}, attempt=1,
                     status="downloading", info_hash=f"{i:040x}", now=now) for i in range(active)],
        schema=REQUEST_SCHEMA,
    )
    started = time.perf_counter()
    plan = plan_sends(chosen, missing, requests, {}, SendLimits(max_new_per_run=50, max_active=2_100), RetryPolicy(), now)
    return {"missing_books": books, "in_flight": active, "eligible": len(plan.eligible), "slots": plan.slots,
            "seconds": round(time.perf_counter() - started, 3)}


def acquisition() -> dict:
    return {"scoring_10k": _scoring(10_000), "planning_20k": _planning(20_000, 2_000)}
