"""Record each run of a task job in the task history (mamcrawler.task_history).

Three run-status sensors (Dagster watches one status per sensor): success, failure,
cancellation. They never open the warehouse: the run's figures come from its
materialisation events in the Dagster instance, the row goes to the task history's own
SQLite file. A write that fails raises, so the tick fails and Dagster evaluates the same
run again at the next tick; the row is keyed by run id, so that never duplicates it.
"""

from __future__ import annotations

from dagster import (
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunStatusSensorContext,
    SensorDefinition,
    run_status_sensor,
)

from mamcrawler.task_history import item_counts, task_of, task_row
from resources.secrets import scrub
from resources.task_history import TaskHistoryResource
from sensors.run_events import failed_steps

STATUSES = {
    "success": DagsterRunStatus.SUCCESS,
    "failure": DagsterRunStatus.FAILURE,
    "canceled": DagsterRunStatus.CANCELED,
}


def run_error(context: RunStatusSensorContext) -> str | None:
    """The first line of each failed step's error, else the run's own failure message."""
    if context.dagster_run.status == DagsterRunStatus.SUCCESS:
        return None
    lines = [f"{step}: {message.strip().splitlines()[0] if message.strip() else 'failed'}"
             for step, message in failed_steps(context)]
    return "; ".join(lines) or (context.dagster_event.message or context.dagster_run.status.value)


def record_run(context: RunStatusSensorContext, task_history: TaskHistoryResource) -> dict | None:
    """The row of the run the context is about, written; None when its job is no task."""
    run = context.dagster_run
    task = task_of(run.job_name, run.run_config)
    if task is None:
        return None
    materializations = [
        (entry.asset_materialization.asset_key.to_user_string(), {k: v.value for k, v in entry.asset_materialization.metadata.items()})
        for entry in context.instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
        if entry.asset_materialization
    ]
    record = context.instance.get_run_record_by_id(run.run_id)
    row = task_row(
        run_id=run.run_id, task=task, job=run.job_name, tags=run.tags, status=run.status.value.lower(),
        start=record.start_time if record else None, end=record.end_time if record else None,
        counts=item_counts(task, materializations), error=scrub(run_error(context)),  # stored: no secret
    )
    task_history.get().record(row)
    return row


def build_task_history_sensors(jobs: list) -> list[SensorDefinition]:
    """On by default: they only write the history file, nothing is launched or spent."""
    sensors = []
    for name, status in STATUSES.items():

        @run_status_sensor(
            run_status=status, name=f"task_history_{name}", monitored_jobs=jobs,
            default_status=DefaultSensorStatus.RUNNING,
            description=f"Record each {name} of a task job (MAM, METADATA_*, SERIES, AUTHOR, LIBRARY, ACCOUNT, RETENTION) in `mamcrawler tasks`.",
        )
        def task_history_sensor(context: RunStatusSensorContext, task_history: TaskHistoryResource):
            record_run(context, task_history)

        sensors.append(task_history_sensor)
    return sensors
