"""The `preflight` check: `mamcrawler doctor`'s findings on every account refresh, so the UI
shows when a service drifted from what a private tracker needs (DHT back on, VPN unbound)."""

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from assets.account import mam_user_status
from assets.acquisition import INDEXER_POOL
from mamcrawler.preflight import Finding
from pipelines.doctor import run_checks
from resources.audiobookshelf import AudiobookshelfResource
from resources.mam import MamResource
from resources.qbittorrent import QBittorrentResource
from resources.settings import AcquisitionOptions


def preflight_result(findings: list[Finding]) -> AssetCheckResult:
    """Failed (ERROR) on any FAIL finding; warnings are listed but pass."""
    fails = [f for f in findings if f.severity == "fail"]
    warns = [f for f in findings if f.severity == "warn"]
    summary = f"{len(fails)} failures, {len(warns)} warnings, {len(findings) - len(fails) - len(warns)} ok"
    listed = "\n".join(f"- {f.line()}" for f in findings)
    return AssetCheckResult(
        passed=not fails,
        severity=AssetCheckSeverity.ERROR if fails else AssetCheckSeverity.WARN,
        description=summary if not fails else f"{summary}: " + "; ".join(f.check for f in fails),
        metadata={"findings": MetadataValue.md(listed), "failures": len(fails), "warnings": len(warns)},
    )


# Blocking like every check (it runs after the account is written, and nothing is downstream of
# it): a FAIL fails the refresh_account run, so a broken setting shows as a failed run.
@asset_check(asset=mam_user_status, blocking=True, pool=INDEXER_POOL)
def preflight(
    abs_client: AudiobookshelfResource, qbittorrent: QBittorrentResource, mam: MamResource, acquisition: AcquisitionOptions
) -> AssetCheckResult:
    """ABS key and libraries, qBittorrent's private-tracker settings and category, the MAM
    cookie and IP, free disk space and clock skew: each failure says what to change and where."""
    resources = {"abs_client": abs_client, "qbittorrent": qbittorrent, "mam": mam, "acquisition": acquisition}
    return preflight_result(run_checks(resources))
