"""The nightly library refresh: snapshot ABS, normalise, find the gaps."""

from dagster import JobDefinition, ScheduleDefinition

from schedules import task_schedule


def build_library_refresh_schedule(job: JobDefinition, cron: str, timezone: str) -> ScheduleDefinition:
    return task_schedule("library_refresh_nightly", job, cron, timezone, "Snapshot ABS and rebuild library_books and missing_books.")
