"""SERIES (2nd of the month, 03:00) and AUTHOR (3rd, 03:00): refresh a catalogue, rebuild completeness."""

from dagster import JobDefinition, ScheduleDefinition

from schedules import task_schedule


def build_catalog_schedules(series_job: JobDefinition, author_job: JobDefinition, series_cron: str, author_cron: str,
                            timezone: str) -> list[ScheduleDefinition]:
    return [
        task_schedule(name, job, cron, timezone, job.description)
        for name, job, cron in (("series_monthly", series_job, series_cron), ("author_monthly", author_job, author_cron))
    ]
