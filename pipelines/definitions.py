"""The MAMcrawler code location."""

import os
from collections.abc import Mapping

from dagster import Definitions, in_process_executor

from assets.account import account_checks, mam_user_status
from assets.acquisition import download_requests, imported_books, release_candidates
from assets.checks import table_checks
from assets.completeness import author_catalog, completeness, edit_completeness_overrides, series_catalog
from assets.library import abs_library_items, library_books
from assets.metadata import abs_metadata_writeback, book_metadata, enriched_books
from assets.preflight import preflight
from pipelines.jobs import (
    apply_retention,
    enrich_metadata,
    import_downloads,
    refresh_account,
    refresh_author_catalog,
    refresh_library,
    refresh_series_catalog,
    search_and_queue,
    update_completeness,
)
from pipelines.profiles import Profile, build_resources, resolve_profile
from schedules.account import build_account_schedule
from schedules.acquisition import build_acquisition_schedule
from schedules.completeness import build_catalog_schedules
from schedules.library import build_library_refresh_schedule
from schedules.metadata import build_metadata_schedules
from schedules.retention import build_retention_schedule
from sensors.abs_changes import build_abs_change_sensor
from sensors.notifications import build_notification_sensors
from sensors.qbittorrent import build_download_sensor
from sensors.task_history import build_task_history_sensors


def build_definitions(profile: Profile, env: Mapping[str, str] = os.environ) -> Definitions:
    timezone = env.get("MAMCRAWLER_TIMEZONE", "UTC")
    return Definitions(
        assets=[
            abs_library_items, library_books, series_catalog, author_catalog, completeness,
            book_metadata, enriched_books, abs_metadata_writeback,
            release_candidates, download_requests, imported_books, mam_user_status,
        ],
        asset_checks=[*table_checks, *account_checks, preflight],
        jobs=[
            refresh_library, enrich_metadata, update_completeness, refresh_series_catalog, refresh_author_catalog,
            edit_completeness_overrides, search_and_queue, import_downloads, refresh_account, apply_retention,
        ],
        schedules=[
            build_library_refresh_schedule(refresh_library, cron=env.get("MAMCRAWLER_LIBRARY_CRON", "0 1 * * *"), timezone=timezone),
            *build_catalog_schedules(
                refresh_series_catalog,
                refresh_author_catalog,
                series_cron=env.get("MAMCRAWLER_SERIES_CRON", "0 3 2 * *"),
                author_cron=env.get("MAMCRAWLER_AUTHOR_CRON", "0 3 3 * *"),
                timezone=timezone,
            ),
            *build_metadata_schedules(
                enrich_metadata,
                new_cron=env.get("MAMCRAWLER_METADATA_NEW_CRON", "30 4 * * 0"),
                full_cron=env.get("MAMCRAWLER_METADATA_FULL_CRON", "0 4 1 * *"),
                timezone=timezone,
            ),
            build_acquisition_schedule(search_and_queue, cron=env.get("MAMCRAWLER_MAM_CRON", "0 2 * * *"), timezone=timezone),
            build_account_schedule(refresh_account, cron=env.get("MAMCRAWLER_ACCOUNT_CRON", "30 1 * * *"), timezone=timezone),
            build_retention_schedule(apply_retention, cron=env.get("MAMCRAWLER_RETENTION_CRON", "0 4 * * *"), timezone=timezone),
        ],
        sensors=[
            build_abs_change_sensor(refresh_library),
            build_download_sensor(import_downloads),
            *build_notification_sensors(),
            *build_task_history_sensors(
                [refresh_library, enrich_metadata, refresh_series_catalog, refresh_author_catalog, search_and_queue, refresh_account,
                 apply_retention]
            ),
        ],
        resources=build_resources(profile, env),
        # Every step waits for a one-slot pool anyway; a process per step (the multiprocess
        # default) only adds seconds of imports per step to every run.
        executor=in_process_executor,
    )


PROFILE = resolve_profile()
defs = build_definitions(PROFILE)
