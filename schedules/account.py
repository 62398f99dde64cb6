"""The MAM account, read daily before TASK_MAM so its history and checks are fresh."""

from dagster import JobDefinition, ScheduleDefinition

from schedules import task_schedule


def build_account_schedule(job: JobDefinition, cron: str, timezone: str) -> ScheduleDefinition:
    return task_schedule("account_daily", job, cron, timezone, "Read the MAM account (ratio, points, unsatisfied, VIP end) into its history, before TASK_MAM.")
