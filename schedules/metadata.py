"""METADATA_NEW (weekly, only books never enriched) and METADATA_FULL (monthly, everything)."""

from dagster import (
    DefaultScheduleStatus,
    JobDefinition,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    schedule,
)

from mamcrawler.enrichment import BUCKETS


def _every_bucket(context: ScheduleEvaluationContext, name: str, only_new: bool):
    stamp = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "now"
    for bucket in BUCKETS:
        yield RunRequest(
            run_key=f"{name}:{stamp}:{bucket}",
            partition_key=bucket,
            run_config={"ops": {"book_metadata": {"config": {"only_new": only_new}}}},
            tags={"mamcrawler/schedule": name},
        )


def build_metadata_schedules(job: JobDefinition, new_cron: str, full_cron: str, timezone: str) -> list[ScheduleDefinition]:
    @schedule(name="metadata_new", job=job, cron_schedule=new_cron, execution_timezone=timezone,
              default_status=DefaultScheduleStatus.STOPPED, description="Enrich only books never enriched.")
    def metadata_new(context: ScheduleEvaluationContext):
        yield from _every_bucket(context, "metadata_new", only_new=True)

    @schedule(name="metadata_full", job=job, cron_schedule=full_cron, execution_timezone=timezone,
              default_status=DefaultScheduleStatus.STOPPED, description="Re-enrich the whole library (cached answers are reused).")
    def metadata_full(context: ScheduleEvaluationContext):
        yield from _every_bucket(context, "metadata_full", only_new=False)

    return [metadata_new, metadata_full]
