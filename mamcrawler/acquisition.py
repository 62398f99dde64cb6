"""The download lifecycle: which books to search, which to send, what qBittorrent says, what failed.

A missing book moves identified -> queued (its torrent is confirmed in qBittorrent) ->
downloading -> completed (imported into ABS), or back to identified after a stalled or
rejected download, until `max_attempts` failures make it `failed`. Every step that changes
a book and its request changes both in one warehouse transaction, so no book is `queued`
without a request and no active request is without its book.

`download_requests` keeps one row per (missing book, attempt): a failed release stays in
the table and is never chosen again for that book. `failed_attempts` keeps one row per
(task, item) and is never pruned.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from mamcrawler.completeness import OwnedIndex
from mamcrawler.gaps import missing_id, owned_positions, series_memberships
from mamcrawler.names import author_key, display_author
from mamcrawler.release_score import RELEASE_CANDIDATE_SCHEMA, WantedBook
from mamcrawler.warehouse import Warehouse

# `release_candidates`: every scored release of the books searched, the choice and its reason.
CANDIDATES_SCHEMA: dict[str, pl.DataType] = {
    **RELEASE_CANDIDATE_SCHEMA,
    "choice": pl.Utf8,
    "searched_at": pl.Datetime("us", "UTC"),
}

REQUEST_SCHEMA: dict[str, pl.DataType] = {
    "missing_id": pl.Utf8,
    "attempt": pl.Int64,
    "book": pl.Utf8,  # "Author - Series #3 - Title": what a person recognises
    # The wanted book itself, so the import can name and tag it after missing_books moved on.
    "author": pl.Utf8,
    "series": pl.Utf8,
    "position_label": pl.Utf8,
    "title": pl.Utf8,
    "asin": pl.Utf8,
    "expected_duration_s": pl.Float64,
    "indexer": pl.Utf8,
    "release_id": pl.Utf8,
    "release_title": pl.Utf8,
    "info_hash": pl.Utf8,  # null only for a dry run (the .torrent is not fetched)
    "status": pl.Utf8,
    "score": pl.Float64,
    "choice": pl.Utf8,  # why this release
    "tags": pl.Utf8,
    "requested_at": pl.Datetime("us", "UTC"),
    "updated_at": pl.Datetime("us", "UTC"),
    "completed_at": pl.Datetime("us", "UTC"),
    "progress": pl.Float64,
    "adopted": pl.Boolean,  # qBittorrent already had this torrent: never delete its files
    "error": pl.Utf8,
}
# would_send: dry run. sending: written before qBittorrent is asked, so a crash in between is
# found and finished by the next run. sent/downloading: in qBittorrent. completed: the data is
# there. imported: in ABS. failed: stalled, rejected or not importable (see `error`).
# cancelled: the book stopped being wanted (owned after all, or ignored) while it downloaded.
REQUEST_STATUSES = ("would_send", "sending", "sent", "downloading", "completed", "imported", "failed", "cancelled")
ACTIVE = ("sending", "sent", "downloading", "completed")
IN_CLIENT = ("sent", "downloading", "completed")  # confirmed in qBittorrent

FAILED_ATTEMPTS_SCHEMA: dict[str, pl.DataType] = {
    "task": pl.Utf8,  # search / send / download / import
    "item": pl.Utf8,  # a missing_id, or an info-hash
    "book": pl.Utf8,
    "reason": pl.Utf8,  # short and stable: "stalled", "not_audio", "qbittorrent_unavailable"
    "error": pl.Utf8,  # what happened, for a person
    "first_attempt_at": pl.Datetime("us", "UTC"),
    "last_attempt_at": pl.Datetime("us", "UTC"),
    "count": pl.Int64,
    "next_attempt_at": pl.Datetime("us", "UTC"),
}
# `release_searches`: when each book was last searched and what came of it, so books no
# indexer has are not searched first on every run (they have no `release_candidates` rows).
SEARCHES_SCHEMA: dict[str, pl.DataType] = {
    "missing_id": pl.Utf8,
    "searched_at": pl.Datetime("us", "UTC"),
    "releases": pl.Int64,
    "choice": pl.Utf8,
}

# `imported_books`: each download placed into the library and matched in ABS.
IMPORTED_SCHEMA: dict[str, pl.DataType] = {
    "missing_id": pl.Utf8,
    "info_hash": pl.Utf8,
    "book": pl.Utf8,
    "abs_item_id": pl.Utf8,
    "abs_path": pl.Utf8,
    "method": pl.Utf8,  # hardlink / copy
    "files": pl.Int64,
    "bytes": pl.Int64,
    "duration_s": pl.Float64,
    "metadata_written": pl.Utf8,
    "imported_at": pl.Datetime("us", "UTC"),
}

PROJECT_TAG = "mamcrawler"


def book_tag(missing_id: str) -> str:
    """The qBittorrent tag that ties a torrent to its missing book."""
    return f"mc-{missing_id}"


def missing_id_of(tags: Iterable[str]) -> str | None:
    return next((t.removeprefix("mc-") for t in tags if t.startswith("mc-")), None)


def book_label(row: dict[str, Any]) -> str:
    parts = [display_author(row.get("author")) or "?"]
    if row.get("series"):
        parts.append(f"{row['series']} #{row.get('position_label') or '?'}")
    if row.get("title"):
        parts.append(row["title"])
    return " - ".join(parts)


# --- what to search ------------------------------------------------------------------


def wanted_books(missing: pl.DataFrame, books: pl.DataFrame, catalog: pl.DataFrame | None) -> list[WantedBook]:
    """One `WantedBook` per missing row, with what the library says about its series: the
    positions owned and missing (omnibus rule), the owned narrators (narrator preference) and
    the runtime a catalogue lists (bitrate estimate)."""
    members = series_memberships(books) if not books.is_empty() else None
    narrators: dict[str, set[str]] = {}
    if members is not None and "narrators" in books.columns:
        by_item = dict(books.select("item_id", "narrators").iter_rows())
        for series_id, item_id in members.select("series_id", "item_id").iter_rows():
            narrators.setdefault(series_id, set()).update(by_item.get(item_id) or [])
    missing_at: dict[str, set[float]] = {}
    for series_id, position in missing.select("series_id", "position").drop_nulls().iter_rows():
        missing_at.setdefault(series_id, set()).add(position)
    runtime: dict[tuple[str, float], float] = {}
    if catalog is not None and not catalog.is_empty():
        for series_id, key, seconds in catalog.select("series_id", "sort_key", "duration_s").drop_nulls().iter_rows():
            runtime.setdefault((series_id, key), seconds)
    wanted = []
    for row in missing.iter_rows(named=True):
        sid = row.get("series_id")
        owned = frozenset(float(p) for p in (row.get("owned_positions") or "").split(",") if _is_number(p))
        wanted.append(
            WantedBook(
                missing_id=row["missing_id"],
                title=row.get("title"),
                author=row.get("author") or "",
                series=row.get("series"),
                position=row.get("position"),
                position_label=row.get("position_label"),
                line=row.get("line") or "main",
                expected_duration_s=runtime.get((sid, row.get("position"))) if sid else None,
                owned_narrators=tuple(sorted(narrators.get(sid, ()))) if sid else (),
                owned_positions=owned,
                missing_positions=frozenset(missing_at.get(sid, ())) if sid else frozenset(),
            )
        )
    return wanted


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def search_text(book: WantedBook) -> tuple[str, str | None]:
    """(title words, author) to search for; a gap without a known title searches its series."""
    if book.title:
        return book.title, book.author or None
    return book.series or "", book.author or None


# --- backoff and failures --------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff_s: float = 6 * 3600  # doubles with every failure of the same book

    def next_attempt(self, count: int, now: datetime) -> datetime:
        # Capped: a service that stays down for weeks must not push the date out of range.
        return now + timedelta(seconds=self.backoff_s * 2 ** min(max(0, count - 1), 10))


def record_failure(
    failed: pl.DataFrame | None,
    *,
    task: str,
    item: str,
    book: str,
    reason: str,
    error: str,
    now: datetime,
    policy: RetryPolicy,
    attempts: int | None = None,
) -> pl.DataFrame:
    """The `failed_attempts` row for (task, item) after one more failure (to upsert).

    The backoff doubles with `attempts` (a book's failures over every task) when given,
    else with this row's own count."""
    prior = None
    if failed is not None and not failed.is_empty():
        hit = failed.filter((pl.col("task") == task) & (pl.col("item") == item))
        prior = hit.row(0, named=True) if hit.height else None
    count = (prior["count"] if prior else 0) + 1
    return pl.DataFrame(
        [
            {
                "task": task,
                "item": item,
                "book": book,
                "reason": reason,
                "error": error[:500],
                "first_attempt_at": prior["first_attempt_at"] if prior else now,
                "last_attempt_at": now,
                "count": count,
                "next_attempt_at": policy.next_attempt(attempts or count, now),
            }
        ],
        schema=FAILED_ATTEMPTS_SCHEMA,
    )


def book_failures(failed: pl.DataFrame | None) -> dict[str, tuple[int, datetime]]:
    """missing_id -> (failed downloads and imports of the book, when it may be tried again)."""
    if failed is None or failed.is_empty():
        return {}
    per_book = (
        failed.filter(pl.col("task").is_in(["download", "import", "send"]))
        .group_by("item")
        .agg(pl.col("count").sum(), pl.col("next_attempt_at").max())
    )
    return {item: (count, until) for item, count, until in per_book.iter_rows()}


def retry_after(failed: pl.DataFrame | None, task: str, now: datetime) -> set[str]:
    """Items of `task` that failed and wait for their next attempt."""
    if failed is None or failed.is_empty():
        return set()
    return set(failed.filter((pl.col("task") == task) & (pl.col("next_attempt_at") > now))["item"])


def requested_hashes(requests: pl.DataFrame | None) -> set[str]:
    """Every info-hash ever sent or tried (failed ones too): none of them is sent again."""
    if requests is None or requests.is_empty():
        return set()
    return set(requests.filter(pl.col("status") != "would_send")["info_hash"].drop_nulls())


def next_candidates(candidates: pl.DataFrame | None, requests: pl.DataFrame | None) -> pl.DataFrame:
    """Per book, the best accepted release that has not failed for it and whose torrent was
    never requested: the chosen one, or after a failure the next one down the ranking."""
    if candidates is None or candidates.is_empty():
        return pl.DataFrame(schema=CANDIDATES_SCHEMA)
    usable = candidates.filter(pl.col("accepted") & ~pl.col("info_hash").fill_null("").is_in(list(requested_hashes(requests))))
    if requests is not None and not requests.is_empty():
        failed = requests.filter(pl.col("status") == "failed").select("missing_id", "indexer", "release_id")
        usable = usable.join(failed, on=["missing_id", "indexer", "release_id"], how="anti")
    best = usable.sort("missing_id", "rank").unique("missing_id", keep="first", maintain_order=True)
    return best.with_columns(
        choice=pl.when(pl.col("chosen")).then("choice").otherwise(
            pl.format("next acceptable release after a failed one (rank {})", "rank")
        )
    )


def failed_releases(requests: pl.DataFrame | None) -> dict[str, set[tuple[str, str]]]:
    """missing_id -> the (indexer, release_id) pairs that failed for it: never chosen again."""
    if requests is None or requests.is_empty():
        return {}
    out: dict[str, set[tuple[str, str]]] = {}
    for mid, indexer, rid in requests.filter(pl.col("status") == "failed").select("missing_id", "indexer", "release_id").iter_rows():
        out.setdefault(mid, set()).add((indexer, rid))
    return out


# --- what to send ----------------------------------------------------------------------


@dataclass(frozen=True)
class SendLimits:
    max_new_per_run: int = 5
    max_active: int = 10


@dataclass
class SendPlan:
    """The books that may be sent now, best priority first, and why the others wait.

    `eligible` is longer than `slots` on purpose: a release that turns out to be a torrent
    already requested (MAM tells the hash only with the .torrent) gives its slot to the next.
    """

    eligible: list[dict[str, Any]]
    held: dict[str, int]
    slots: int
    limit_reason: str

    def hold_rest(self, taken: int) -> None:
        """Count the eligible books that did not fit in this run's slots."""
        if rest := len(self.eligible) - taken:
            self.held[self.limit_reason] = self.held.get(self.limit_reason, 0) + rest


def plan_sends(
    chosen: pl.DataFrame,
    missing: pl.DataFrame,
    requests: pl.DataFrame | None,
    failures: dict[str, tuple[int, datetime]],
    limits: SendLimits,
    policy: RetryPolicy,
    now: datetime,
) -> SendPlan:
    """`chosen` has one release per missing book. A book may be sent while it is
    `identified`, has no active request, is out of backoff and under the attempt limit; at
    most `max_new_per_run` per run and `max_active` in flight at once."""
    held: dict[str, int] = {}
    active_books: set[str] = set()
    if requests is not None and not requests.is_empty():
        active_books = set(requests.filter(pl.col("status").is_in(list(ACTIVE)))["missing_id"])
    room = max(0, limits.max_active - len(active_books))
    slots = min(limits.max_new_per_run, room)
    status = dict(missing.select("missing_id", "status").iter_rows())
    order = missing.select("missing_id", "priority", "first_seen_at").sort(["priority", "first_seen_at", "missing_id"])
    rank = {mid: i for i, mid in enumerate(order["missing_id"])}
    eligible: list[dict[str, Any]] = []
    for row in sorted(chosen.iter_rows(named=True), key=lambda r: rank.get(r["missing_id"], len(rank))):
        mid = row["missing_id"]
        count, until = failures.get(mid, (0, None))
        if status.get(mid) != "identified":
            why = f"book is {status.get(mid, 'no longer missing')}"
        elif mid in active_books:
            why = "already requested"
        elif count >= policy.max_attempts:
            why = "attempts used up"
        elif until is not None and until > now:
            why = "waiting for retry (backoff)"
        else:
            eligible.append(row)
            continue
        held[why] = held.get(why, 0) + 1
    reason = "active limit reached" if room <= limits.max_new_per_run else "per-run limit reached"
    return SendPlan(eligible, held, slots, reason)


def next_attempt_number(requests: pl.DataFrame | None, missing_id: str) -> int:
    if requests is None or requests.is_empty():
        return 1
    attempts = requests.filter((pl.col("missing_id") == missing_id) & (pl.col("status") != "would_send"))["attempt"]
    return int(attempts.max() or 0) + 1


def request_row(
    book: dict[str, Any],
    release: dict[str, Any],
    *,
    attempt: int,
    status: str,
    info_hash: str | None,
    now: datetime,
    expected_duration_s: float | None = None,
) -> dict[str, Any]:
    return {
        "missing_id": book["missing_id"],
        "attempt": attempt,
        "book": book_label(book),
        **{k: book.get(k) for k in ("author", "series", "position_label", "title", "asin")},
        "expected_duration_s": expected_duration_s,
        "indexer": release["indexer"],
        "release_id": release["release_id"],
        "release_title": release["title"],
        "info_hash": info_hash,
        "status": status,
        "score": release.get("score"),
        "choice": release.get("choice"),
        "tags": ",".join((PROJECT_TAG, book_tag(book["missing_id"]))),
        "requested_at": now,
        "updated_at": now,
        "completed_at": None,
        "progress": 0.0,
        "adopted": False,
        "error": None,
    }


def status_repairs(missing: pl.DataFrame, requests: pl.DataFrame | None, now: datetime) -> pl.DataFrame:
    """(missing_id, status, updated_at) for books whose status disagrees with their requests.

    A completeness rebuild that read `missing_books` before a send and wrote it after can
    put a queued book back to `identified`; this puts each book where its requests say:
    `queued` or `downloading` while a request is in qBittorrent, `identified` when none is.
    Ignored, completed and failed books are left alone.
    """
    active = pl.DataFrame(schema={"missing_id": pl.Utf8, "want": pl.Utf8})
    if requests is not None and not requests.is_empty():
        active = (
            requests.filter(pl.col("status").is_in(list(IN_CLIENT)))
            .select("missing_id", want=pl.when(pl.col("status") == "sent").then(pl.lit("queued")).otherwise(pl.lit("downloading")))
            .unique("missing_id", keep="last")
        )
    books = missing.select("missing_id", "status").join(active, on="missing_id", how="left")
    fix = books.filter(
        (pl.col("want").is_not_null() & (pl.col("status") != pl.col("want")) & pl.col("status").is_in(["identified", "queued", "downloading"]))
        | (pl.col("want").is_null() & pl.col("status").is_in(["queued", "downloading"]))
    )
    return fix.select("missing_id", status=pl.col("want").fill_null("identified"), updated_at=pl.lit(now, dtype=pl.Datetime("us", "UTC")))


# --- writing the lifecycle ---------------------------------------------------------------

REQUEST_KEY = ("missing_id", "attempt")
FAILURE_KEY = ("task", "item")


def requests_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=REQUEST_SCHEMA)


def book_statuses(rows: list[tuple[str, str]], now: datetime) -> tuple[str, pl.DataFrame]:
    return "missing_books", pl.DataFrame(
        {"missing_id": [m for m, _ in rows], "status": [s for _, s in rows], "updated_at": [now] * len(rows)},
        schema={"missing_id": pl.Utf8, "status": pl.Utf8, "updated_at": pl.Datetime("us", "UTC")},
    )


class Ledger:
    """Writes each lifecycle step as one transaction: request, failure and book status together."""

    def __init__(self, store: Warehouse, policy: RetryPolicy, now: datetime) -> None:
        self.store, self.policy, self.now = store, policy, now
        self.errors: list[str] = []

    @property
    def failed(self) -> pl.DataFrame | None:
        return self.store.read_optional("failed_attempts")

    def save(self, request: dict, book_status: str | None = None) -> None:
        self.store.apply(
            [("download_requests", requests_frame([{**request, "updated_at": self.now}]), REQUEST_KEY)],
            statuses=book_statuses([(request["missing_id"], book_status)], self.now) if book_status else None,
        )

    def release_failed(self, request: dict, task: str, reason: str, error: str) -> None:
        """This release is no good for this book: the request is `failed`, the failure counts
        against the book, and the book waits for its next release or is `failed` for good."""
        failed = self.failed
        used = book_failures(failed).get(request["missing_id"], (0, None))[0] + 1
        failure = record_failure(
            failed, task=task, item=request["missing_id"], book=request["book"], reason=reason, error=error,
            now=self.now, policy=self.policy, attempts=used,
        )
        self.store.apply(
            [
                ("download_requests", requests_frame([{**request, "status": "failed", "updated_at": self.now, "error": error}]), REQUEST_KEY),
                ("failed_attempts", failure, FAILURE_KEY),
            ],
            statuses=book_statuses([(request["missing_id"], "failed" if used >= self.policy.max_attempts else "identified")], self.now),
        )
        self.errors.append(f"{request['book']}: {error}")

    def service_failed(self, task: str, item: str, label: str, reason: str, error: str, policy: RetryPolicy | None = None) -> None:
        """A service (qBittorrent, an indexer, ABS, the disk) failed: nothing is held against a book."""
        failure = record_failure(
            self.failed, task=task, item=item, book=label, reason=reason, error=error, now=self.now, policy=policy or self.policy
        )
        self.store.apply([("failed_attempts", failure, FAILURE_KEY)])
        self.errors.append(f"{label}: {error}")


def unwanted_requests(missing: pl.DataFrame, requests: pl.DataFrame | None, books: pl.DataFrame | None) -> pl.DataFrame:
    """Active requests whose book is no longer wanted: ignored by the user, or in the library
    now (`books`: its series position, ASIN or title by its author). They are cancelled, not
    failed. A book merely gone from `missing_books` keeps its download: an answer that came
    back short (a library or catalogue outage) is no evidence the book is owned."""
    if requests is None or requests.is_empty():
        return pl.DataFrame(schema=REQUEST_SCHEMA)
    active = requests.filter(pl.col("status").is_in(list(ACTIVE)))
    ignored = set(missing.filter(pl.col("status") == "ignored")["missing_id"].to_list())
    gone = active.join(missing.select("missing_id"), on="missing_id", how="anti")
    return active.filter(pl.col("missing_id").is_in(ignored | owned_requests(gone, books)))


def owned_requests(requests: pl.DataFrame, books: pl.DataFrame | None) -> set[str]:
    """missing_ids of `requests` whose book the library positively has."""
    if books is None or books.is_empty() or requests.is_empty():
        return set()
    positions = {missing_id(s, p) for s, p in owned_positions(books).iter_rows()}
    index = OwnedIndex(books)
    return {
        r["missing_id"]
        for r in requests.iter_rows(named=True)
        if r["missing_id"] in positions
        or index.owns(r["title"], {k for k in [author_key(r["author"] or "")] if k}, r["asin"])
    }


# --- what qBittorrent says --------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """One torrent as qBittorrent reported it (the fields the lifecycle needs)."""

    info_hash: str
    progress: float
    state: str
    added_on: int
    completion_on: int | None
    last_activity: int


ERROR_STATES = {"error", "missingFiles"}
# Waiting in qBittorrent's own queue or paused by the user is not a stall.
WAITING_STATES = {"queuedDL", "pausedDL", "stoppedDL", "checkingDL", "checkingResumeData", "moving", "allocating"}


def stalled_reason(torrent: Observed, now_ts: float, stall_after_s: float) -> str | None:
    """Why a download counts as failed, or None while it is fine.

    qBittorrent's `last_activity` is the last time data moved; a torrent that never moved
    counts from when it was added.
    """
    if torrent.completion_on is not None:
        return None
    if torrent.state in ERROR_STATES:
        return f"qBittorrent reports {torrent.state}"
    if torrent.state in WAITING_STATES:
        return None
    quiet_since = max(torrent.last_activity or 0, torrent.added_on or 0)
    if quiet_since and now_ts - quiet_since > stall_after_s:
        return f"no progress for {(now_ts - quiet_since) / 3600:.1f} h at {torrent.progress:.0%}"
    return None


def progress_updates(requests: pl.DataFrame, torrents: dict[str, Observed], now: datetime) -> pl.DataFrame:
    """Active requests with status and progress as qBittorrent reports them now.

    A torrent that is gone from qBittorrent keeps its row as it was: whether it was removed
    by the user or lost is decided by the caller (a missing torrent is not a stall).
    """
    rows = []
    for row in requests.filter(pl.col("status").is_in(["sent", "downloading"])).iter_rows(named=True):
        seen = torrents.get(row["info_hash"])
        if seen is None:
            continue
        # Right after a restart qBittorrent reports a finished torrent at progress 0 while it
        # checks its resume data; `completion_on` is already back and is what counts.
        done = seen.completion_on is not None
        progress = 1.0 if done else seen.progress
        status = "completed" if done else ("downloading" if progress > 0 else row["status"])
        if status == row["status"] and abs((row["progress"] or 0) - progress) < 1e-9:
            continue
        finished = datetime.fromtimestamp(seen.completion_on, now.tzinfo) if done else None
        rows.append({**row, "status": status, "progress": progress, "updated_at": now, "completed_at": finished})
    return pl.DataFrame(rows, schema=REQUEST_SCHEMA)
