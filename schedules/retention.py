"""Retention, nightly after the other tasks so a night's runs are never what it deletes."""

from dagster import JobDefinition, ScheduleDefinition

from schedules import task_schedule


def build_retention_schedule(job: JobDefinition, cron: str, timezone: str) -> ScheduleDefinition:
    return task_schedule("retention_nightly", job, cron, timezone,
                         "Delete metadata_corrections, account history, task history and Dagster runs older than "
                         "their MAMCRAWLER_RETENTION_*_DAYS; failed_attempts never.")
