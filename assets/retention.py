"""The retention op: old warehouse rows, task history and Dagster runs deleted nightly.

An op, not an asset: it makes nothing, it deletes. What it deleted is its output's metadata
(rows per table, runs, each cutoff in UTC with the days kept). `failed_attempts` is never
touched (see mamcrawler.retention).
"""

from datetime import UTC, datetime

import polars as pl
from dagster import (
    Config,
    DagsterInstance,
    DagsterRunStatus,
    Failure,
    MetadataValue,
    OpExecutionContext,
    Out,
    Output,
    RunsFilter,
    op,
)
from pydantic import Field

from assets.presentation import markdown_table
from mamcrawler.retention import NEVER_PRUNED, RetentionError, prune_warehouse
from resources.settings import RetentionOptions
from resources.task_history import TaskHistoryResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
MAX_RUNS_PER_PASS = 5000  # a first pass over years of runs is spread over nights


class RetentionConfig(Config):
    dry_run: bool = Field(default=False, description="Count what would be deleted, delete nothing")


def _now() -> datetime:
    return datetime.now(UTC)


def prune_runs(
    instance: DagsterInstance, before: datetime, keep: str | None, dry_run: bool, limit: int = MAX_RUNS_PER_PASS
) -> int:
    """Delete finished runs created before `before` (never `keep`, the run doing it); returns how many.

    The filter asks for finished runs only, and each is checked again before it goes: a run
    still queued, starting or in progress keeps its events."""
    records = instance.get_run_records(filters=RunsFilter(created_before=before, statuses=FINISHED), limit=limit)
    done = 0
    for record in records:
        run = record.dagster_run
        if run.run_id == keep or run.status not in FINISHED:
            continue
        if not dry_run:
            instance.delete_run(run.run_id)
        done += 1
    return done


@op(pool=WAREHOUSE_POOL, out=Out(dagster_type=type(None)))
def prune_old_records(
    context: OpExecutionContext,
    config: RetentionConfig,
    retention: RetentionOptions,
    warehouse: WarehouseResource,
    task_history: TaskHistoryResource,
):
    """Delete `metadata_corrections`, account history, task history and Dagster runs older
    than their configured days (`MAMCRAWLER_RETENTION_*_DAYS`); `failed_attempts` never."""
    now = _now()
    policy = retention.policy()
    try:
        cutoffs = policy.cutoffs(now)  # every setting checked before anything is deleted
        tables = prune_warehouse(warehouse.get(), cutoffs, dry_run=config.dry_run, now=now)
    except RetentionError as exc:
        raise Failure(description=f"retention refused, nothing deleted: {exc}") from None
    history = task_history.get().prune(cutoffs["task_runs"], dry_run=config.dry_run)
    runs = prune_runs(context.instance, cutoffs["dagster_runs"], keep=context.run_id, dry_run=config.dry_run)
    days = policy.days_of()
    rows = [
        {"what": t.table, "kept (days)": days[t.table][1], "cutoff (UTC)": cutoffs[t.table].isoformat(timespec="seconds"),
         "deleted (rows, runs)": str(t.deleted) if t.present else "table absent", "rows left": t.kept if t.present else None}
        for t in tables
    ] + [
        {"what": "task_runs (task history)", "kept (days)": days["task_runs"][1],
         "cutoff (UTC)": cutoffs["task_runs"].isoformat(timespec="seconds"), "deleted (rows, runs)": str(history), "rows left": None},
        {"what": "Dagster runs (finished)", "kept (days)": days["dagster_runs"][1],
         "cutoff (UTC)": cutoffs["dagster_runs"].isoformat(timespec="seconds"), "deleted (rows, runs)": str(runs), "rows left": None},
    ]
    verb = "would delete" if config.dry_run else "deleted"
    line = (
        f"retention {verb}: " + ", ".join(f"{t.table} {t.deleted} rows" for t in tables)
        + f", task history {history} rows, {runs} Dagster runs"
    )
    context.log.info(line)
    metadata = {
        "dry_run": config.dry_run,
        "summary": line,
        **{f"{t.table}_deleted_rows": t.deleted for t in tables},
        **{f"{t.table}_cutoff_utc": cutoffs[t.table].isoformat(timespec="seconds") for t in tables},
        **{f"{what}_kept_days": value for what, (_, value) in days.items()},
        "task_runs_deleted_rows": history,
        "task_runs_cutoff_utc": cutoffs["task_runs"].isoformat(timespec="seconds"),
        "dagster_runs_deleted": runs,
        "dagster_runs_cutoff_utc": cutoffs["dagster_runs"].isoformat(timespec="seconds"),
        "dagster_runs_pass_limit": MAX_RUNS_PER_PASS,
        "never_pruned": ", ".join(sorted(NEVER_PRUNED)),
        "deleted": MetadataValue.md(markdown_table(pl.DataFrame(rows, strict=False))),
    }
    yield Output(None, metadata=metadata)
