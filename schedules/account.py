"""The MAM account, read daily before TASK_MAM so its history and checks are fresh."""

from dagster import DefaultScheduleStatus, JobDefinition, ScheduleDefinition


def build_account_schedule(job: JobDefinition, cron: str, timezone: str) -> ScheduleDefinition:
    return ScheduleDefinition(
        name="account_daily",
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=DefaultScheduleStatus.STOPPED,
        description="Read the MAM account (ratio, points, unsatisfied, VIP end) into its history, before TASK_MAM.",
    )
