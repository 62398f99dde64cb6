"""Snapshot of the asset graph and of the environment switching."""

import subprocess
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DefaultSensorStatus, EnvVar

from mamcrawler.gaps import MISSING_SCHEMA
from mamcrawler.schemas import MISSING_BOOKS, validate
from pipelines.definitions import build_definitions
from pipelines.profiles import Profile, ProfileError, resolve_profile
from resources.audiobookshelf import AudiobookshelfResource, ReplayAudiobookshelfResource

ROOT = Path(__file__).resolve().parent.parent

GRAPH = {
    "abs_library_items": ("library", set()),
    "library_books": ("library", {"abs_library_items"}),
    "series_catalog": ("completeness", {"library_books", "book_metadata"}),
    "author_catalog": ("completeness", {"library_books", "book_metadata"}),
    "missing_books": ("completeness", {"library_books", "series_catalog", "author_catalog"}),
    "series_completeness": ("completeness", {"library_books", "series_catalog"}),
    "author_completeness": ("completeness", {"library_books", "author_catalog"}),
    "upcoming_books": ("completeness", {"series_catalog"}),
    "book_metadata": ("metadata", {"library_books"}),
    "enriched_books": ("metadata", {"book_metadata"}),
    "abs_metadata_writeback": ("metadata", {"enriched_books"}),
    "release_candidates": ("acquisition", {"missing_books", "series_catalog"}),
    "download_requests": ("acquisition", {"missing_books", "release_candidates"}),
    "imported_books": ("acquisition", {"download_requests"}),
    "mam_user_status": ("account", set()),
}
CHECKS = {
    ("abs_library_items", "abs_library_items_contract"),
    ("library_books", "library_books_contract"),
    ("missing_books", "missing_books_contract"),
    ("missing_books", "no_owned_book_is_missing"),
    ("missing_books", "no_missing_book_matches_an_owned_item"),
    ("download_requests", "no_release_sent_for_an_owned_book"),
    ("missing_books", "one_row_per_series_position"),
    ("missing_books", "every_row_has_a_title_or_says_why"),
    ("book_metadata", "book_metadata_contract"),
    ("enriched_books", "enriched_books_contract"),
    ("release_candidates", "release_candidates_contract"),
    ("download_requests", "download_requests_contract"),
    ("download_requests", "no_info_hash_requested_twice"),
    ("download_requests", "every_queued_book_has_a_download"),
    ("imported_books", "imported_books_contract"),
    ("mam_user_status", "mam_user_status_contract"),
    ("mam_user_status", "ratio_above_warn_floor"),
    ("mam_user_status", "ratio_above_hard_floor"),
    ("mam_user_status", "unsatisfied_below_class_limit"),
    ("mam_user_status", "vip_not_ending_soon"),
    ("mam_user_status", "preflight"),
}


def test_asset_graph_snapshot():
    defs = build_definitions(Profile("demo", "test"))
    graph = defs.resolve_asset_graph()
    seen = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        seen[key.to_user_string()] = (node.group_name, {p.to_user_string() for p in node.parent_keys})
    assert seen == GRAPH
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks == CHECKS
    for key in graph.asset_check_keys:
        assert graph.get(key).blocking, f"{key.name} must block downstream assets"
    assert graph.get(AssetKey("missing_books")).pools == {"warehouse"}
    assert graph.get(AssetKey("book_metadata")).pools == {"metadata_providers"}
    assert graph.get(AssetKey("release_candidates")).pools == {"indexers"}
    assert graph.get(AssetKey("mam_user_status")).pools == {"indexers"}  # MAM's pacing holds across runs
    assert graph.get(AssetKey("book_metadata")).partitions_def.get_partition_keys() == [f"{i:02d}" for i in range(16)]


def test_jobs_schedules_sensors():
    defs = build_definitions(Profile("demo", "test"), env={"MAMCRAWLER_LIBRARY_CRON": "30 2 * * *"})
    assert defs.resolve_job_def("refresh_library") is not None
    schedule = defs.resolve_schedule_def("library_refresh_nightly")
    assert schedule.cron_schedule == "30 2 * * *" and schedule.execution_timezone == "UTC"
    assert defs.resolve_sensor_def("abs_library_changes") is not None
    assert defs.resolve_schedule_def("metadata_new").cron_schedule == "30 4 * * 0"
    assert defs.resolve_schedule_def("metadata_full").cron_schedule == "0 4 1 * *"
    assert defs.resolve_schedule_def("series_monthly").cron_schedule == "0 3 2 * *"
    assert defs.resolve_schedule_def("author_monthly").cron_schedule == "0 3 3 * *"
    assert defs.resolve_job_def("edit_completeness_overrides") is not None
    task_mam = defs.resolve_schedule_def("task_mam_daily")
    assert task_mam.cron_schedule == "0 2 * * *" and task_mam.job_name == "search_and_queue"
    assert defs.resolve_sensor_def("qbittorrent_downloads").job_name == "import_downloads"
    account = defs.resolve_schedule_def("account_daily")
    assert account.cron_schedule == "30 1 * * *" and account.job_name == "refresh_account"
    retention = defs.resolve_schedule_def("retention_nightly")
    assert retention.cron_schedule == "0 4 * * *" and retention.job_name == "apply_retention"
    [prune] = defs.resolve_job_def("apply_retention").nodes
    assert prune.name == "prune_old_records" and prune.definition.pool == "warehouse"  # never beside a warehouse writer
    assert {s.name for s in defs.sensors} == {
        "abs_library_changes", "qbittorrent_downloads", "task_history_success", "task_history_failure", "task_history_canceled",
        "notify_run_failure", "notify_run_success",
    }
    assert defs.resolve_sensor_def("task_history_failure").default_status == DefaultSensorStatus.RUNNING


def test_profiles_resolve_in_one_place():
    assert resolve_profile({}).name == "demo"
    assert resolve_profile({"ABS_URL": "http://127.0.0.1:13378"}).name == "production"
    assert resolve_profile({"ABS_URL": "x", "MAMCRAWLER_PROFILE": "demo"}).name == "demo"
    with pytest.raises(ProfileError, match="demo, production"):
        resolve_profile({"MAMCRAWLER_PROFILE": "staging"})


def test_production_secrets_are_env_vars_not_values():
    defs = build_definitions(Profile("production", "test"), env={"ABS_LIBRARY_IDS": "a, b"})
    abs_client = defs.resources["abs_client"]
    assert type(abs_client) is AudiobookshelfResource
    assert abs_client.api_key == EnvVar("ABS_API_KEY") and abs_client.base_url == EnvVar("ABS_URL")
    assert abs_client.library_ids == ["a", "b"]
    assert isinstance(build_definitions(Profile("demo", "t")).resources["abs_client"], ReplayAudiobookshelfResource)


def test_contract_catches_bad_missing_books():
    row = dict.fromkeys(MISSING_SCHEMA) | {
        "missing_id": "a", "series_id": "s", "series": "S", "position": 3.0, "reason": "series_gap",
        "priority": 1, "status": "identified", "line": "main", "title": "T",
    }
    bad = [row, row | {"reason": "gap", "priority": 0, "status": "lost"}]
    result = validate(MISSING_BOOKS, pl.DataFrame(bad, schema=MISSING_SCHEMA))
    assert not result.passed and result.duplicate_keys == 1
    assert set(result.failures["column"]) == {"reason", "priority", "status"}


def test_dg_check_defs_passes():
    out = subprocess.run([str(ROOT / ".venv/bin/dg"), "check", "defs"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All definitions loaded successfully" in out.stdout + out.stderr


def test_production_provider_settings_from_the_environment():
    env = {
        "MAMCRAWLER_PROVIDER_WEIGHTS": "hardcover=0.5,goodreads=0.7",
        "MAMCRAWLER_CUSTOM_PROVIDERS": "goodreads=http://127.0.0.1:9/goodreads",
        "CUSTOM_PROVIDER_AUTH_GOODREADS": "secret-auth",
        "MAMCRAWLER_OPENLIBRARY": "0",
        "HARDCOVER_TOKEN": "secret-token",
    }
    resources = build_definitions(Profile("production", "test"), env=env).resources
    assert resources["hardcover"].weight == 0.5 and resources["hardcover"].token == EnvVar("HARDCOVER_TOKEN")
    assert not resources["openlibrary"].enabled and resources["audible"].enabled
    # Switched off is said as such, not as a missing URL.
    assert resources["openlibrary"].disabled_reason == "openlibrary: switched off (MAMCRAWLER_OPENLIBRARY=0), skipped"
    server = resources["custom_providers"].servers[0]
    assert (server.name, server.weight, server.auth) == ("goodreads", 0.7, EnvVar("CUSTOM_PROVIDER_AUTH_GOODREADS"))
    assert not build_definitions(Profile("production", "test"), env={}).resources["hardcover"].enabled
    with pytest.raises(ProfileError, match="name=number"):
        build_definitions(Profile("production", "test"), env={"MAMCRAWLER_PROVIDER_WEIGHTS": "google=lots"})
