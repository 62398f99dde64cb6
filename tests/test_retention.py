"""Retention: the pruning function alone, the job on a temp Dagster instance and warehouse,
and the nightly schedule's tick."""

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    build_schedule_context,
    instance_for_test,
)

import assets.retention
from assets.metadata import CORRECTIONS_SCHEMA
from mamcrawler.account import status_frame
from mamcrawler.retention import RetentionError, RetentionPolicy, cutoff, prune_older_than, prune_warehouse
from mamcrawler.task_history import TaskHistory, task_row
from mamcrawler.warehouse import Warehouse, WarehouseError
from pipelines.definitions import build_definitions
from pipelines.jobs import apply_retention
from pipelines.profiles import Profile
from resources.settings import RetentionOptions
from resources.task_history import TaskHistoryResource
from resources.warehouse import WarehouseResource

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def stamped(column: str, *times) -> pl.DataFrame:
    return pl.DataFrame({"id": list(range(len(times))), column: list(times)},
                        schema={"id": pl.Int64, column: pl.Datetime("us", "UTC")})


def test_prune_older_than_drops_the_rows_before_the_cutoff_and_keeps_undated_ones():
    frame = stamped("at", NOW - timedelta(days=31), NOW - timedelta(days=30), NOW - timedelta(days=29), None)
    kept, deleted = prune_older_than(frame, "at", NOW - timedelta(days=30), now=NOW)
    assert deleted == 1
    assert kept["id"].to_list() == [1, 2, 3]  # the row exactly at the cutoff stays


def test_prune_older_than_reads_a_naive_column_as_utc():
    frame = pl.DataFrame({"at": [datetime(2026, 5, 1, 11), datetime(2026, 5, 1, 13)]})
    kept, deleted = prune_older_than(frame, "at", datetime(2026, 5, 1, 12, tzinfo=UTC), now=NOW)
    assert (deleted, kept["at"].to_list()) == (1, [datetime(2026, 5, 1, 13)])


def test_prune_older_than_refuses_a_future_cutoff_and_a_column_that_is_no_time():
    frame = stamped("at", NOW - timedelta(days=1))
    with pytest.raises(RetentionError, match="in the future"):
        prune_older_than(frame, "at", NOW + timedelta(seconds=1), now=NOW)
    with pytest.raises(RetentionError, match="not a time"):
        prune_older_than(frame, "id", NOW - timedelta(days=1), now=NOW)


@pytest.mark.parametrize("days", [0, 0.5, -30, float("nan")])
def test_fewer_than_one_day_is_refused_by_name(days):
    with pytest.raises(RetentionError, match="at least 1 day"):
        cutoff(NOW, days, "metadata_corrections")
    with pytest.raises(RetentionError, match="MAMCRAWLER_RETENTION_RUN_DAYS"):
        RetentionPolicy(run_days=days).cutoffs(NOW)


class FailingCommit(Warehouse):
    """Its transaction fails after the pruning statements ran, before the commit."""

    def _transaction(self, name, frames, statements, evolve=None):
        super()._transaction(name, frames, [*statements, ("SELECT * FROM no_such_table", [])], evolve)


def seed(store: Warehouse, now: datetime) -> dict[str, pl.DataFrame]:
    old, new = now - timedelta(days=40), now - timedelta(days=1)
    corrections = pl.DataFrame(
        [{"item_id": i, "field": "title", "mode": "applied", "corrected_at": t} for i, t in (("a", old), ("b", new))],
        schema=CORRECTIONS_SCHEMA,
    )
    history = status_frame([{"checked_at": now - timedelta(days=400), "username": "u"}, {"checked_at": old, "username": "u"}])
    failed = pl.DataFrame({"task": ["MAM"], "item": ["x"], "failed_at": [now - timedelta(days=900)]})
    frames = {"metadata_corrections": corrections, "mam_user_status_history": history, "failed_attempts": failed}
    store.write_tables(frames)
    return frames


def test_a_failed_prune_keeps_every_table_whole(tmp_path):
    seed(Warehouse(tmp_path / "w.duckdb"), NOW)
    store = FailingCommit(tmp_path / "w.duckdb")
    with pytest.raises(WarehouseError, match="previous version is kept"):
        prune_warehouse(store, RetentionPolicy().cutoffs(NOW), now=NOW)
    assert store.read_table("metadata_corrections").height == 2
    assert store.read_table("mam_user_status_history").height == 2


def test_a_dry_run_counts_and_deletes_nothing(tmp_path):
    store = Warehouse(tmp_path / "w.duckdb")
    seed(store, NOW)
    result = {p.table: p.deleted for p in prune_warehouse(store, RetentionPolicy().cutoffs(NOW), dry_run=True, now=NOW)}
    assert result == {"metadata_corrections": 1, "mam_user_status_history": 1}
    assert store.read_table("metadata_corrections").height == 2


def _output_metadata(result) -> dict:
    [event] = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_OUTPUT]
    return {k: v.value for k, v in event.step_output_data.metadata.items()}


def _run(instance, tmp_path, **config):
    return apply_retention.execute_in_process(
        instance=instance,
        run_config={"ops": {"prune_old_records": {"config": config}}} if config else None,
        resources={
            "retention": RetentionOptions(),
            "warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb")),
            "task_history": TaskHistoryResource(path=str(tmp_path / "tasks.sqlite")),
        },
        raise_on_error=False,
    )


def test_the_job_deletes_old_records_keeps_new_ones_failed_attempts_and_unfinished_runs(tmp_path, monkeypatch):
    now = datetime.now(UTC)
    store = Warehouse(tmp_path / "w.duckdb")
    seeded = seed(store, now)
    tasks = TaskHistory(tmp_path / "tasks.sqlite")
    for run_id, days in (("old", 31), ("new", 2)):
        ended = (now - timedelta(days=days)).timestamp()
        tasks.record(task_row(run_id=run_id, task="MAM", job="search_and_queue", tags={}, status="success",
                              start=ended - 60, end=ended, counts=(1, 1, 0), error=None))
    with instance_for_test() as instance:
        finished = instance.add_run(DagsterRun(job_name="refresh_library", run_id="f" * 8, status=DagsterRunStatus.SUCCESS))
        started = instance.add_run(DagsterRun(job_name="refresh_library", run_id="s" * 8, status=DagsterRunStatus.STARTED))

        result = _run(instance, tmp_path)
        assert result.success
        meta = _output_metadata(result)
        assert (meta["metadata_corrections_deleted_rows"], meta["mam_user_status_history_deleted_rows"]) == (1, 1)
        assert (meta["task_runs_deleted_rows"], meta["dagster_runs_deleted"], meta["dry_run"]) == (1, 0, False)
        assert meta["metadata_corrections_kept_days"] == 30 and meta["mam_user_status_history_kept_days"] == 365
        assert meta["metadata_corrections_cutoff_utc"].startswith((now - timedelta(days=30)).date().isoformat())
        assert store.read_table("metadata_corrections")["item_id"].to_list() == ["b"]
        assert len(store.read_table("mam_user_status_history")) == 1
        assert store.read_table("failed_attempts").equals(seeded["failed_attempts"])
        assert tasks.read()["run_id"].to_list() == ["new"]

        # 100 days on: every run above is past the 90 days, but only finished ones go.
        monkeypatch.setattr(assets.retention, "_now", lambda: now + timedelta(days=100))
        preview = _run(instance, tmp_path, dry_run=True)
        assert _output_metadata(preview)["dagster_runs_deleted"] == 2  # `finished` and the first retention run
        assert instance.get_run_by_id(finished.run_id) is not None
        later = _run(instance, tmp_path)
        assert later.success and _output_metadata(later)["dagster_runs_deleted"] == 3  # and the preview
        assert instance.get_run_by_id(finished.run_id) is None and instance.get_run_by_id(result.run_id) is None
        assert instance.get_run_by_id(started.run_id).status == DagsterRunStatus.STARTED
        assert instance.get_run_by_id(later.run_id) is not None  # a run never deletes itself
        assert store.read_table("failed_attempts").equals(seeded["failed_attempts"])


def test_the_job_refuses_a_retention_under_one_day_and_deletes_nothing(tmp_path):
    store = Warehouse(tmp_path / "w.duckdb")
    seed(store, datetime.now(UTC))
    with DagsterInstance.ephemeral() as instance:
        result = apply_retention.execute_in_process(
            instance=instance, raise_on_error=False,
            resources={
                "retention": RetentionOptions(corrections_days=0),
                "warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb")),
                "task_history": TaskHistoryResource(path=str(tmp_path / "tasks.sqlite")),
            },
        )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert "MAMCRAWLER_RETENTION_CORRECTIONS_DAYS" in failure.step_failure_data.error.message
    assert store.read_table("mam_user_status_history").height == 2  # the valid settings did not run either


def test_the_nightly_schedule_ticks_at_its_configured_time_and_zone():
    env = {"MAMCRAWLER_TIMEZONE": "Europe/Berlin", "MAMCRAWLER_RETENTION_CRON": "15 3 * * *",
           "MAMCRAWLER_RETENTION_RUN_DAYS": "120"}
    defs = build_definitions(Profile("demo", "t"), env=env)
    schedule = defs.resolve_schedule_def("retention_nightly")
    assert (schedule.cron_schedule, schedule.execution_timezone, schedule.job_name) == ("15 3 * * *", "Europe/Berlin", "apply_retention")
    assert defs.resources["retention"].run_days == 120
    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(instance=instance, scheduled_execution_time=datetime(2026, 3, 1, 2, 15, tzinfo=UTC),
                                         repository_def=defs.get_repository_def())
        [request] = schedule.evaluate_tick(context).run_requests
    assert request.tags["dagster/schedule_name"] == "retention_nightly"
    assert not (request.run_config or {}).get("ops")  # a real pass, not a dry run
    assert build_definitions(Profile("demo", "t"), env={}).resolve_schedule_def("retention_nightly").cron_schedule == "0 4 * * *"


def test_the_cli_dry_run_counts_and_deletes_nothing(tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    store = Warehouse(tmp_path / "w.duckdb")
    seed(store, datetime.now(UTC))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MAMCRAWLER_WAREHOUSE", str(tmp_path / "w.duckdb"))
    monkeypatch.setenv("MAMCRAWLER_TASK_HISTORY", str(tmp_path / "tasks.sqlite"))
    assert main(["retention", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "metadata_corrections 1 rows" in out and "would delete" in out and "dry run: nothing deleted" in out
    assert store.read_table("metadata_corrections").height == 2
    assert main(["retention"]) == 0
    assert "deleted: metadata_corrections 1 rows" in capsys.readouterr().out
    assert store.read_table("metadata_corrections").height == 1
