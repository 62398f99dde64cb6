"""TASK_MAM: search the indexers for the missing books and queue the best releases."""

from dagster import JobDefinition, ScheduleDefinition

from schedules import task_schedule


def build_acquisition_schedule(job: JobDefinition, cron: str, timezone: str) -> ScheduleDefinition:
    return task_schedule("task_mam_daily", job, cron, timezone, "TASK_MAM: search MAM/Torznab for the missing books, send the best releases, import finished ones.")
