"""Task history: rows from a run's metadata, the run-status sensors on a real instance, `mamcrawler tasks`."""

import json
import sqlite3

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    Definitions,
    Failure,
    MaterializeResult,
    asset,
    build_run_status_sensor_context,
    build_sensor_context,
    define_asset_job,
)

from assets.presentation import lines_md
from mamcrawler.columns import COLUMN_DOCS
from mamcrawler.task_history import COLUMNS, TaskHistory, item_counts, task_of, task_row
from pipelines.cli import main
from pipelines.definitions import build_definitions
from pipelines.profiles import Profile
from resources.task_history import TaskHistoryResource


def test_each_job_maps_to_the_old_task_name_and_metadata_by_its_config():
    assert task_of("search_and_queue", {}) == "MAM"
    assert task_of("refresh_series_catalog", None) == "SERIES"
    assert task_of("refresh_author_catalog", {}) == "AUTHOR"
    new = {"ops": {"book_metadata": {"config": {"only_new": True}}}}
    assert task_of("enrich_metadata", new) == "METADATA_NEW"
    assert task_of("enrich_metadata", {"ops": {"book_metadata": {"config": {"only_new": False}}}}) == "METADATA_FULL"
    assert task_of("import_downloads", {}) is None and task_of("edit_completeness_overrides", {}) is None


def test_item_counts_read_the_obvious_figure_of_each_task():
    mam = [("release_candidates", {"books_searched": 7, "books_with_a_release": 5}), ("download_requests", {"books_searched": 99})]
    assert item_counts("MAM", mam) == (7, 5, 2)
    buckets = [("book_metadata", {"books_asked": 4, "books_pending_a_provider": 1}),
               ("book_metadata", {"books_asked": 6, "books_pending_a_provider": 0})]
    assert item_counts("METADATA_NEW", buckets) == (10, 9, 1)
    many = lines_md([f"provider down {i}" for i in range(53)]).value
    assert item_counts("SERIES", [("series_catalog", {"series_listed": 60, "errors": many})]) == (60, 7, 53)
    assert item_counts("AUTHOR", [("author_catalog", {"authors_listed": 3, "errors": "_none_"})]) == (3, 3, 0)
    library = [("abs_library_items", {"listed_items": 12, "dagster/row_count": 10, "skipped": 2})]
    assert item_counts("LIBRARY", library) == (12, 10, 2)
    assert item_counts("MAM", []) == (None, None, None)  # failed before the asset materialised


def test_rows_have_utc_times_seconds_and_every_column_described(tmp_path):
    row = task_row(run_id="r1", task="MAM", job="search_and_queue", tags={"dagster/schedule_name": "task_mam_daily"},
                   status="failure", start=1_700_000_000.0, end=1_700_000_042.25, counts=(3, 1, 2), error="x" * 900)
    assert row["started_at"] == "2023-11-14T22:13:20+00:00" and row["elapsed_s"] == 42.2
    assert row["trigger"] == "task_mam_daily" and len(row["error"]) == 500
    assert set(COLUMNS) - set(COLUMN_DOCS) == set()


def test_a_run_recorded_twice_is_one_row_and_a_failed_write_keeps_the_others(tmp_path):
    history = TaskHistory(tmp_path / "h.sqlite")
    base = dict(task="MAM", job="search_and_queue", tags={}, status="success", counts=(1, 1, 0), error=None)
    history.record(task_row(run_id="a", start=100.0, end=110.0, **base))
    history.record(task_row(run_id="b", start=200.0, end=210.0, **base))
    history.record(task_row(run_id="a", start=100.0, end=110.0, **{**base, "counts": (2, 2, 0)}))
    with pytest.raises(sqlite3.IntegrityError):
        history.record({"run_id": "c", "task": None, "job": "x", "status": "success"})  # NOT NULL task
    frame = history.read()
    assert frame["run_id"].to_list() == ["b", "a"] and frame["processed"].to_list() == [1, 2]


@asset(name="series_catalog")
def _catalog():
    return MaterializeResult(metadata={"series_listed": 4, "errors": lines_md(["hardcover: HTTP 503"])})


@asset(name="release_candidates")
def _candidates():
    raise Failure(description="no book could be searched: MAM answered 403")


def _sensor_tick(instance, defs, sensor_name, run_id, history_path):
    run = instance.get_run_by_id(run_id)
    event_type = DagsterEventType.RUN_SUCCESS if sensor_name.endswith("success") else DagsterEventType.RUN_FAILURE
    event = instance.all_logs(run_id, of_type=event_type)[0].dagster_event
    context = build_run_status_sensor_context(
        sensor_name=sensor_name, dagster_event=event, dagster_instance=instance, dagster_run=run,
        resources={"task_history": TaskHistoryResource(path=str(history_path))},
    )
    return defs.resolve_sensor_def(sensor_name)(context)


def test_the_sensors_record_a_real_run_once_with_its_counts_and_error(tmp_path):
    defs = build_definitions(Profile("demo", "t"))
    history_path = tmp_path / "task_history.sqlite"
    with DagsterInstance.ephemeral() as instance:
        series = _job("refresh_series_catalog", _catalog)
        ok = series.execute_in_process(instance=instance, tags={"dagster/schedule_name": "series_monthly"})
        mam = _job("search_and_queue", _candidates)
        failed = mam.execute_in_process(instance=instance, raise_on_error=False)
        assert ok.success and not failed.success
        for _ in range(2):  # a re-evaluated tick writes the same rows again
            _sensor_tick(instance, defs, "task_history_success", ok.run_id, history_path)
            _sensor_tick(instance, defs, "task_history_failure", failed.run_id, history_path)
    frame = TaskHistory(history_path).read()
    assert frame.height == 2
    rows = {r["task"]: r for r in frame.to_dicts()}
    assert rows["SERIES"]["status"] == "success" and rows["SERIES"]["trigger"] == "series_monthly"
    assert (rows["SERIES"]["processed"], rows["SERIES"]["succeeded"], rows["SERIES"]["failed"]) == (4, 3, 1)
    assert rows["SERIES"]["started_at"] <= rows["SERIES"]["ended_at"] and rows["SERIES"]["elapsed_s"] >= 0
    assert rows["MAM"]["status"] == "failure" and rows["MAM"]["processed"] is None
    assert "release_candidates" in rows["MAM"]["error"] and "MAM answered 403" in rows["MAM"]["error"]


def _job(name, one_asset):
    """A small job under a task job's name, around one asset with that asset's key."""
    return Definitions(assets=[one_asset], jobs=[define_asset_job(name)]).resolve_job_def(name)


def _history(tmp_path, n=3):
    history = TaskHistory(tmp_path / "h.sqlite")
    for i in range(n):
        task = "MAM" if i % 2 == 0 else "SERIES"
        history.record(task_row(
            run_id=f"run-{i}", task=task, job="search_and_queue" if task == "MAM" else "refresh_series_catalog",
            tags={"dagster/schedule_name": "task_mam_daily" if task == "MAM" else "series_monthly"},
            status="failure" if i == 1 else "success", start=1_700_000_000.0 + 3600 * i, end=1_700_000_030.0 + 3600 * i,
            counts=(10 + i, 8, 2 + i), error="series_catalog: Hardcover answered 503 " + "and more " * 20 if i == 1 else None,
        ))
    return history.path


def test_tasks_prints_newest_first_in_100_columns(tmp_path, capsys):
    path = _history(tmp_path)
    assert main(["tasks", "--history", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["started", "(UTC)", "task"] and "took_s" in lines[0]
    assert all(len(line) <= 100 for line in lines)
    assert [line.split()[2] for line in lines[2:5]] == ["MAM", "SERIES", "MAM"]
    assert lines[2].startswith("2023-11-15 00:13") and "3 task runs (took_s: seconds" in out
    assert "series_monthly" in out and "series_catalog: Hardc" in out


def test_tasks_filters_by_task_limits_and_exports(tmp_path, capsys):
    path = _history(tmp_path)
    assert main(["tasks", "--history", str(path), "--task", "mam", "--limit", "1", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in rows] == ["run-2"] and rows[0]["elapsed_s"] == 30.0
    assert main(["tasks", "--history", str(path), "--format", "csv"]) == 0
    header, *body = capsys.readouterr().out.splitlines()
    assert header.split(",") == list(COLUMNS) and len(body) == 3
    assert main(["tasks", "--history", str(tmp_path / "none.sqlite")]) == 0
    assert "No task runs recorded yet" in capsys.readouterr().out


def test_a_daemon_style_tick_records_each_finished_task_run_once(tmp_path):
    """The path the daemon takes: evaluate_tick walks the event log from the sensor's cursor."""
    defs = build_definitions(Profile("demo", "t"))
    repo = defs.get_repository_def()
    resources = {"task_history": TaskHistoryResource(path=str(tmp_path / "h.sqlite"))}
    succeeded, failed = defs.resolve_sensor_def("task_history_success"), defs.resolve_sensor_def("task_history_failure")

    def evaluate(sensor, instance, cursor):
        return sensor.evaluate_tick(build_sensor_context(instance=instance, resources=resources, repository_def=repo, cursor=cursor))

    with DagsterInstance.ephemeral() as instance:
        start = {s.name: evaluate(s, instance, None).cursor for s in (succeeded, failed)}  # the first tick starts from now
        ok = _job("refresh_series_catalog", _catalog).execute_in_process(instance=instance)
        _job("import_downloads", _catalog).execute_in_process(instance=instance)  # not a task
        bad = _job("search_and_queue", _candidates).execute_in_process(instance=instance, raise_on_error=False)
        for _ in range(2):  # a tick whose cursor was not saved is evaluated again from the same cursor
            evaluate(succeeded, instance, start[succeeded.name])
            evaluate(failed, instance, start[failed.name])
    frame = TaskHistory(tmp_path / "h.sqlite").read()
    assert sorted(zip(frame["run_id"], frame["task"], frame["status"])) == sorted(
        [(ok.run_id, "SERIES", "success"), (bad.run_id, "MAM", "failure")]
    )


def test_prune_drops_only_the_runs_that_ended_before_the_cut(tmp_path):
    from datetime import UTC, datetime

    history = TaskHistory(_history(tmp_path))
    assert history.prune(datetime(2023, 11, 14, 23, 30, tzinfo=UTC)) == 2
    assert history.read()["run_id"].to_list() == ["run-2"]
