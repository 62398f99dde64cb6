"""Group `account`: the MAM account's ratio, points and limits, now and over time, and the
checks that say when downloading would cost more than the account can give."""

import math
from datetime import UTC, datetime

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from assets.acquisition import INDEXER_POOL
from assets.presentation import markdown_table, table_metadata
from mamcrawler import account
from resources.mam import MamError, MamResource
from resources.profile import ProfileResource
from resources.settings import AccountOptions
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

CURRENT = "mam_user_status"
HISTORY = "mam_user_status_history"


def _now() -> datetime:
    return datetime.now(UTC)


@asset(group_name="account", pool=INDEXER_POOL, kinds={"duckdb"})
def mam_user_status(
    context: AssetExecutionContext, warehouse: WarehouseResource, profile: ProfileResource, mam: MamResource
) -> MaterializeResult:
    """The MAM account as `/jsonLoad.php?snatch_summary` tells it: class, ratio, bytes up and
    down, bonus points, wedges, VIP end, unsatisfied torrents and their limit, hit-and-runs.
    One row; each materialisation also appends it to `mam_user_status_history`, written in the
    same transaction, so the ratio and the points can be followed over time."""
    try:
        with mam.session() as session:
            status = session.account_status()
    except MamError as exc:
        raise Failure(description=f"MAM account not read: {exc}") from None
    store = warehouse.get()
    current = account.status_frame([status.row(_now())])
    previous = store.read_optional(HISTORY)
    history = current if previous is None else pl.concat([previous, current], how="diagonal_relaxed")
    store.write_tables({CURRENT: current, HISTORY: history})
    line = account.summary(status)
    context.log.info(line)
    figures = {
        "ratio": status.ratio if status.ratio is not None and math.isfinite(status.ratio) else None,
        "bonus_points": status.seedbonus,
        "freeleech_wedges": status.wedges,
        "unsatisfied_torrents": status.unsatisfied,
        "unsatisfied_limit": status.unsatisfied_limit,
        "hit_and_runs": status.hit_and_runs,
        "uploaded_gib": None if status.uploaded_bytes is None else round(status.uploaded_bytes / 2**30, 3),
        "downloaded_gib": None if status.downloaded_bytes is None else round(status.downloaded_bytes / 2**30, 3),
    }
    return MaterializeResult(
        metadata={
            # No preview: the row holds the user name, which the UI need not show.
            **{k: v for k, v in table_metadata(current, profile).items() if k != "preview"},
            "summary": line,
            **{k: v for k, v in figures.items() if v is not None},
            "history_rows": history.height,
            "history": MetadataValue.md(markdown_table(
                history.sort("checked_at", descending=True).select("checked_at", "classname", "ratio", "seedbonus", "unsatisfied"),
                limit=10,
            )),
            "unreadable_fields": len(status.unreadable),
        }
    )


def _status(warehouse: WarehouseResource) -> account.AccountStatus:
    return account.status_from_row(warehouse.get().read_table(CURRENT).row(0, named=True))


def _result(verdict: account.Verdict, severity: AssetCheckSeverity, **figures: object) -> AssetCheckResult:
    return AssetCheckResult(
        passed=verdict.passed, severity=severity, description=verdict.summary,
        metadata={"summary": verdict.summary, **{k: v for k, v in figures.items() if v is not None}},
    )


# Every check is blocking, but a failing WARN check blocks nothing (Dagster blocks on ERROR).


@asset_check(asset=mam_user_status, blocking=True, pool=WAREHOUSE_POOL)
def ratio_above_warn_floor(warehouse: WarehouseResource, account_options: AccountOptions) -> AssetCheckResult:
    """Warns when the ratio is below MAMCRAWLER_RATIO_WARN_FLOOR (default 2.0)."""
    status = _status(warehouse)
    verdict = account.ratio_verdict(status.ratio, account_options.ratio_warn_floor, "seed more or download freeleech")
    return _result(verdict, AssetCheckSeverity.WARN, floor=account_options.ratio_warn_floor)


@asset_check(asset=mam_user_status, blocking=True, pool=WAREHOUSE_POOL)
def ratio_above_hard_floor(warehouse: WarehouseResource, account_options: AccountOptions) -> AssetCheckResult:
    """Fails (ERROR) when the ratio is below MAMCRAWLER_RATIO_HARD_FLOOR (default 1.2): new
    downloads that are not freeleech would push the account towards MAM's ratio watch."""
    status = _status(warehouse)
    verdict = account.ratio_verdict(
        status.ratio, account_options.ratio_hard_floor, "new non-freeleech downloads should stop"
    )
    return _result(verdict, AssetCheckSeverity.ERROR, floor=account_options.ratio_hard_floor)


@asset_check(asset=mam_user_status, blocking=True, pool=WAREHOUSE_POOL)
def unsatisfied_below_class_limit(warehouse: WarehouseResource, account_options: AccountOptions) -> AssetCheckResult:
    """Fails (ERROR) when fewer than MAMCRAWLER_UNSATISFIED_HEADROOM (default 5) torrents fit
    under the class's unsatisfied limit: MAM refuses downloads past it."""
    status = _status(warehouse)
    verdict = account.unsatisfied_verdict(status.unsatisfied, status.unsatisfied_limit, account_options.unsatisfied_headroom)
    return _result(verdict, AssetCheckSeverity.ERROR, headroom_torrents=account_options.unsatisfied_headroom)


@asset_check(asset=mam_user_status, blocking=True, pool=WAREHOUSE_POOL)
def vip_not_ending_soon(warehouse: WarehouseResource, account_options: AccountOptions) -> AssetCheckResult:
    """Warns when VIP ends within MAMCRAWLER_VIP_WARN_DAYS days (default 7)."""
    verdict = account.vip_verdict(_status(warehouse), _now(), account_options.vip_warn_days)
    return _result(verdict, AssetCheckSeverity.WARN, warn_days=account_options.vip_warn_days)


account_checks = [ratio_above_warn_floor, ratio_above_hard_floor, unsatisfied_below_class_limit, vip_not_ending_soon]
