"""The nightly library refresh: snapshot ABS, normalise, find the gaps."""


from dagster import DefaultScheduleStatus, JobDefinition, ScheduleDefinition


def build_library_refresh_schedule(job: JobDefinition, cron: str, timezone: str) -> ScheduleDefinition:
    return ScheduleDefinition(
        name="library_refresh_nightly",
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=DefaultScheduleStatus.STOPPED,
        description="Snapshot ABS and rebuild library_books and missing_books.",
    )
