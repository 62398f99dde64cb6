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
from resources.audible import AudibleProvider, ReplayAudibleProvider
from resources.audiobookshelf import AudiobookshelfResource, ReplayAudiobookshelfResource
from resources.audnexus import AudnexusProvider, ReplayAudnexusProvider
from resources.custom_provider import CustomProviders, CustomServerConfig, ReplayCustomProviders
from resources.enrichment import CONFIDENCE_LEVELS, EnrichmentSettings
from resources.google_books import GoogleBooksProvider, ReplayGoogleBooksProvider
from resources.hardcover import HardcoverProvider, ReplayHardcoverProvider
from resources.openlibrary import OpenLibraryProvider, ReplayOpenLibraryProvider
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


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def enrichment_settings(env: Mapping[str, str]) -> EnrichmentSettings:
    level = env.get("MAMCRAWLER_WRITEBACK_MIN_CONFIDENCE", "HIGH").strip().upper()
    if level not in CONFIDENCE_LEVELS:
        raise ProfileError(f"MAMCRAWLER_WRITEBACK_MIN_CONFIDENCE must be one of {', '.join(CONFIDENCE_LEVELS)}, not {level!r}")
    return EnrichmentSettings(
        cache_ttl_days=float(env.get("MAMCRAWLER_CACHE_TTL_DAYS", "30")),
        writeback_enabled=_flag(env, "MAMCRAWLER_WRITEBACK"),
        writeback_min_confidence=level,
    )


def custom_servers(env: Mapping[str, str]) -> list[CustomServerConfig]:
    """`MAMCRAWLER_CUSTOM_PROVIDERS="goodreads=https://host/goodreads;kindle=https://host/kindle/us"`;
    each server's Authorization value, if any, in `CUSTOM_PROVIDER_AUTH_<NAME>`."""
    servers = []
    for entry in filter(None, (e.strip() for e in env.get("MAMCRAWLER_CUSTOM_PROVIDERS", "").split(";"))):
        name, _, url = entry.partition("=")
        if not url:
            raise ProfileError(f"MAMCRAWLER_CUSTOM_PROVIDERS entries are name=url, not {entry!r}")
        auth_var = "CUSTOM_PROVIDER_AUTH_" + "".join(c if c.isalnum() else "_" for c in name.strip()).upper()
        auth = EnvVar(auth_var) if auth_var in env else ""
        servers.append(CustomServerConfig(name=name.strip(), url=url.strip(), auth=auth))
    return servers


def build_resources(profile: Profile, env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    common = {
        "warehouse": WarehouseResource(path=str(default_warehouse_path())),
        "profile": ProfileResource(name=profile.name, description=profile.reason),
        "enrichment": enrichment_settings(env),
    }
    if profile.name == "demo":
        return common | {
            "abs_client": ReplayAudiobookshelfResource(),
            "audible": ReplayAudibleProvider(),
            "audnexus": ReplayAudnexusProvider(),
            "hardcover": ReplayHardcoverProvider(),
            "google_books": ReplayGoogleBooksProvider(),
            "openlibrary": ReplayOpenLibraryProvider(),
            "custom_providers": ReplayCustomProviders(),
        }
    library_ids = [i.strip() for i in env.get("ABS_LIBRARY_IDS", "").split(",") if i.strip()]
    region = env.get("AUDIBLE_REGION", "us")
    off = {"base_url": ""}  # a provider without a URL is skipped with a clear line
    return common | {
        "abs_client": AudiobookshelfResource(
            base_url=EnvVar("ABS_URL"), api_key=EnvVar("ABS_API_KEY"), library_ids=library_ids
        ),
        "audible": AudibleProvider(region=region, **({} if _flag(env, "MAMCRAWLER_AUDIBLE") or "MAMCRAWLER_AUDIBLE" not in env else off)),
        "audnexus": AudnexusProvider(region=region, **({} if _flag(env, "MAMCRAWLER_AUDNEXUS") or "MAMCRAWLER_AUDNEXUS" not in env else off)),
        "hardcover": HardcoverProvider(token=EnvVar("HARDCOVER_TOKEN") if "HARDCOVER_TOKEN" in env else ""),
        "google_books": GoogleBooksProvider(
            api_key=EnvVar("GOOGLE_BOOKS_API_KEY") if "GOOGLE_BOOKS_API_KEY" in env else None,
            **({} if _flag(env, "MAMCRAWLER_GOOGLE_BOOKS") or "MAMCRAWLER_GOOGLE_BOOKS" not in env else off),
        ),
        "openlibrary": OpenLibraryProvider(**({} if _flag(env, "MAMCRAWLER_OPENLIBRARY") or "MAMCRAWLER_OPENLIBRARY" not in env else off)),
        "custom_providers": CustomProviders(servers=custom_servers(env)),
    }
