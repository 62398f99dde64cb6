"""Schedules: every task is off until the user turns it on, in the user's time zone."""

from dagster import DefaultScheduleStatus, JobDefinition, ScheduleDefinition


def task_schedule(name: str, job: JobDefinition, cron: str, timezone: str, description: str | None) -> ScheduleDefinition:
    """One run of `job` per tick, off by default."""
    return ScheduleDefinition(name=name, job=job, cron_schedule=cron, execution_timezone=timezone,
                              default_status=DefaultScheduleStatus.STOPPED, description=description)
