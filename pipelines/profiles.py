"""The one place that switches between the demo and the production environment.

`demo` runs the whole graph offline on the bundled sample library (the real ABS
client against recorded ABS 2.36.0 responses); `production` reads the services named
by environment variables. Secrets are `EnvVar`s, resolved by Dagster at run time, so
they never appear in run config, the UI or logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dagster import EnvVar

from mamcrawler.warehouse import default_warehouse_path
from resources.audiobookshelf import AudiobookshelfResource, ReplayAudiobookshelfResource
from resources.profile import ProfileResource
from resources.warehouse import WarehouseResource

PROFILES = ("demo", "production")


class ProfileError(ValueError):
    pass


@dataclass(frozen=True)
class Profile:
    name: str
    reason: str


def resolve_profile(env: Mapping[str, str] = os.environ) -> Profile:
    explicit = env.get("MAMCRAWLER_PROFILE", "").strip().lower()
    if explicit:
        if explicit not in PROFILES:
            raise ProfileError(f"MAMCRAWLER_PROFILE must be one of {', '.join(PROFILES)}, not {explicit!r}")
        return Profile(explicit, "MAMCRAWLER_PROFILE is set")
    if env.get("ABS_URL"):
        return Profile("production", "ABS_URL is set")
    return Profile("demo", "no ABS_URL configured: using the bundled sample library")


def build_resources(profile: Profile, env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    warehouse = WarehouseResource(path=str(default_warehouse_path()))
    if profile.name == "demo":
        return {
            "abs_client": ReplayAudiobookshelfResource(),
            "warehouse": warehouse,
            "profile": ProfileResource(name="demo", description=profile.reason),
        }
    library_ids = [i.strip() for i in env.get("ABS_LIBRARY_IDS", "").split(",") if i.strip()]
    return {
        "abs_client": AudiobookshelfResource(
            base_url=EnvVar("ABS_URL"), api_key=EnvVar("ABS_API_KEY"), library_ids=library_ids
        ),
        "warehouse": warehouse,
        "profile": ProfileResource(name="production", description=profile.reason),
    }
