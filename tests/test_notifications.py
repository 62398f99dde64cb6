"""Notifications: the messages, sending through Apprise to a loopback server, and the
run-status sensors on runs of a real (ephemeral) instance."""

import json
import logging
import threading

import httpx
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    DagsterEventType,
    DagsterInstance,
    Definitions,
    EnvVar,
    Failure,
    MaterializeResult,
    MetadataValue,
    SkipReason,
    asset,
    asset_check,
    build_run_status_sensor_context,
    define_asset_job,
)

from mamcrawler.notifications import (
    IMPORTED_TITLES,
    MAX_LINES,
    FailedCheck,
    Message,
    books_imported,
    checks_failed,
    first_line,
    run_failed,
)
from pipelines.definitions import build_definitions
from pipelines.profiles import Profile, build_resources
from resources.notify import Notifier, split_urls
from resources.secrets import SECRET_VARIABLES, scrub
from tests.servers import free_port, serve

TOKEN = "notify-token-6f1c2a9e"


class Inbox:
    """A loopback stand-in for a notification service: keeps each JSON body Apprise posts."""

    def __init__(self, status: int = 200) -> None:
        self.received: list[tuple[str, dict]] = []
        self.status = status
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.received.append((request.url.path, json.loads(request.content)))
        return httpx.Response(self.status, json={})


def json_url(base: str, path: str = f"/hook/{TOKEN}") -> str:
    return base.replace("http://", "json://", 1) + path


# --- messages, no Dagster ------------------------------------------------------------------


def test_a_failed_run_names_its_job_and_each_step_with_its_first_error_line():
    message = run_failed("search_and_queue", [("release_candidates", "MAM answered 403\nTraceback ...\n  line 3")], "abcdef0123456789")
    assert message.title == "MAMcrawler: search_and_queue failed"
    assert "1 step failed in run abcdef01" in message.body
    assert "release_candidates: MAM answered 403" in message.body and "Traceback" not in message.body
    before = run_failed("refresh_library", [], "r2", "the run worker crashed\nmore")
    assert "no step failed" in before.body and before.body.endswith("the run worker crashed")


def test_imported_books_are_listed_and_a_long_list_says_how_many_it_left_out():
    assert books_imported([], "r") is None
    one = books_imported(["Mistborn"], "run12345678")
    assert one.title == "MAMcrawler: 1 book imported into Audiobookshelf" and "- Mistborn" in one.body
    many = books_imported([f"Book {i}" for i in range(MAX_LINES + 3)], "r")
    assert many.title.startswith(f"MAMcrawler: {MAX_LINES + 3} books imported")
    assert f"Book {MAX_LINES - 1}" in many.body and f"Book {MAX_LINES}" not in many.body
    assert "… and 3 more books" in many.body


def test_failed_checks_give_asset_check_severity_and_description():
    assert checks_failed([], "j", "r") is None
    message = checks_failed([FailedCheck("mam_user_status", "ratio_floor", "ratio 1.1 is below the floor 1.2", "ERROR")], "refresh_account", "r")
    assert message.title == "MAMcrawler: 1 check failed in refresh_account"
    assert "mam_user_status › ratio_floor (ERROR): ratio 1.1 is below the floor 1.2" in message.body
    assert first_line("x" * 500, limit=20) == "x" * 19 + "…"


# --- sending ----------------------------------------------------------------------------


def test_a_message_reaches_every_configured_url_with_its_title_and_body():
    inbox = Inbox()
    with serve(inbox) as base:
        notifier = Notifier(urls=f"{json_url(base, '/a')}, {json_url(base, '/b')}")
        assert notifier.send(Message("Title here", "line one\nline two"))
    assert sorted(path for path, _ in inbox.received) == ["/a", "/b"]
    assert {(body["title"], body["message"]) for _, body in inbox.received} == {("Title here", "line one\nline two")}


def test_an_unreachable_or_refusing_service_does_not_raise_and_logs_one_scrubbed_line(caplog):
    away = Notifier(urls=json_url(f"http://127.0.0.1:{free_port()}"), timeout_s=2)
    with caplog.at_level(logging.DEBUG):
        assert away.send(Message("run failed", "body")) is False
    warnings = [r for r in caplog.records if r.name == "mamcrawler.notify"]
    assert len(warnings) == 1 and "not sent" in warnings[0].getMessage() and "json" in warnings[0].getMessage()
    assert all(TOKEN not in r.getMessage() for r in caplog.records)  # Apprise's and urllib3's lines too
    assert TOKEN not in scrub(f"an error quoting {TOKEN}")
    caplog.clear()
    with serve(Inbox(status=500)) as base, caplog.at_level(logging.WARNING):
        assert Notifier(urls=json_url(base)).send(Message("t", "b")) is False
    assert [r.name for r in caplog.records if r.name == "mamcrawler.notify"] == ["mamcrawler.notify"]
    assert Notifier(urls="nosuchscheme://x").send(Message("t", "b")) is False


def test_urls_split_on_commas_and_spaces_and_the_variable_is_a_secret():
    assert split_urls(" ntfy://a, json://b\njson://c ") == ["ntfy://a", "json://b", "json://c"]
    assert "MAMCRAWLER_NOTIFY_URLS" in SECRET_VARIABLES
    assert not build_resources(Profile("demo", "t"), env={})["notifier"].configured
    production = build_resources(Profile("production", "t"), env={"MAMCRAWLER_NOTIFY_URLS": "ntfy://topic"})["notifier"]
    assert isinstance(production.urls, EnvVar) and production.urls.env_var_name == "MAMCRAWLER_NOTIFY_URLS"  # the UI shows the name


# --- the sensors on real runs ------------------------------------------------------------


@asset(name="imported_books")
def _imported():
    return MaterializeResult(metadata={IMPORTED_TITLES: MetadataValue.json(["Mistborn", "The Way of Kings"])})


@asset_check(asset=_imported, name="every_file_readable")
def _unreadable():
    return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN, description="2 files could not be read")


@asset(name="release_candidates")
def _broken():
    raise Failure(description="no book could be searched: MAM answered 403")


def _run(instance, job_name, assets, checks=()):
    defs = Definitions(assets=assets, asset_checks=list(checks), jobs=[define_asset_job(job_name)])
    return defs.resolve_job_def(job_name).execute_in_process(instance=instance, raise_on_error=False)


def _tick(instance, sensor_name, run_id, notifier):
    sensor = build_definitions(Profile("demo", "t"), env={}).resolve_sensor_def(sensor_name)
    event_type = DagsterEventType.RUN_SUCCESS if sensor_name.endswith("success") else DagsterEventType.RUN_FAILURE
    event = instance.all_logs(run_id, of_type=event_type)[0].dagster_event
    context = build_run_status_sensor_context(
        sensor_name=sensor_name, dagster_event=event, dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run_id), resources={"notifier": notifier},
    )
    return sensor(context)


def test_the_sensors_notify_a_failed_run_imported_books_and_a_failed_check():
    inbox = Inbox()
    with DagsterInstance.ephemeral() as instance, serve(inbox) as base:
        failed = _run(instance, "search_and_queue", [_broken])
        imported = _run(instance, "import_downloads", [_imported], [_unreadable])
        assert not failed.success and imported.success
        notifier = Notifier(urls=json_url(base))
        on_failure = _tick(instance, "notify_run_failure", failed.run_id, notifier)
        on_success = _tick(instance, "notify_run_success", imported.run_id, notifier)
        off = _tick(instance, "notify_run_failure", failed.run_id, Notifier())
        away = Notifier(urls=json_url(f"http://127.0.0.1:{free_port()}"), timeout_s=2)
        unsent = _tick(instance, "notify_run_success", imported.run_id, away)  # the tick does not fail
    assert "0 of 2 notification(s) sent" in unsent.skip_message and TOKEN not in unsent.skip_message
    assert "1 of 1 notification(s) sent" in on_failure.skip_message
    assert "2 of 2 notification(s) sent" in on_success.skip_message
    assert isinstance(off, SkipReason) and "MAMCRAWLER_NOTIFY_URLS is not set" in off.skip_message
    received = {body["title"]: body["message"] for _, body in inbox.received}
    assert len(inbox.received) == 3
    assert "release_candidates: no book could be searched: MAM answered 403" in received["MAMcrawler: search_and_queue failed"]
    books = received["MAMcrawler: 2 books imported into Audiobookshelf"]
    assert "- Mistborn" in books and "- The Way of Kings" in books
    assert "imported_books › every_file_readable (WARN): 2 files could not be read" in received["MAMcrawler: 1 check failed in import_downloads"]
