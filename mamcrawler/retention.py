"""Retention: what is deleted after how long, and the deletion of old warehouse rows.

Kept 30 days (the issue's figure): `metadata_corrections` (the write-back log; ABS holds the
values themselves) and the task history. The MAM account history (`mam_user_status_history`)
is one row per account read, about 365 rows a year, and exists to chart ratio and points over
time, so it is kept 365 days by default. Dagster's own run history is kept 90 days.
`failed_attempts` is never pruned: it is what keeps a release that failed from being chosen
again, and forgetting it would re-download that release.

A table is pruned by writing its kept rows back in one transaction with every other pruned
table (`Warehouse.write_tables`): a failed write keeps every previous table whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from mamcrawler.warehouse import Warehouse

# table -> the column that dates its rows
WAREHOUSE_TABLES = {"metadata_corrections": "corrected_at", "mam_user_status_history": "checked_at"}
NEVER_PRUNED = frozenset({"failed_attempts"})


class RetentionError(ValueError):
    """A retention setting that would delete what must be kept."""


@dataclass(frozen=True)
class RetentionPolicy:
    """Days each kind of record is kept (whole or fractional days, at least 1)."""

    corrections_days: float = 30
    task_history_days: float = 30
    account_history_days: float = 365
    run_days: float = 90

    def days_of(self) -> dict[str, tuple[str, float]]:
        """What -> (its setting's variable, days kept)."""
        return {
            "metadata_corrections": ("MAMCRAWLER_RETENTION_CORRECTIONS_DAYS", self.corrections_days),
            "mam_user_status_history": ("MAMCRAWLER_RETENTION_ACCOUNT_HISTORY_DAYS", self.account_history_days),
            "task_runs": ("MAMCRAWLER_RETENTION_TASK_HISTORY_DAYS", self.task_history_days),
            "dagster_runs": ("MAMCRAWLER_RETENTION_RUN_DAYS", self.run_days),
        }

    def cutoffs(self, now: datetime) -> dict[str, datetime]:
        """What -> the time before which its records go; raises before anything is deleted."""
        return {what: cutoff(now, days, f"{what} ({variable})") for what, (variable, days) in self.days_of().items()}


def cutoff(now: datetime, days: float, what: str) -> datetime:
    """`now` minus `days`; refuses less than a day (a typo such as 0 would empty the table)."""
    if now.tzinfo is None:
        raise RetentionError("the retention clock must be timezone-aware (UTC)")
    if not days >= 1:  # also refuses NaN
        raise RetentionError(f"{what}: records must be kept at least 1 day, not {days} days")
    return now - timedelta(days=days)


def prune_older_than(
    frame: pl.DataFrame, column: str, cutoff: datetime, now: datetime | None = None
) -> tuple[pl.DataFrame, int]:
    """(the rows kept, how many rows dropped): rows whose `column` is before `cutoff` go.

    Rows without a time are kept (nothing says they are old). A cutoff after `now` (default:
    the clock) is refused: it would delete rows written a moment ago.
    """
    now = now or datetime.now(UTC)
    if cutoff.tzinfo is None:
        raise RetentionError("the cutoff must be timezone-aware (UTC)")
    if cutoff > now:
        raise RetentionError(f"the cutoff {cutoff.isoformat()} is in the future (now {now.isoformat()}): nothing deleted")
    dtype = frame.schema[column]
    if not isinstance(dtype, pl.Datetime):
        raise RetentionError(f"column {column} holds {dtype}, not a time")
    limit = cutoff.astimezone(UTC)
    limit = limit if dtype.time_zone else limit.replace(tzinfo=None)  # naive columns hold UTC
    limit_expr = pl.lit(limit).cast(pl.Datetime(dtype.time_unit or "us", dtype.time_zone))
    kept = frame.filter(pl.col(column).is_null() | (pl.col(column) >= limit_expr))
    return kept, frame.height - kept.height


@dataclass(frozen=True)
class Pruned:
    table: str
    deleted: int
    kept: int
    present: bool = True


def prune_warehouse(
    store: Warehouse, cutoffs: dict[str, datetime], dry_run: bool = False, now: datetime | None = None
) -> list[Pruned]:
    """Prune each warehouse table of `WAREHOUSE_TABLES` by its cutoff, all in one transaction.

    A dry run only counts. A table never written yet is reported absent.
    """
    results, changed = [], {}
    for table, column in WAREHOUSE_TABLES.items():
        if table in NEVER_PRUNED:  # a guard against a future edit of WAREHOUSE_TABLES
            raise RetentionError(f"{table} is never pruned")
        frame = store.read_optional(table)
        if frame is None:
            results.append(Pruned(table, 0, 0, present=False))
            continue
        kept, deleted = prune_older_than(frame, column, cutoffs[table], now)
        results.append(Pruned(table, deleted, kept.height))
        if deleted:
            changed[table] = kept
    if changed and not dry_run:
        store.write_tables(changed)
    return results
