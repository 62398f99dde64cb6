"""The MAMcrawler code location."""

import os
from collections.abc import Mapping

from dagster import Definitions

from assets.checks import table_checks
from assets.completeness import missing_books, series_catalog
from assets.library import abs_library_items, library_books
from assets.metadata import abs_metadata_writeback, book_metadata, enriched_books
from pipelines.jobs import enrich_metadata, refresh_library, update_completeness
from pipelines.profiles import Profile, build_resources, resolve_profile
from schedules.library import build_library_refresh_schedule
from schedules.metadata import build_metadata_schedules
from sensors.abs_changes import build_abs_change_sensor


def build_definitions(profile: Profile, env: Mapping[str, str] = os.environ) -> Definitions:
    timezone = env.get("MAMCRAWLER_TIMEZONE", "UTC")
    return Definitions(
        assets=[
            abs_library_items, library_books, series_catalog, missing_books,
            book_metadata, enriched_books, abs_metadata_writeback,
        ],
        asset_checks=table_checks,
        jobs=[refresh_library, enrich_metadata, update_completeness],
        schedules=[
            build_library_refresh_schedule(refresh_library, cron=env.get("MAMCRAWLER_LIBRARY_CRON", "0 1 * * *"), timezone=timezone),
            *build_metadata_schedules(
                enrich_metadata,
                new_cron=env.get("MAMCRAWLER_METADATA_NEW_CRON", "30 4 * * 0"),
                full_cron=env.get("MAMCRAWLER_METADATA_FULL_CRON", "0 4 1 * *"),
                timezone=timezone,
            ),
        ],
        sensors=[build_abs_change_sensor(refresh_library)],
        resources=build_resources(profile, env),
    )


PROFILE = resolve_profile()
defs = build_definitions(PROFILE)
