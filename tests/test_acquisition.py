"""The download lifecycle as plain functions: what to send, backoff, stalls, progress."""

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from mamcrawler import acquisition as lc
from mamcrawler.gaps import MISSING_SCHEMA
from mamcrawler.library import Skipped, normalise_library, snapshot_rows
from mamcrawler.warehouse import Warehouse, WarehouseError
from mamcrawler.writeback import plan_import_metadata

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def missing(*rows: dict) -> pl.DataFrame:
    base = {"series_id": "s|a", "series": "S", "author": "A", "line": "main", "reason": "series_gap", "status": "identified",
            "first_seen_at": NOW, "updated_at": NOW}
    return pl.DataFrame([{**base, **r} for r in rows], schema=MISSING_SCHEMA)


def chosen(*ids: str) -> pl.DataFrame:
    return pl.DataFrame({"missing_id": list(ids), "indexer": ["mam"] * len(ids), "release_id": [f"r{i}" for i in ids],
                         "title": [f"T{i}" for i in ids], "score": [90.0] * len(ids)})


def request(mid: str, status: str, attempt: int = 1, info_hash: str = "h") -> dict:
    return lc.request_row({"missing_id": mid, "author": "A", "series": "S", "position_label": "1", "title": "T"},
                          {"indexer": "mam", "release_id": f"r{mid}", "title": "T"}, attempt=attempt, status=status,
                          info_hash=info_hash + mid, now=NOW)


def test_plan_sends_in_priority_order_within_both_limits():
    books = missing(*({"missing_id": f"m{i}", "priority": 10 - i, "position": float(i)} for i in range(6)))
    plan = lc.plan_sends(chosen(*(f"m{i}" for i in range(6))), books, None, {}, lc.SendLimits(max_new_per_run=2, max_active=10),
                         lc.RetryPolicy(), NOW)
    assert [p["missing_id"] for p in plan.eligible[: plan.slots]] == ["m5", "m4"]
    plan.hold_rest(taken=2)
    assert plan.held == {"per-run limit reached": 4}


def test_plan_sends_counts_active_downloads_against_max_active():
    books = missing(*({"missing_id": f"m{i}", "priority": i + 1, "position": float(i)} for i in range(4)))
    active = pl.DataFrame([request("m0", "downloading"), request("m1", "sent")], schema=lc.REQUEST_SCHEMA)
    books = books.with_columns(pl.when(pl.col("missing_id").is_in(["m0", "m1"])).then(pl.lit("queued")).otherwise("status").alias("status"))
    plan = lc.plan_sends(chosen("m0", "m1", "m2", "m3"), books, active, {}, lc.SendLimits(max_new_per_run=5, max_active=3),
                         lc.RetryPolicy(), NOW)
    assert [p["missing_id"] for p in plan.eligible] == ["m2", "m3"] and plan.slots == 1
    plan.hold_rest(taken=1)
    assert plan.held == {"book is queued": 2, "active limit reached": 1}


def test_plan_sends_respects_backoff_and_the_attempt_limit():
    books = missing({"missing_id": "a", "priority": 1, "position": 1.0}, {"missing_id": "b", "priority": 2, "position": 2.0},
                    {"missing_id": "c", "priority": 3, "position": 3.0})
    failures = {"a": (1, NOW + timedelta(hours=1)), "b": (3, NOW - timedelta(days=1)), "c": (1, NOW - timedelta(minutes=1))}
    plan = lc.plan_sends(chosen("a", "b", "c"), books, None, failures, lc.SendLimits(), lc.RetryPolicy(max_attempts=3), NOW)
    assert [p["missing_id"] for p in plan.eligible] == ["c"]
    assert plan.held == {"waiting for retry (backoff)": 1, "attempts used up": 1}


def test_record_failure_counts_and_doubles_the_backoff():
    policy = lc.RetryPolicy(backoff_s=3600)
    first = lc.record_failure(None, task="download", item="m1", book="B", reason="stalled", error="x", now=NOW, policy=policy)
    assert first["count"].to_list() == [1] and first["next_attempt_at"][0] == NOW + timedelta(hours=1)
    later = NOW + timedelta(hours=5)
    second = lc.record_failure(first, task="download", item="m1", book="B", reason="stalled", error="y", now=later, policy=policy)
    assert second["count"].to_list() == [2]
    assert second["first_attempt_at"][0] == NOW and second["last_attempt_at"][0] == later
    assert second["next_attempt_at"][0] == later + timedelta(hours=2)
    assert lc.book_failures(second) == {"m1": (2, later + timedelta(hours=2))}


def test_failed_releases_are_remembered_per_book():
    requests = pl.DataFrame([request("m1", "failed"), request("m1", "sent", attempt=2), request("m2", "failed")], schema=lc.REQUEST_SCHEMA)
    assert lc.failed_releases(requests) == {"m1": {("mam", "rm1")}, "m2": {("mam", "rm2")}}
    assert lc.next_attempt_number(requests, "m1") == 3
    assert lc.next_attempt_number(requests, "new") == 1


def observed(**kw) -> lc.Observed:
    base = {"info_hash": "h", "progress": 0.5, "state": "stalledDL", "added_on": 1_000, "completion_on": None, "last_activity": 2_000}
    return lc.Observed(**{**base, **kw})


def test_stall_is_time_since_data_last_moved():
    assert lc.stalled_reason(observed(), now_ts=2_000 + 3_599, stall_after_s=3_600) is None
    assert lc.stalled_reason(observed(), now_ts=2_000 + 3_601, stall_after_s=3_600) == "no progress for 1.0 h at 50%"
    # Never moved at all: counted from when it was added.
    assert lc.stalled_reason(observed(last_activity=0, progress=0.0), now_ts=1_000 + 7_300, stall_after_s=7_200)
    assert lc.stalled_reason(observed(state="missingFiles"), now_ts=2_001, stall_after_s=3_600) == "qBittorrent reports missingFiles"
    assert lc.stalled_reason(observed(completion_on=1_500), now_ts=99_999, stall_after_s=1) is None


def test_progress_updates_move_requests_forward_only_when_something_changed():
    requests = pl.DataFrame([request("a", "sent"), request("b", "sent"), request("c", "downloading"), request("d", "failed")],
                            schema=lc.REQUEST_SCHEMA)
    seen = {
        "ha": observed(info_hash="ha", progress=0.25),
        "hb": observed(info_hash="hb", progress=0.0),
        "hc": observed(info_hash="hc", progress=1.0, completion_on=1_795_000_000),
        "hd": observed(info_hash="hd", progress=1.0, completion_on=1_795_000_000),
    }
    updates = {r["missing_id"]: r for r in lc.progress_updates(requests, seen, NOW).iter_rows(named=True)}
    assert set(updates) == {"a", "c"}
    assert updates["a"]["status"] == "downloading" and updates["a"]["progress"] == 0.25
    assert updates["c"]["status"] == "completed" and updates["c"]["completed_at"].timestamp() == 1_795_000_000


def test_tags_tie_a_torrent_to_its_book():
    assert lc.missing_id_of(["mamcrawler", lc.book_tag("457eaab6f2528cfa")]) == "457eaab6f2528cfa"
    assert lc.missing_id_of(["other"]) is None


def test_wanted_books_carry_owned_and_missing_positions_and_narrators(abs_items):
    skipped = Skipped()
    books = normalise_library(snapshot_rows(abs_items, skipped), skipped)
    rows = missing({"missing_id": "x", "series_id": "stormlight archive|brandon sanderson", "series": "The Stormlight Archive",
                    "author": "Brandon Sanderson", "position": 3.0, "position_label": "3", "title": "Oathbringer", "priority": 1,
                    "owned_positions": "1, 2, 4"},
                   {"missing_id": "y", "series_id": "stormlight archive|brandon sanderson", "series": "The Stormlight Archive",
                    "author": "Brandon Sanderson", "position": 5.0, "position_label": "5", "priority": 2, "owned_positions": "1, 2, 4"})
    catalog = pl.DataFrame({"series_id": ["stormlight archive|brandon sanderson"], "sort_key": [3.0], "duration_s": [200_000.0]})
    first, second = lc.wanted_books(rows, books, catalog)
    assert first.owned_positions == frozenset({1.0, 2.0, 4.0}) and first.missing_positions == frozenset({3.0, 5.0})
    assert first.expected_duration_s == 200_000.0 and second.expected_duration_s is None
    assert "Michael Kramer" in first.owned_narrators
    assert lc.search_text(first) == ("Oathbringer", "Brandon Sanderson")
    assert lc.search_text(second) == ("The Stormlight Archive", "Brandon Sanderson")


def test_import_metadata_merges_series_and_fills_only_what_is_empty():
    wanted = {"title": "Oathbringer", "author": "Brandon Sanderson", "series": "The Stormlight Archive", "position_label": "3",
              "asin": "B0FAKE0004"}
    body = plan_import_metadata(wanted, {"title": "Book 3 - Oathbringer", "authors": [], "series": [{"name": "Other", "sequence": "1"}]})
    assert body == {
        "title": "Oathbringer",
        "authors": [{"name": "Brandon Sanderson"}],
        "series": [{"name": "Other", "sequence": "1"}, {"name": "The Stormlight Archive", "sequence": "3"}],
        "asin": "B0FAKE0004",
    }
    already = {"title": "Oathbringer", "authors": [{"name": "Brandon Sanderson"}], "asin": "B0X",
               "series": [{"name": "The Stormlight Archive", "sequence": "3"}]}
    assert plan_import_metadata(wanted, already) == {}


def test_apply_changes_several_tables_in_one_transaction(tmp_path):
    store = Warehouse(tmp_path / "w.duckdb")
    store.write_table("missing_books", missing({"missing_id": "m1", "priority": 1, "position": 1.0}))
    row = pl.DataFrame([request("m1", "sent")], schema=lc.REQUEST_SCHEMA)
    status = pl.DataFrame({"missing_id": ["m1"], "status": ["queued"], "updated_at": [NOW]})
    store.apply([("download_requests", row, ("missing_id", "attempt"))], statuses=("missing_books", status))
    assert store.read_table("missing_books")["status"].to_list() == ["queued"]
    assert store.read_table("download_requests")["status"].to_list() == ["sent"]
    # A failing statement rolls every change back.
    bad = pl.DataFrame({"missing_id": ["m1"], "status": ["identified"], "updated_at": [NOW], "nope": [1]})
    with pytest.raises(WarehouseError):
        store.apply([("download_requests", row.with_columns(status=pl.lit("failed")), ("missing_id", "attempt"))],
                    statuses=("missing_books", bad))
    assert store.read_table("download_requests")["status"].to_list() == ["sent"]
    assert store.read_table("missing_books")["status"].to_list() == ["queued"]


def candidates(*rows: dict) -> pl.DataFrame:
    base = {k: None for k in lc.CANDIDATES_SCHEMA}
    return pl.DataFrame([{**base, "indexer": "mam", "accepted": True, "chosen": False, "score": 80.0, **r} for r in rows],
                        schema=lc.CANDIDATES_SCHEMA)


def test_next_candidate_skips_failed_releases_and_requested_torrents():
    table = candidates(
        {"missing_id": "m1", "release_id": "a", "rank": 1, "chosen": True, "choice": "best of 3"},
        {"missing_id": "m1", "release_id": "b", "rank": 2, "info_hash": "hash-b"},
        {"missing_id": "m1", "release_id": "c", "rank": 3},
        {"missing_id": "m2", "release_id": "x", "rank": 1, "accepted": False},
    )
    assert lc.next_candidates(table, None)[["missing_id", "release_id", "choice"]].rows() == [("m1", "a", "best of 3")]
    failed_a = {**request("m1", "failed"), "release_id": "a"}
    requests = pl.DataFrame([failed_a, {**request("m9", "imported"), "info_hash": "hash-b"}], schema=lc.REQUEST_SCHEMA)
    # "a" failed for m1; "b" is a torrent already requested (for another book): "c" is next.
    best = lc.next_candidates(table, requests).row(0, named=True)
    assert best["release_id"] == "c" and best["choice"].startswith("next acceptable release after a failed one")
    assert lc.requested_hashes(requests) == {"hm1", "hash-b"}


def test_status_repairs_put_each_book_where_its_requests_say():
    books = missing(*({"missing_id": m, "priority": 1, "position": float(i), "status": s}
                      for i, (m, s) in enumerate([("a", "identified"), ("b", "queued"), ("c", "downloading"), ("d", "ignored"),
                                                  ("e", "queued")])))
    requests = pl.DataFrame([request("a", "sent"), request("c", "completed"), request("d", "downloading"),
                             request("e", "failed")], schema=lc.REQUEST_SCHEMA)
    repairs = dict(lc.status_repairs(books, requests, NOW).select("missing_id", "status").iter_rows())
    # a: reverted by a rebuild -> queued again; b and e: nothing in qBittorrent -> identified;
    # c: already right; d: the user ignored it, left alone.
    assert repairs == {"a": "queued", "b": "identified", "e": "identified"}


def test_backoff_is_capped_and_can_follow_the_book_total():
    policy = lc.RetryPolicy(backoff_s=60)
    assert policy.next_attempt(500, NOW) == NOW + timedelta(seconds=60 * 2**10)
    row = lc.record_failure(None, task="import", item="m1", book="B", reason="x", error="e", now=NOW, policy=policy, attempts=3)
    assert row["next_attempt_at"][0] == NOW + timedelta(minutes=4)


def test_a_download_waiting_in_the_queue_or_paused_is_not_stalled():
    for state in ("queuedDL", "pausedDL", "checkingResumeData"):
        assert lc.stalled_reason(observed(state=state, last_activity=0), now_ts=10**9, stall_after_s=1) is None


def test_ledger_counts_a_failed_release_against_the_book_until_it_is_failed(tmp_path):
    store = Warehouse(tmp_path / "w.duckdb")
    store.write_table("missing_books", missing({"missing_id": "m1", "priority": 1, "position": 1.0, "status": "queued"}))
    ledger = lc.Ledger(store, lc.RetryPolicy(max_attempts=2, backoff_s=60), NOW)
    ledger.release_failed(request("m1", "sent"), "download", "stalled", "no progress for 12 h")
    assert store.read_table("missing_books")["status"].to_list() == ["identified"]
    ledger.release_failed(request("m1", "sent", attempt=2), "import", "not_audio", "no audio file")
    assert store.read_table("missing_books")["status"].to_list() == ["failed"]
    failures = store.read_table("failed_attempts").sort("task")
    assert failures.select("task", "reason", "count").rows() == [("download", "stalled", 1), ("import", "not_audio", 1)]
    # The second failure of the book waits twice as long, whatever the task.
    assert failures["next_attempt_at"].to_list() == [NOW + timedelta(seconds=60), NOW + timedelta(seconds=120)]
    assert store.read_table("download_requests")["status"].to_list() == ["failed", "failed"]
    ledger.service_failed("send", "qbittorrent", "qBittorrent", "qbittorrent_unavailable", "refused")
    assert lc.book_failures(store.read_table("failed_attempts"))["m1"][0] == 2  # a service outage is not the book's


def test_requests_of_books_no_longer_wanted_are_found():
    books = missing({"missing_id": "kept", "priority": 1, "position": 1.0, "status": "queued"},
                    {"missing_id": "ignored", "priority": 1, "position": 2.0, "status": "ignored"})
    requests = pl.DataFrame([request("kept", "sent"), request("ignored", "downloading"), request("owned", "completed"),
                             request("old", "imported")], schema=lc.REQUEST_SCHEMA)
    item = {"id": "li", "media": {"metadata": {"title": "T", "authors": [{"name": "A"}]}}}
    library = normalise_library(snapshot_rows([item], Skipped()), Skipped())
    assert sorted(lc.unwanted_requests(books, requests, library)["missing_id"]) == ["ignored", "owned"]


def test_absence_from_missing_books_cancels_nothing():
    """An empty missing_books (ABS or a catalogue answered empty) is no evidence the book is owned."""
    requests = pl.DataFrame([request("gone", "sent"), request("gone2", "downloading")], schema=lc.REQUEST_SCHEMA)
    nothing_missing = missing().clear()
    assert lc.unwanted_requests(nothing_missing, requests, None).is_empty()
    other = {"id": "li", "media": {"metadata": {"title": "Another Book", "authors": [{"name": "A"}]}}}
    library = normalise_library(snapshot_rows([other], Skipped()), Skipped())
    assert lc.unwanted_requests(nothing_missing, requests, library).is_empty()


def test_download_path_map_only_rewrites_whole_folders():
    from resources.settings import AcquisitionOptions

    options = AcquisitionOptions(download_path_map="/downloads=/mnt/qbit")
    assert options.local_path("/downloads/Book") == "/mnt/qbit/Book"
    assert options.local_path("/downloads") == "/mnt/qbit"
    assert options.local_path("/downloads2/Book") == "/downloads2/Book"
