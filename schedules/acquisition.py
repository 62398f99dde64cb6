"""TASK_MAM: search the indexers for the missing books and queue the best releases."""

from dagster import DefaultScheduleStatus, JobDefinition, ScheduleDefinition


def build_acquisition_schedule(job: JobDefinition, cron: str, timezone: str) -> ScheduleDefinition:
    return ScheduleDefinition(
        name="task_mam_daily",
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=DefaultScheduleStatus.STOPPED,
        description="TASK_MAM: search MAM/Torznab for the missing books, send the best releases, import finished ones.",
    )
