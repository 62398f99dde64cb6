"""Absence is never evidence: an empty or shrunken ABS answer changes nothing downstream."""

import polars as pl
import pytest
from dagster import DagsterEventType, DagsterInstance

from mamcrawler.snapshot_guard import suspect_reason
from mamcrawler.warehouse import Warehouse, default_warehouse_path
from pipelines.definitions import build_definitions
from pipelines.profiles import resolve_profile
from resources.replay.abs import AbsReplay
from tests.servers import serve

KEY = "absence-test-key"


def refresh(monkeypatch, replay, run_config=None):
    with serve(replay) as url:
        monkeypatch.setenv("ABS_URL", url)
        monkeypatch.setenv("ABS_API_KEY", KEY)
        defs = build_definitions(resolve_profile())
        return defs.resolve_job_def("refresh_library").execute_in_process(
            instance=DagsterInstance.ephemeral(), raise_on_error=False, run_config=run_config
        )


def failure_text(result) -> str:
    return " ".join(str(e.event_specific_data.error) for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)


def tables() -> dict[str, int]:
    store = Warehouse(default_warehouse_path())
    return {t: store.read_table(t).height for t in ("abs_library_items", "library_books", "missing_books")}


class NoLibraries(AbsReplay):
    def __init__(self, **kw):
        super().__init__(token=KEY, **kw)
        self.libraries = []


def _all_items():
    return AbsReplay().items


@pytest.mark.parametrize(
    "hostile, why",
    [
        (lambda: NoLibraries(), "no book library"),
        (lambda: AbsReplay(token=KEY, lose_items=25), "no items at all"),
        (lambda: AbsReplay(token=KEY, items=_all_items()[:15]), "shrank from 25 to 15 items (40%"),
    ],
    ids=["libraries_empty", "results_empty_with_total", "shrunk_40_percent"],
)
def test_a_suspect_snapshot_fails_and_keeps_every_table(monkeypatch, hostile, why):
    assert refresh(monkeypatch, AbsReplay(token=KEY)).success
    before = tables()
    assert before == {"abs_library_items": 25, "library_books": 25, "missing_books": 45}
    result = refresh(monkeypatch, hostile())
    assert not result.success
    text = failure_text(result)
    assert "Suspect library snapshot" in text and why in text and "--accept-shrink" in text
    assert tables() == before


def test_an_explicit_accept_replaces_the_tables(monkeypatch):
    assert refresh(monkeypatch, AbsReplay(token=KEY)).success
    accept = {"ops": {"abs_library_items": {"config": {"accept_shrink": True}}}}
    assert refresh(monkeypatch, AbsReplay(token=KEY, items=_all_items()[:15]), accept).success
    assert tables()["abs_library_items"] == 15


def test_a_small_shrink_within_the_setting_passes(monkeypatch):
    assert refresh(monkeypatch, AbsReplay(token=KEY)).success
    assert refresh(monkeypatch, AbsReplay(token=KEY, items=_all_items()[:21])).success  # 16% < 20%
    assert tables()["abs_library_items"] == 21
    monkeypatch.setenv("MAMCRAWLER_MAX_SHRINK", "0.05")
    assert not refresh(monkeypatch, AbsReplay(token=KEY, items=_all_items()[:18])).success


def test_losing_a_whole_library_is_suspect_even_when_small():
    fresh = pl.DataFrame({"library_id": ["lib-a"] * 100})
    reason = suspect_reason({"lib-a": 100, "lib-b": 3}, fresh, ["lib-a"], 0.2)
    assert reason and "lib-b" in reason
    assert suspect_reason({}, fresh.head(0), ["lib-a"], 0.2) is None  # a new, empty library is fine


def test_a_book_that_comes_back_keeps_its_id_first_seen_and_status():
    from datetime import UTC, datetime

    from mamcrawler.gaps import MISSING_SCHEMA, carry_lifecycle, departed_rows, lifecycle_memory

    def rows(ids, when):
        base = {"series_id": "s|a", "series": "S", "author": "A", "line": "main", "reason": "series_gap",
                "status": "identified", "first_seen_at": when, "updated_at": when}
        return pl.DataFrame([{**base, "missing_id": i, "position": float(n)} for n, i in enumerate(ids)], schema=MISSING_SCHEMA)

    day = [datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 3)]

    def rebuild(fresh, table, departed):
        memory = lifecycle_memory(table, departed)
        table = carry_lifecycle(fresh, memory)
        return table, departed_rows(memory, table)

    table, departed = rebuild(rows(["a", "b"], day[0]), None, None)
    table = table.with_columns(pl.when(pl.col("missing_id") == "b").then(pl.lit("queued")).otherwise("status").alias("status"))
    table, departed = rebuild(rows(["a"], day[1]), table, departed)  # a catalogue answered short: b leaves
    assert departed["missing_id"].to_list() == ["b"]
    table, departed = rebuild(rows(["a", "b"], day[2]), table, departed)  # and comes back
    back = table.filter(pl.col("missing_id") == "b").row(0, named=True)
    assert back["first_seen_at"] == day[0] and back["status"] == "queued" and departed.is_empty()
