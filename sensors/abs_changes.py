"""Refresh the library when books are added to or removed from ABS."""


import hashlib

from dagster import (
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from resources.audiobookshelf import AbsError, AudiobookshelfResource


def build_abs_change_sensor(job: JobDefinition, interval_s: int = 900) -> SensorDefinition:
    @sensor(job=job, minimum_interval_seconds=interval_s, default_status=DefaultSensorStatus.STOPPED)
    def abs_library_changes(context: SensorEvaluationContext, abs_client: AudiobookshelfResource):
        """Compares a small fingerprint per library (count + newest item); the cursor is that fingerprint."""
        try:
            fingerprint = abs_client.library_fingerprint()
        except AbsError as exc:
            return SkipReason(f"ABS not readable: {exc}")
        if fingerprint == context.cursor:
            return SkipReason("no books added or removed since the last refresh")
        context.update_cursor(fingerprint)
        run_key = hashlib.sha1(fingerprint.encode()).hexdigest()[:16]
        return RunRequest(run_key=run_key, tags={"mamcrawler/trigger": "abs_library_changes"})

    return abs_library_changes
