import subprocess
import sys
import time

import polars as pl
import pytest

from mamcrawler.warehouse import TableNotFound, Warehouse, WarehouseError


def test_write_replaces_and_read_round_trips(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.write_table("t", pl.DataFrame({"a": [1, 2], "b": [["x"], []]}))
    wh.write_table("t", pl.DataFrame({"a": [3], "b": [["y", "z"]]}))
    assert wh.read_table("t").to_dicts() == [{"a": 3, "b": ["y", "z"]}]
    assert wh.has_table("t") and not wh.has_table("other")


def test_failed_write_keeps_the_previous_table(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.write_table("t", pl.DataFrame({"a": [1, 2]}))
    # DuckDB cannot ingest Arrow float16: the CREATE inside the transaction fails.
    unstorable = pl.DataFrame({"a": [1.0, 2.0, 3.0]}, schema={"a": pl.Float16})
    with pytest.raises(WarehouseError, match="previous version is kept"):
        wh.write_table("t", unstorable)
    assert wh.read_table("t")["a"].to_list() == [1, 2]


def test_missing_things_have_clear_errors(tmp_path):
    wh = Warehouse(tmp_path / "nothing.duckdb")
    with pytest.raises(TableNotFound, match="materialise"):
        wh.read_table("missing_books")
    wh.write_table("t", pl.DataFrame({"a": [1]}))
    with pytest.raises(TableNotFound, match="missing_books has not been materialised"):
        wh.read_table("missing_books")
    with pytest.raises(WarehouseError, match="not a valid table name"):
        wh.write_table("t; DROP TABLE t", pl.DataFrame({"a": [1]}))


def test_a_second_writer_waits_for_the_first(tmp_path):
    path = tmp_path / "w.duckdb"
    Warehouse(path).write_table("t", pl.DataFrame({"a": [1]}))
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(1.5)"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    Warehouse(path, lock_timeout_s=30).write_table("t", pl.DataFrame({"a": [2]}))
    waited = time.monotonic() - started
    holder.wait(timeout=10)
    assert waited > 0.5  # it queued behind the other process instead of failing
    assert Warehouse(path).read_table("t")["a"].to_list() == [2]


def test_a_writer_gives_up_with_a_clear_error(tmp_path):
    path = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(5)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WarehouseError, match="cannot open the warehouse"):
            Warehouse(path, lock_timeout_s=0.3).write_table("t", pl.DataFrame({"a": [1]}))
    finally:
        holder.kill()
        holder.wait()


def test_tables_written_by_an_older_version_gain_new_columns(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace_rows("t", pl.DataFrame({"k": ["a", "b"], "v": [1, 2]}), pl.DataFrame({"k": ["a", "b"]}))
    wh.replace_rows("t", pl.DataFrame({"k": ["b"], "v": [3], "new": ["x"]}), pl.DataFrame({"k": ["b"]}))
    assert wh.read_table("t").sort("k").to_dicts() == [{"k": "a", "v": 1, "new": None}, {"k": "b", "v": 3, "new": "x"}]


def test_several_tables_change_together_or_not_at_all(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.write_tables({"a": pl.DataFrame({"x": [1]}), "b": pl.DataFrame({"y": [1]})})
    with pytest.raises(WarehouseError):
        wh.write_tables({"a": pl.DataFrame({"x": [2]}), "b": pl.DataFrame({"y": [2.0]}, schema={"y": pl.Float16})})
    assert wh.read_table("a")["x"].to_list() == [1] and wh.read_table("b")["y"].to_list() == [1]
