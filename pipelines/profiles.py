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

from mamcrawler.snapshot_guard import DEFAULT_MAX_SHRINK
from mamcrawler.task_history import default_history_path
from mamcrawler.warehouse import default_warehouse_path
from resources.audible import AudibleProvider, ReplayAudibleProvider
from resources.audiobookshelf import AudiobookshelfResource, ReplayAudiobookshelfResource
from resources.audnexus import AudnexusProvider, ReplayAudnexusProvider
from resources.custom_provider import CustomProviders, CustomServerConfig, ReplayCustomProviders
from resources.enrichment import CONFIDENCE_LEVELS, EnrichmentSettings
from resources.google_books import GoogleBooksProvider, ReplayGoogleBooksProvider
from resources.hardcover import HardcoverProvider, ReplayHardcoverProvider
from resources.mam import MamResource, ReplayMamResource
from resources.notify import VARIABLE as NOTIFY_VARIABLE
from resources.notify import Notifier
from resources.openlibrary import OpenLibraryProvider, ReplayOpenLibraryProvider
from resources.profile import ProfileResource
from resources.qbittorrent import DemoQBittorrentResource, QBittorrentResource
from resources.settings import AccountOptions, AcquisitionOptions, CompletenessOptions, LibraryOptions, RetentionOptions
from resources.task_history import TaskHistoryResource
from resources.torznab import ReplayTorznabResource, TorznabIndexerConfig, TorznabResource
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


def _switch(env: Mapping[str, str], name: str) -> dict[str, str]:
    """Keyless providers are on unless `name=0`, which skips them with a line naming the switch."""
    return {"switched_off_by": f"{name}={env[name]}"} if name in env and not _flag(env, name) else {}


def enrichment_settings(env: Mapping[str, str]) -> EnrichmentSettings:
    level = env.get("MAMCRAWLER_WRITEBACK_MIN_CONFIDENCE", "HIGH").strip().upper()
    if level not in CONFIDENCE_LEVELS:
        raise ProfileError(f"MAMCRAWLER_WRITEBACK_MIN_CONFIDENCE must be one of {', '.join(CONFIDENCE_LEVELS)}, not {level!r}")
    return EnrichmentSettings(
        cache_ttl_days=float(env.get("MAMCRAWLER_CACHE_TTL_DAYS", "30")),
        writeback_enabled=_flag(env, "MAMCRAWLER_WRITEBACK"),
        writeback_min_confidence=level,
    )


def provider_weights(env: Mapping[str, str]) -> dict[str, float]:
    """`MAMCRAWLER_PROVIDER_WEIGHTS="google=1.0,hardcover=0.9,goodreads=0.8"`: consensus weights
    by provider name; providers not named keep their defaults (the seed system's)."""
    weights = {}
    for entry in filter(None, (e.strip() for e in env.get("MAMCRAWLER_PROVIDER_WEIGHTS", "").split(","))):
        name, _, value = entry.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise ProfileError(f"MAMCRAWLER_PROVIDER_WEIGHTS entries are name=number, not {entry!r}") from None
    return weights


def completeness_options(env: Mapping[str, str]) -> CompletenessOptions:
    ownership = env.get("MAMCRAWLER_OWNERSHIP_MIN_CONFIDENCE", "MEDIUM").strip().upper()
    if ownership not in CONFIDENCE_LEVELS:
        raise ProfileError(
            f"MAMCRAWLER_OWNERSHIP_MIN_CONFIDENCE must be one of {', '.join(CONFIDENCE_LEVELS)}, not {ownership!r}"
        )
    return CompletenessOptions(
        include_novellas=_flag(env, "MAMCRAWLER_INCLUDE_NOVELLAS"),
        language=env.get("MAMCRAWLER_LANGUAGE", "English"),
        follow_min_books=int(env.get("MAMCRAWLER_FOLLOW_MIN_BOOKS", "3")),
        ownership_min_confidence=ownership,
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
        weight = provider_weights(env).get(name.strip())
        servers.append(CustomServerConfig(name=name.strip(), url=url.strip(), auth=auth, weight=weight))
    return servers


def _list(env: Mapping[str, str], name: str, default: list[str]) -> list[str]:
    return [v.strip() for v in env[name].split(",") if v.strip()] if name in env else default


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(env.get(name, default))
    except ValueError:
        raise ProfileError(f"{name} must be a number, not {env[name]!r}") from None


def torznab_indexers(env: Mapping[str, str]) -> list[TorznabIndexerConfig]:
    """`MAMCRAWLER_TORZNAB="prowlarr-mam=http://host:9696/5/api;jackett=http://host:9117/api/v2.0/indexers/x/results/torznab/api"`;
    each indexer's API key in `TORZNAB_API_KEY_<NAME>`."""
    indexers = []
    for entry in filter(None, (e.strip() for e in env.get("MAMCRAWLER_TORZNAB", "").split(";"))):
        name, _, url = entry.partition("=")
        if not url:
            raise ProfileError(f"MAMCRAWLER_TORZNAB entries are name=url, not {entry!r}")
        key_var = "TORZNAB_API_KEY_" + "".join(c if c.isalnum() else "_" for c in name.strip()).upper()
        if key_var not in env:
            raise ProfileError(f"Torznab indexer {name.strip()!r} needs its API key in {key_var}")
        indexers.append(TorznabIndexerConfig(name=name.strip(), url=url.strip(), api_key=EnvVar(key_var)))
    return indexers


def acquisition_options(env: Mapping[str, str], demo: bool) -> AcquisitionOptions:
    default_indexers = ["mam"] if demo or "MAM_ID" in env or (default_warehouse_path().parent / "mam_id.cookie").exists() else []
    if demo or "MAMCRAWLER_TORZNAB" in env:
        default_indexers.append("torznab")
    return AcquisitionOptions(
        # The demo never sends anything, whatever the environment says.
        dry_run=True if demo else env.get("MAMCRAWLER_DRY_RUN", "1").strip().lower() not in ("0", "false", "no", "off"),
        indexers=_list(env, "MAMCRAWLER_INDEXERS", default_indexers),
        max_searches_per_run=int(_number(env, "MAMCRAWLER_MAX_SEARCHES_PER_RUN", 50)),
        max_new_per_run=int(_number(env, "MAMCRAWLER_MAX_NEW_PER_RUN", 5)),
        max_active=int(_number(env, "MAMCRAWLER_MAX_ACTIVE", 10)),
        formats=[f.lower() for f in _list(env, "MAMCRAWLER_FORMATS", ["m4b", "m4a", "mp3", "flac"])],
        languages=[lang.upper() for lang in _list(env, "MAMCRAWLER_RELEASE_LANGUAGES", ["ENG"])],
        min_seeders=int(_number(env, "MAMCRAWLER_MIN_SEEDERS", 1)),
        allow_abridged=_flag(env, "MAMCRAWLER_ALLOW_ABRIDGED"),
        freeleech_only=_flag(env, "MAMCRAWLER_FREELEECH_ONLY"),
        stall_after_s=_number(env, "MAMCRAWLER_STALL_HOURS", 12) * 3600,
        max_attempts=int(_number(env, "MAMCRAWLER_MAX_ATTEMPTS", 3)),
        retry_backoff_s=_number(env, "MAMCRAWLER_RETRY_BACKOFF_HOURS", 6) * 3600,
        library_dir=env.get("MAMCRAWLER_LIBRARY_DIR", ""),
        abs_library_id=env.get("MAMCRAWLER_IMPORT_LIBRARY_ID", ""),
        abs_library_folder=env.get("MAMCRAWLER_ABS_LIBRARY_FOLDER", ""),
        download_path_map=env.get("MAMCRAWLER_DOWNLOAD_PATH_MAP", ""),
        torrent_dir=env.get("MAMCRAWLER_TORRENT_DIR", ""),
        abs_settle_s=_number(env, "MAMCRAWLER_ABS_SETTLE_S", 15),
    )


def account_options(env: Mapping[str, str]) -> AccountOptions:
    return AccountOptions(
        ratio_warn_floor=_number(env, "MAMCRAWLER_RATIO_WARN_FLOOR", 2.0),
        ratio_hard_floor=_number(env, "MAMCRAWLER_RATIO_HARD_FLOOR", 1.2),
        unsatisfied_headroom=int(_number(env, "MAMCRAWLER_UNSATISFIED_HEADROOM", 5)),
        vip_warn_days=_number(env, "MAMCRAWLER_VIP_WARN_DAYS", 7),
    )


def retention_options(env: Mapping[str, str]) -> RetentionOptions:
    return RetentionOptions(
        corrections_days=_number(env, "MAMCRAWLER_RETENTION_CORRECTIONS_DAYS", 30),
        task_history_days=_number(env, "MAMCRAWLER_RETENTION_TASK_HISTORY_DAYS", 30),
        account_history_days=_number(env, "MAMCRAWLER_RETENTION_ACCOUNT_HISTORY_DAYS", 365),
        run_days=_number(env, "MAMCRAWLER_RETENTION_RUN_DAYS", 90),
    )


def build_resources(profile: Profile, env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    common = {
        "options": completeness_options(env),
        "acquisition": acquisition_options(env, demo=profile.name == "demo"),
        "account_options": account_options(env),
        "retention": retention_options(env),
        "warehouse": WarehouseResource(path=str(default_warehouse_path())),
        "task_history": TaskHistoryResource(path=str(default_history_path())),
        "profile": ProfileResource(name=profile.name, description=profile.reason),
        "enrichment": enrichment_settings(env),
        # The URLs hold tokens: an EnvVar, so the UI shows the variable's name, never its value.
        "notifier": Notifier(urls=EnvVar(NOTIFY_VARIABLE) if env.get(NOTIFY_VARIABLE, "").strip() else ""),
        "library_options": LibraryOptions(max_shrink=_number(env, "MAMCRAWLER_MAX_SHRINK", DEFAULT_MAX_SHRINK)),
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
            "mam": ReplayMamResource(),
            "torznab": ReplayTorznabResource(),
            # The demo is always a dry run, and this one refuses to log in anywhere.
            "qbittorrent": DemoQBittorrentResource(),
        }
    library_ids = [i.strip() for i in env.get("ABS_LIBRARY_IDS", "").split(",") if i.strip()]
    region = env.get("AUDIBLE_REGION", "us")
    weights = provider_weights(env)

    def weight(name: str) -> dict[str, float]:
        return {"weight": weights[name]} if name in weights else {}

    return common | {
        "abs_client": AudiobookshelfResource(
            base_url=EnvVar("ABS_URL"), api_key=EnvVar("ABS_API_KEY"), library_ids=library_ids
        ),
        "audible": AudibleProvider(region=region, **weight("audible"), **_switch(env, "MAMCRAWLER_AUDIBLE")),
        "audnexus": AudnexusProvider(region=region, **weight("audnexus"), **_switch(env, "MAMCRAWLER_AUDNEXUS")),
        "hardcover": HardcoverProvider(token=EnvVar("HARDCOVER_TOKEN") if "HARDCOVER_TOKEN" in env else "", **weight("hardcover")),
        "google_books": GoogleBooksProvider(
            api_key=EnvVar("GOOGLE_BOOKS_API_KEY") if "GOOGLE_BOOKS_API_KEY" in env else None,
            **weight("google"),
            **_switch(env, "MAMCRAWLER_GOOGLE_BOOKS"),
        ),
        "openlibrary": OpenLibraryProvider(**weight("openlibrary"), **_switch(env, "MAMCRAWLER_OPENLIBRARY")),
        "custom_providers": CustomProviders(servers=custom_servers(env)),
        "mam": MamResource(
            base_url=env.get("MAMCRAWLER_MAM_URL", "https://www.myanonamouse.net"),
            mam_id=EnvVar("MAM_ID") if "MAM_ID" in env else "",
            languages=[int(v) for v in _list(env, "MAMCRAWLER_MAM_LANGUAGES", ["1"])],
            categories=[int(v) for v in _list(env, "MAMCRAWLER_MAM_CATEGORIES", [])],
            min_interval_s=_number(env, "MAMCRAWLER_MAM_MIN_INTERVAL_S", 2.0),
            cookie_path=str(default_warehouse_path().parent / "mam_id.cookie"),
        ),
        "torznab": TorznabResource(indexers=torznab_indexers(env)),
        "qbittorrent": QBittorrentResource(
            url=env.get("QBITTORRENT_URL", "http://127.0.0.1:8080"),
            username=env.get("QBITTORRENT_USERNAME", "admin"),
            password=EnvVar("QBITTORRENT_PASSWORD") if "QBITTORRENT_PASSWORD" in env else "",
            category=env.get("MAMCRAWLER_QBITTORRENT_CATEGORY", "mamcrawler"),
            save_path=env.get("MAMCRAWLER_QBITTORRENT_SAVE_PATH", ""),
            # Shared by every run and the sensor: a wrong password is tried once an hour, not
            # once per process, so qBittorrent never bans this machine's IP.
            login_state_path=str(default_warehouse_path().parent / "qbittorrent_login.json"),
        ),
    }
