"""`mamcrawler doctor`: every preflight check the configured profile allows, as Findings.

Each service is asked once with the profile's own resources (so the demo asks the replays);
a service that cannot be asked is one FAIL line carrying its scrubbed error, never a traceback.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mamcrawler.preflight import (
    Finding,
    abs_findings,
    clock_findings,
    disk_findings,
    mam_findings,
    qbittorrent_findings,
    unavailable,
    warn,
)
from mamcrawler.warehouse import default_warehouse_path
from resources.audiobookshelf import AbsError
from resources.mam import MamError, MamResponseError
from resources.qbittorrent import DemoQBittorrentResource, QBittorrentError

DEMO_REPLAYED = "ABS and MAM answer from recorded replays; qBittorrent is never contacted"


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(env.get(name, default))
    except ValueError:
        return default


def _initialised(resource: Any) -> Any:
    """The resource with its EnvVar fields resolved (as Dagster does at run time)."""
    return resource.process_config_and_initialize()


def abs_checks(resource: Any, now: datetime, max_skew_s: float) -> list[Finding]:
    try:
        libraries, date = _initialised(resource).libraries_and_date()
    except AbsError as exc:
        return [unavailable("abs.key", str(exc), "check ABS_URL and ABS_API_KEY")]
    return abs_findings(libraries, list(resource.library_ids)) + clock_findings("ABS", date, now, max_skew_s)


def qbittorrent_checks(resource: Any, acquisition: Any, env: Mapping[str, str], min_free_gib: float) -> list[Finding]:
    if isinstance(resource, DemoQBittorrentResource):
        return [warn("qbittorrent", "not checked: the demo profile never contacts qBittorrent",
                     "set QBITTORRENT_URL and QBITTORRENT_PASSWORD in the production profile")]
    qbit = _initialised(resource)
    try:
        preferences, categories = qbit.preferences()
    except QBittorrentError as exc:
        return [unavailable("qbittorrent", str(exc), "check QBITTORRENT_URL, QBITTORRENT_USERNAME and QBITTORRENT_PASSWORD")]
    found = qbittorrent_findings(
        preferences, categories, qbit.category, qbit.save_path, env.get("MAMCRAWLER_QBITTORRENT_INTERFACE", "")
    )
    default = str(preferences.get("save_path") or "")
    category_path = str((categories.get(qbit.category) or {}).get("savePath") or "")
    download = acquisition.local_path(category_path or qbit.save_path or f"{default.rstrip('/')}/{qbit.category}")
    if not os.path.isdir(download):  # qBittorrent makes the category's folder at its first download
        download = acquisition.local_path(default)
    return found + disk_findings("downloads", download, min_free_gib, "MAMCRAWLER_DOWNLOAD_PATH_MAP")


def mam_checks(resource: Any, env: Mapping[str, str], now: datetime, max_skew_s: float) -> list[Finding]:
    mam = _initialised(resource)
    if not (mam.mam_id or mam.saved_cookie()):
        return [warn("mam.cookie", "no MAM session configured: MAM is not searched",
                     "set MAM_ID, or run `mamcrawler mam-login --email ...`")]
    ip_info: dict[str, Any] | None = None
    date = None
    try:
        with mam.session() as session:
            status = session.account_status()
            # A cookie that works is the finding that matters; no IP answer is only a warning.
            with contextlib.suppress(MamResponseError):
                ip_info, date = session.ip_info()
    except MamError as exc:
        return [unavailable("mam.cookie", str(exc))]
    found = mam_findings(status.username, status.classname, ip_info, env.get("MAMCRAWLER_MAM_SESSION_IP", ""))
    return found + clock_findings("MAM", date, now, max_skew_s)


def run_checks(resources: Mapping[str, Any], env: Mapping[str, str] = os.environ, now: datetime | None = None) -> list[Finding]:
    """Every check, in the order a person fixes them: ABS, qBittorrent, MAM, disks, clock."""
    now = now or datetime.now(UTC)
    min_free_gib = _number(env, "MAMCRAWLER_MIN_FREE_GIB", 10.0)
    max_skew_s = _number(env, "MAMCRAWLER_MAX_CLOCK_SKEW_S", 30.0)
    acquisition = resources["acquisition"]
    found = abs_checks(resources["abs_client"], now, max_skew_s)
    found += qbittorrent_checks(resources["qbittorrent"], acquisition, env, min_free_gib)
    found += mam_checks(resources["mam"], env, now, max_skew_s)
    found += disk_findings("library", acquisition.library_dir, min_free_gib, "MAMCRAWLER_LIBRARY_DIR")
    found += disk_findings("data", str(default_warehouse_path().parent), min_free_gib, "MAMCRAWLER_WAREHOUSE", created_on_use=True)
    return found
