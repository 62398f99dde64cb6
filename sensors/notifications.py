"""Send a notification when a run fails, books are imported, or an asset check fails.

Two run-status sensors (Dagster watches one status per sensor) over every job of the code
location: `notify_run_failure` says which steps failed, `notify_run_success` lists the books
an `imported_books` materialisation put into ABS. Both also report the asset checks of the
run that did not pass (their evaluations are in the run's event log). Like the task history
they read only the run's events, never the warehouse. With no `MAMCRAWLER_NOTIFY_URLS` they do
nothing and say so; a notification that cannot be sent is logged, the tick does not fail.
"""

from __future__ import annotations

from dagster import (
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunStatusSensorContext,
    SensorDefinition,
    SkipReason,
    run_status_sensor,
)

from mamcrawler.notifications import IMPORTED_TITLES, FailedCheck, Message, books_imported, checks_failed, run_failed
from resources.notify import VARIABLE, Notifier
from sensors.run_events import failed_steps

OFF = f"notifications are off: {VARIABLE} is not set"


def failed_checks(context: RunStatusSensorContext) -> list[FailedCheck]:
    """The asset check evaluations of the run that did not pass."""
    found = []
    for entry in context.instance.all_logs(context.dagster_run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data if entry.dagster_event else None
        if evaluation is None or evaluation.passed:
            continue
        found.append(FailedCheck(
            asset=evaluation.asset_key.to_user_string(), check=evaluation.check_name,
            description=evaluation.description, severity=evaluation.severity.value if evaluation.severity else None,
        ))
    return found


def imported_titles(context: RunStatusSensorContext) -> list[str]:
    """The books the run's `imported_books` materialisations list as imported this run."""
    titles: list[str] = []
    for entry in context.instance.all_logs(context.dagster_run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        if materialization is None or materialization.asset_key.to_user_string() != "imported_books":
            continue
        value = materialization.metadata.get(IMPORTED_TITLES)
        titles += [str(t) for t in (value.value if value is not None else None) or []]
    return titles


def _send_all(messages: list[Message | None], notifier: Notifier, context: RunStatusSensorContext) -> SkipReason:
    messages = [m for m in messages if m is not None]
    if not messages:
        return SkipReason(f"nothing to notify for run {context.dagster_run.run_id[:8]}")
    sent = sum(notifier.send(m, context.log) for m in messages)
    return SkipReason(f"{sent} of {len(messages)} notification(s) sent for run {context.dagster_run.run_id[:8]}")


def build_notification_sensors() -> list[SensorDefinition]:
    """On by default: without a URL they only say they are off; nothing is launched."""

    @run_status_sensor(
        run_status=DagsterRunStatus.FAILURE, name="notify_run_failure", default_status=DefaultSensorStatus.RUNNING,
        description=f"Notify ({VARIABLE}) of each failed run: job, failed steps, failed asset checks.",
    )
    def notify_run_failure(context: RunStatusSensorContext, notifier: Notifier):
        if not notifier.configured:
            return SkipReason(OFF)
        run = context.dagster_run
        return _send_all([
            run_failed(run.job_name, failed_steps(context), run.run_id, context.dagster_event.message),
            checks_failed(failed_checks(context), run.job_name, run.run_id),
        ], notifier, context)

    @run_status_sensor(
        run_status=DagsterRunStatus.SUCCESS, name="notify_run_success", default_status=DefaultSensorStatus.RUNNING,
        description=f"Notify ({VARIABLE}) of the books a run imported into ABS and of asset checks that failed.",
    )
    def notify_run_success(context: RunStatusSensorContext, notifier: Notifier):
        if not notifier.configured:
            return SkipReason(OFF)
        run = context.dagster_run
        return _send_all([
            books_imported(imported_titles(context), run.run_id),
            checks_failed(failed_checks(context), run.job_name, run.run_id),
        ], notifier, context)

    return [notify_run_failure, notify_run_success]
