"""Crashes and dead services around whole runs: kill -9 of `mamcrawler run` at random points,
two first runs at once on a fresh Dagster home, every metadata provider unreachable.

The scenarios are the ones the tests play (`tests/recovery_scenarios.py`,
`bench/unreachable.py`); here they are counted instead of asserted.
"""

from __future__ import annotations

import random
from pathlib import Path

from bench.fault_cases import FaultResult

DEMO_BOOKS = 25  # the demo library (the recorded ABS 2.36 one)


def _books_after(workdir: Path) -> int:
    from mamcrawler.warehouse import Warehouse

    store = Warehouse(workdir / "warehouse.duckdb")
    return store.read_table("library_books", ["item_id"]).height if store.has_table("library_books") else 0


def kill_nine_then_run(work: Path) -> FaultResult:
    """SIGKILL of the run's process group at a random moment of each of the four jobs, then
    one unattended run: it must succeed, leave no run STARTED and no pool slot held, and the
    library tables must be whole."""
    from tests.recovery_scenarios import kill_nine_then_run as scenario

    seed = random.randrange(10**6)
    outcome = scenario(work, seed=seed, timeout_s=150)
    books = _books_after(work) if not outcome["hung"] else 0
    survived = (outcome["succeeded"] and outcome.get("runs_left_running") == 0 and outcome.get("slots_left") == 0
                and books == DEMO_BOOKS)
    return FaultResult("recovery: kill -9 at random points, then the next run", survived=survived, hung=outcome["hung"],
                       rows_lost=max(0, DEMO_BOOKS - books) if not outcome["hung"] else 0,
                       detail=f"seed {seed}; killed inside {outcome['killed_inside']}; left blocked {outcome['left_blocked']}; "
                       f"next run succeeded {outcome['succeeded']}; runs left running {outcome.get('runs_left_running')}; "
                       f"slots left {outcome.get('slots_left')}; {books} books")


def two_first_runs(work: Path) -> FaultResult:
    from tests.recovery_scenarios import two_first_runs as scenario

    outcome = scenario(work, timeout_s=150)
    survived = outcome["exit_codes"] == [0, 0] and outcome["alembic_heads"] == 1 and outcome["pools"]
    return FaultResult("recovery: two first runs at once on a fresh DAGSTER_HOME", survived=survived, hung=outcome["hung"],
                       detail=f"exit codes {outcome['exit_codes']}; alembic heads {outcome['alembic_heads']}; "
                       f"pools configured {outcome['pools']}")


def every_provider_unreachable(work: Path) -> FaultResult:
    """300 books, every provider refused or dropped: the run finishes, every book stays
    pending (none UNMATCHED) and no budget is spent on requests that got no answer."""
    from bench.unreachable import unreachable

    figures = unreachable(300)
    survived = (figures["books_pending"] == figures["books"] and figures["books_unmatched"] == 0
                and figures["budget_requests_spent"] == 0 and figures["providers_unreachable"] >= 5)
    return FaultResult("recovery: every metadata provider unreachable", survived=survived,
                       detail=f"{figures['books']} books in {figures['seconds']} s: {figures['books_pending']} pending, "
                       f"{figures['books_unmatched']} unmatched, {figures['providers_unreachable']} providers given up, "
                       f"{figures['budget_requests_spent']} budget requests spent")


CASES = [kill_nine_then_run, two_first_runs, every_provider_unreachable]
