"""Retention, nightly after the other tasks so a night's runs are never what it deletes."""

from dagster import DefaultScheduleStatus, JobDefinition, ScheduleDefinition


def build_retention_schedule(job: JobDefinition, cron: str, timezone: str) -> ScheduleDefinition:
    return ScheduleDefinition(
        name="retention_nightly",
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=DefaultScheduleStatus.STOPPED,
        description=(
            "Delete metadata_corrections, account history, task history and Dagster runs older than their "
            "MAMCRAWLER_RETENTION_*_DAYS; failed_attempts never."
        ),
    )
