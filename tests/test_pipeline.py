"""The whole graph, run the way users run it."""

import json
import os
import subprocess
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance

from mamcrawler.warehouse import Warehouse, default_warehouse_path
from pipelines.cli import main
from pipelines.definitions import build_definitions
from pipelines.profiles import Profile, resolve_profile
from resources.replay.abs import AbsReplay
from tests.servers import serve

ROOT = Path(__file__).resolve().parent.parent
SECRET = "prod-secret-api-key-ZXCVBNMASDFGHJKL0123456789"


def run_job(profile: Profile, instance=None):
    defs = build_definitions(profile)
    instance = instance or DagsterInstance.ephemeral()
    result = defs.resolve_job_def("refresh_library").execute_in_process(instance=instance, raise_on_error=False)
    return result, instance


def materialization_metadata(instance, asset):
    records = instance.fetch_materializations(AssetKey(asset), limit=1).records
    return records[0].asset_materialization.metadata


def test_demo_run_materialises_everything_and_says_it_is_the_demo():
    result, instance = run_job(Profile("demo", "test"))
    assert result.success
    warehouse = Warehouse(default_warehouse_path())
    assert warehouse.read_table("abs_library_items").height == 25
    assert warehouse.read_table("library_books").height == 25
    assert warehouse.read_table("missing_books").height == 45
    for asset in ("abs_library_items", "library_books", "missing_books"):
        meta = materialization_metadata(instance, asset)
        assert meta["profile"].value.startswith("demo")
        assert "preview" in meta and meta["dagster/row_count"].value > 0
    meta = materialization_metadata(instance, "abs_library_items")
    assert meta["abs_reported_total"].value == 25 and meta["skipped"].value == 0
    checks = [e for e in result.all_events if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION]
    assert len(checks) == 7 and all(e.event_specific_data.passed for e in checks)


def test_statuses_survive_a_rematerialisation():
    assert run_job(Profile("demo", "test"))[0].success
    path = default_warehouse_path()
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE missing_books SET status = 'queued' WHERE series = 'Mistborn'")
        con.execute("UPDATE missing_books SET status = 'downloading' WHERE series = 'Dune' AND position = 1")
    assert run_job(Profile("demo", "test"))[0].success
    table = Warehouse(path).read_table("missing_books")
    statuses = {(r["series"], r["position"]): r["status"] for r in table.iter_rows(named=True)}
    assert statuses[("Mistborn", 2)] == "queued" and statuses[("Dune", 1)] == "downloading"
    assert statuses[("Dune", 2)] == "identified" and table.height == 45


def test_production_profile_reads_abs_and_never_leaks_the_key(monkeypatch):
    with serve(AbsReplay(token=SECRET)) as url:
        monkeypatch.setenv("ABS_URL", url)
        monkeypatch.setenv("ABS_API_KEY", SECRET)
        profile = resolve_profile()
        assert profile.name == "production"
        result, instance = run_job(profile)
    assert result.success
    assert Warehouse(default_warehouse_path()).read_table("missing_books").height == 45
    run = instance.get_run_by_id(result.run_id)
    assert SECRET not in json.dumps(run.run_config)
    logs = instance.all_logs(result.run_id)
    assert logs and all(SECRET not in str(entry) for entry in logs)
    assert materialization_metadata(instance, "abs_library_items")["profile"].value == "production"


def test_a_rejected_key_fails_clearly_without_showing_it(monkeypatch):
    with serve(AbsReplay(token=SECRET)) as url:
        monkeypatch.setenv("ABS_URL", url)
        monkeypatch.setenv("ABS_API_KEY", "wrong-" + SECRET)
        result, instance = run_job(resolve_profile())
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    text = str(failure.event_specific_data.error)
    assert "AbsAuthError" in text and "isActive" in text
    assert all(SECRET not in str(entry) for entry in instance.all_logs(result.run_id))
    # Nothing downstream ran on a failed snapshot.
    assert not Warehouse(default_warehouse_path()).has_table("library_books")


def test_cli_missing_formats(capsys):
    assert main(["missing"]) == 2
    assert "Run `mamcrawler run`" in capsys.readouterr().err
    assert run_job(Profile("demo", "test"))[0].success
    assert main(["missing", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 45
    assert set(rows[0]) >= {"missing_id", "author", "series", "position", "title", "reason", "priority", "status"}
    assert {r["series"] for r in rows if r["position"] == 3} == {"The Stormlight Archive", "Discworld", "The Expanse"}
    assert main(["missing", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("missing_id,author,series,position,") and len(lines) == 46
    assert main(["missing"]) == 0
    out = capsys.readouterr().out
    assert "Rick Riordan" in out and out.rstrip().endswith("45 missing books (--wide for every column)")


def _env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABS_", "MAMCRAWLER_PROFILE", "DAGSTER_HOME"))}
    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")
    return env


@pytest.mark.parametrize("bad", ["staging"])
def test_bad_profile_is_a_clear_error(tmp_path, bad):
    env = _env(tmp_path) | {"MAMCRAWLER_PROFILE": bad}
    out = subprocess.run([str(ROOT / ".venv/bin/mamcrawler"), "run"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "MAMCRAWLER_PROFILE must be one of demo, production" in out.stderr


def test_cli_overrides_change_what_is_missing(capsys):
    assert run_job(Profile("demo", "test"))[0].success
    assert main(["override", "add", "ignore_series", "Discworld", "--note", "reading it elsewhere"]) == 0
    assert main(["override", "add", "follow_author", "Ursula K. Le Guin"]) == 0
    with pytest.raises(SystemExit):
        main(["override", "add", "no_such_kind", "x"])
    capsys.readouterr()
    assert main(["override", "list"]) == 0
    listed = capsys.readouterr().out
    assert "ignore_series" in listed and "reading it elsewhere" in listed and "follow_author" in listed
    assert run_job(Profile("demo", "test"))[0].success
    missing = Warehouse(default_warehouse_path()).read_table("missing_books")
    assert "Discworld" not in missing["series"].to_list() and missing.height == 45 - 37
    assert main(["override", "remove", "ignore_series", "Discworld"]) == 0
    assert run_job(Profile("demo", "test"))[0].success
    assert Warehouse(default_warehouse_path()).read_table("missing_books").height == 45
