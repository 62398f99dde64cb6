"""What a finished run's event log says, for the run-status sensors (task history,
notifications): they read the Dagster instance only, never the warehouse."""

from __future__ import annotations

from dagster import DagsterEventType, RunStatusSensorContext


def failed_steps(context: RunStatusSensorContext) -> list[tuple[str, str]]:
    """(step, error message) of each failed step of the run."""
    found = []
    for entry in context.instance.all_logs(context.dagster_run.run_id, of_type=DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        error = event.step_failure_data.error if event and event.step_failure_data else None
        message = (error.message if error else entry.user_message) or ""
        if error and error.cls_name == "Failure":  # a Failure's description is the whole story
            message = message.split(": ", 1)[-1]
        found.append((event.step_key if event else "?", message))
    return found
