"""Jobs: what a person or a schedule runs."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

refresh_library = define_asset_job(
    "refresh_library",
    selection=AssetSelection.groups("library", "completeness"),
    description="The main job: snapshot ABS, normalise the books, list the missing ones.",
)
