"""Every schedule's tick evaluated with Dagster's test context, and the README table checked
against the definitions (the sensors' ticks are in test_sensors.py and test_task_history.py)."""

import re
from datetime import UTC, datetime
from pathlib import Path

from dagster import DagsterInstance, DefaultScheduleStatus, DefaultSensorStatus, build_schedule_context

from mamcrawler.enrichment import BUCKETS
from mamcrawler.task_history import task_of
from pipelines.definitions import build_definitions
from pipelines.profiles import Profile

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def readme_rows() -> dict[str, dict[str, str]]:
    """The schedule/sensor table of the README, by name (a `a`, `_b` cell names several)."""
    section = README.split("## Schedules, sensors and the task history", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| `")]
    header = ["name", "kind", "task", "job", "cron", "timezone", "variable", "default"]
    rows = {}
    for line in lines:
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        names = re.findall(r"`([a-z_]+)`", cells["name"])
        for name in names:
            full = name if not name.startswith("_") else names[0].rsplit("_", 1)[0] + name
            rows[full] = cells
    return rows


def tick(defs, name, when):
    schedule = defs.resolve_schedule_def(name)
    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(instance=instance, scheduled_execution_time=when,
                                         repository_def=defs.get_repository_def())
        return schedule, schedule.evaluate_tick(context).run_requests


def test_the_readme_table_is_every_schedule_and_sensor_as_defined():
    defs = build_definitions(Profile("demo", "t"), env={})
    rows = readme_rows()
    assert set(rows) == {s.name for s in defs.schedules} | {s.name for s in defs.sensors}
    for schedule in defs.schedules:
        row = rows[schedule.name]
        assert row["cron"].startswith(f"`{schedule.cron_schedule}`") and row["job"].startswith(f"`{schedule.job_name}`")
        assert schedule.execution_timezone == "UTC" and row["timezone"] == "`MAMCRAWLER_TIMEZONE`"
        assert row["default"] == "off" and schedule.default_status == DefaultScheduleStatus.STOPPED
    for sensor in defs.sensors:
        row = rows[sensor.name]
        assert row["default"] == ("on" if sensor.default_status == DefaultSensorStatus.RUNNING else "off")
        if row["cron"].startswith("every"):
            assert row["cron"] == f"every {sensor.minimum_interval_seconds} s"


def test_each_schedule_tick_requests_its_job_tagged_and_the_task_the_history_records():
    defs = build_definitions(Profile("demo", "t"), env={})
    rows = readme_rows()
    when = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
    for schedule in defs.schedules:
        _, requests = tick(defs, schedule.name, when)
        assert requests, schedule.name
        for request in requests:
            assert request.tags["dagster/schedule_name"] == schedule.name
            job = request.job_name or schedule.job_name
            assert task_of(job, request.run_config) == rows[schedule.name]["task"]


def test_the_metadata_schedules_request_one_run_per_bucket_once_per_tick():
    defs = build_definitions(Profile("demo", "t"), env={})
    first = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
    for name, only_new in (("metadata_new", True), ("metadata_full", False)):
        _, requests = tick(defs, name, first)
        assert [r.partition_key for r in requests] == list(BUCKETS)
        assert {r.run_config["ops"]["book_metadata"]["config"]["only_new"] for r in requests} == {only_new}
        keys = {r.run_key for r in requests}
        assert len(keys) == len(BUCKETS)
        _, again = tick(defs, name, first)
        assert {r.run_key for r in again} == keys  # the same tick evaluated twice launches nothing twice
        _, later = tick(defs, name, datetime(2026, 4, 1, 4, 0, tzinfo=UTC))
        assert keys.isdisjoint(r.run_key for r in later)


def test_cron_and_time_zone_come_from_the_environment():
    env = {"MAMCRAWLER_TIMEZONE": "Europe/Berlin", "MAMCRAWLER_MAM_CRON": "15 5 * * *", "MAMCRAWLER_SERIES_CRON": "0 6 * * 0"}
    defs = build_definitions(Profile("demo", "t"), env=env)
    assert {s.execution_timezone for s in defs.schedules} == {"Europe/Berlin"}
    assert defs.resolve_schedule_def("task_mam_daily").cron_schedule == "15 5 * * *"
    assert defs.resolve_schedule_def("series_monthly").cron_schedule == "0 6 * * 0"
