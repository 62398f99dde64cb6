"""Task history: one row per run of a scheduled task, kept in a small SQLite file.

Why not the warehouse: DuckDB lets one process hold its file for writing, and a run that
is writing it would make the run-status sensor (in the daemon) wait up to the lock
timeout, or a sensor holding it would make a run wait. The history is a few rows a day
written by one small transaction each, so it lives in its own SQLite file next to the
warehouse (`MAMCRAWLER_TASK_HISTORY`, default `data/task_history.sqlite`): SQLite queues
concurrent writers itself (busy timeout) and never blocks a warehouse writer.

Rows are keyed by the Dagster run id and written with INSERT OR REPLACE in one
transaction, so a sensor that evaluates the same run again rewrites the same row, and a
write that fails leaves every earlier row as it was.

Task names are the old system's. This project's jobs map to them in `TASK_OF_JOB`:
MAM = `search_and_queue`, METADATA_NEW / METADATA_FULL = `enrich_metadata` (by its
`only_new` config, which the two schedules set), SERIES = `refresh_series_catalog`,
AUTHOR = `refresh_author_catalog`, LIBRARY = `refresh_library` (this project's nightly
refresh, not in the old list), ACCOUNT = `refresh_account` (the MAM account read, not in
it either), RETENTION = `apply_retention` (an op job: no materialisation, so its items
are empty; the op's output metadata says what it deleted). TOP10 has no job yet, so no rows.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

TASK_OF_JOB = {
    "search_and_queue": "MAM",
    "refresh_series_catalog": "SERIES",
    "refresh_author_catalog": "AUTHOR",
    "refresh_library": "LIBRARY",
    "refresh_account": "ACCOUNT",
    "apply_retention": "RETENTION",
    "enrich_metadata": "METADATA",  # METADATA_NEW or METADATA_FULL, see task_of
}
ERROR_CHARS = 500

COLUMNS: dict[str, str] = {
    "run_id": "TEXT PRIMARY KEY",
    "task": "TEXT NOT NULL",
    "job": "TEXT NOT NULL",
    "trigger": "TEXT",
    "partition": "TEXT",
    "status": "TEXT NOT NULL",
    "started_at": "TEXT",
    "ended_at": "TEXT",
    "elapsed_s": "REAL",
    "processed": "INTEGER",
    "succeeded": "INTEGER",
    "failed": "INTEGER",
    "error": "TEXT",
}


@dataclass(frozen=True)
class Counts:
    """Where a task's items processed / succeeded / failed are read: a metadata key of
    one asset's materialisations, summed over them (enrich_metadata reports one per
    bucket). `failed` None with `succeeded` set: failed = processed - succeeded; `errors`:
    failed = the lines of that markdown list of errors."""

    asset: str
    processed: str
    succeeded: str | None = None
    failed: str | None = None
    errors: str | None = None


# MAM: books searched; succeeded = those with an accepted release; failed = searched without one.
# METADATA: books asked; failed = books a provider still owes an answer (quota, error).
# SERIES / AUTHOR: series / authors whose catalogue was listed; failed = the provider errors.
# LIBRARY: items ABS listed; succeeded = books kept; failed = items skipped.
# ACCOUNT: the account rows read (one per run).
COUNTS: dict[str, Counts] = {
    "MAM": Counts("release_candidates", "books_searched", succeeded="books_with_a_release"),
    "METADATA_NEW": Counts("book_metadata", "books_asked", failed="books_pending_a_provider"),
    "METADATA_FULL": Counts("book_metadata", "books_asked", failed="books_pending_a_provider"),
    "SERIES": Counts("series_catalog", "series_listed", errors="errors"),
    "AUTHOR": Counts("author_catalog", "authors_listed", errors="errors"),
    "LIBRARY": Counts("abs_library_items", "listed_items", succeeded="dagster/row_count", failed="skipped"),
    "ACCOUNT": Counts("mam_user_status", "dagster/row_count"),
}


def default_history_path() -> Path:
    """`MAMCRAWLER_TASK_HISTORY`, else `task_history.sqlite` next to the warehouse."""
    from mamcrawler.warehouse import default_warehouse_path

    env = os.environ.get("MAMCRAWLER_TASK_HISTORY")
    return Path(env).expanduser() if env else default_warehouse_path().parent / "task_history.sqlite"


def task_of(job: str, run_config: Mapping[str, Any] | None) -> str | None:
    """The old system's task name of a run of `job`, None when the job is no task."""
    task = TASK_OF_JOB.get(job)
    if task != "METADATA":
        return task
    config = ((run_config or {}).get("ops", {}).get("book_metadata", {}) or {}).get("config", {}) or {}
    return "METADATA_NEW" if config.get("only_new") else "METADATA_FULL"


def trigger_of(tags: Mapping[str, str]) -> str:
    """The schedule or sensor that started the run, else `manual` (UI, CLI)."""
    return tags.get("dagster/schedule_name") or tags.get("dagster/sensor_name") or "manual"


def partition_of(tags: Mapping[str, str]) -> str | None:
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    return f"{start}...{end}" if start and end else None


def _error_lines(markdown: str) -> int:
    """Lines of a `lines_md` list, counting its `_N more_` tail."""
    more = re.search(r"_(\d+) more_", markdown)
    return sum(1 for line in markdown.splitlines() if line.startswith("- ")) + (int(more.group(1)) if more else 0)


def item_counts(task: str, materializations: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[int | None, int | None, int | None]:
    """(processed, succeeded, failed) from the run's (asset key, metadata values) pairs;
    None where the asset never materialised (a run that failed before it) or has no such figure."""
    spec = COUNTS.get(task)
    if spec is None:
        return None, None, None
    found = [meta for asset, meta in materializations if asset == spec.asset and spec.processed in meta]
    if not found:
        return None, None, None

    def total(key: str) -> int:
        return sum(int(meta.get(key) or 0) for meta in found)

    processed = total(spec.processed)
    succeeded = total(spec.succeeded) if spec.succeeded else None
    if spec.failed:
        failed = total(spec.failed)
    elif spec.errors:
        failed = sum(_error_lines(str(meta.get(spec.errors) or "")) for meta in found)
    else:
        failed = None
    if succeeded is None and failed is not None:
        succeeded = max(0, processed - failed)
    if failed is None and succeeded is not None:
        failed = max(0, processed - succeeded)
    return processed, succeeded, failed


def _stamp(seconds: float | None) -> str | None:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds") if seconds is not None else None


def task_row(
    *, run_id: str, task: str, job: str, tags: Mapping[str, str], status: str, start: float | None, end: float | None,
    counts: tuple[int | None, int | None, int | None], error: str | None,
) -> dict[str, Any]:
    """One history row; times are UTC ISO 8601, the duration in seconds."""
    processed, succeeded, failed = counts
    return {
        "run_id": run_id, "task": task, "job": job, "trigger": trigger_of(tags), "partition": partition_of(tags),
        "status": status, "started_at": _stamp(start), "ended_at": _stamp(end),
        "elapsed_s": round(end - start, 1) if start is not None and end is not None else None,
        "processed": processed, "succeeded": succeeded, "failed": failed,
        "error": error[:ERROR_CHARS] if error else None,
    }


class TaskHistory:
    """The SQLite file of task runs. Connections live for one call."""

    def __init__(self, path: str | Path, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=self.busy_timeout_s)
        try:
            con.execute(f"CREATE TABLE IF NOT EXISTS task_runs ({', '.join(f'{c} {t}' for c, t in COLUMNS.items())})")
            yield con
        finally:
            con.close()

    def record(self, row: Mapping[str, Any]) -> None:
        """Insert or replace the row of `row['run_id']`, in one transaction."""
        names = list(COLUMNS)
        with self._connect() as con, con:  # `with con`: commit, or roll back on error
            con.execute(
                f"INSERT OR REPLACE INTO task_runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [row.get(n) for n in names],
            )

    def read(self, task: str | None = None, limit: int | None = None) -> pl.DataFrame:
        """The runs, newest first (by start; a run that never started by its end)."""
        if not self.path.exists():
            return pl.DataFrame(schema=SCHEMA)
        sql = "SELECT * FROM task_runs" + (" WHERE task = ?" if task else "")
        sql += " ORDER BY coalesce(started_at, ended_at) DESC, run_id" + (" LIMIT ?" if limit else "")
        params = [p for p in (task, limit) if p]
        with self._connect() as con:
            rows = con.execute(sql, params).fetchall()
        return pl.DataFrame(rows, schema=SCHEMA, orient="row")

    def prune(self, before: datetime, dry_run: bool = False) -> int:
        """Delete the runs that ended before `before` (the retention job's part); returns how
        many. A dry run only counts them."""
        stamp = before.astimezone(UTC).isoformat(timespec="seconds")
        with self._connect() as con, con:
            if dry_run:
                return con.execute("SELECT count(*) FROM task_runs WHERE ended_at < ?", [stamp]).fetchone()[0]
            return con.execute("DELETE FROM task_runs WHERE ended_at < ?", [stamp]).rowcount


SCHEMA = {
    c: (pl.Int64 if t.startswith("INTEGER") else pl.Float64 if t.startswith("REAL") else pl.Utf8) for c, t in COLUMNS.items()
}
