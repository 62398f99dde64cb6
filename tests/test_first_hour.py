"""The demo as a new user meets it: the README's figures are what it prints, a re-run counts
changes, the missing list fits a terminal, bad input is one line, the Dagster commands work."""

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABS_", "MAMCRAWLER_", "DAGSTER_HOME"))}
    return env | {"DAGSTER_HOME": str(folder / "dagster_home"), "MAMCRAWLER_WAREHOUSE": str(folder / "warehouse.duckdb")}


def mamcrawler(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / ".venv/bin/mamcrawler"), *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`mamcrawler run` twice on one fresh demo warehouse: what a new user does first."""
    folder = tmp_path_factory.mktemp("demo")
    env = _env(folder)
    first, second = mamcrawler(env, "run"), mamcrawler(env, "run")
    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    return env, first, second


def readme_block(marker: str) -> list[str]:
    block = README.split(f"<!-- {marker} -->", 1)[1].split("```", 2)[1]
    return [line for line in block.splitlines()[1:] if line.strip()]


def test_the_readme_figures_are_what_the_demo_prints(demo):
    env, first, _ = demo
    printed = first.stdout.splitlines()
    expected = readme_block("demo-output")
    assert len(expected) >= 5
    for line in expected:
        pattern = re.escape(line).replace(re.escape("<run id>"), "[0-9a-f-]{36}")
        assert any(re.fullmatch(pattern, p) for p in printed), f"README line not printed by the demo: {line}"
    assert "Profile: demo (no ABS_URL configured" in first.stdout
    assert "dry run: nothing was sent" in first.stdout
    assert "James S. A. Corey - The Expanse #4  <-  Cibola Burn: Book 4 of the Expanse (mam 1100604)" in first.stdout
    assert any((Path(env["DAGSTER_HOME"])).iterdir())  # the run is in the instance the UI reads
    # The log explains the first step's smaller figure: no catalogue yet, the library's holes only.
    assert "45 missing books (45 in owned series" in first.stderr and "0 checked against a provider catalogue" in first.stderr
    assert " - DEBUG - " not in first.stderr  # quiet by default
    assert [line for line in first.stderr.splitlines() if " - WARNING - " in line] == []  # nothing to worry a new user


def test_a_rerun_counts_changes_not_rows(demo):
    _, first, second = demo
    assert "17 pending (dry run); 17 new in this run" in first.stdout
    assert "Corrections: 17 corrections for 4 books: 17 pending (dry run); 0 new in this run, the others unchanged since" in second.stdout
    summary = lambda out: [line for line in out.splitlines() if "missing" in line or line.startswith("Metadata")]  # noqa: E731
    assert summary(first.stdout)[1:] == summary(second.stdout)[1:]  # the same figures, another run id


def test_the_missing_list_fits_and_filters(demo):
    env, _, _ = demo
    table = mamcrawler(env, "missing")
    assert table.returncode == 0
    lines = table.stdout.rstrip().splitlines()
    assert max(len(line) for line in lines) <= 100
    rows = lines[2:-2]
    assert len(rows) == 55 and lines[-1].startswith("55 missing books")
    assert all(row.split()[-1] == "identified" for row in rows)
    # Every row has a title, or why there is none in its place.
    untitled = [row for row in rows if "(" not in row and not re.search(r"\s\d+(\.\d+)?\s{2,}\S", row)]
    assert not untitled
    assert sum("(no provider lists this position)" in row for row in rows) > 0
    priorities = [int(row.split()[0]) for row in rows]
    assert priorities == sorted(priorities) and priorities[0] == 1

    wide = mamcrawler(env, "missing", "--wide").stdout.splitlines()
    assert wide[0].split()[:4] == ["missing_id", "author", "series", "position"] and "title_note" in wide[0]
    percy = mamcrawler(env, "missing", "--series", "PERCY", "--status", "identified").stdout.splitlines()
    assert len(percy) == 2 + 5 + 2 and all("Rick Riordan" in row for row in percy[2:-2])
    assert mamcrawler(env, "missing", "--author", "riordan").stdout.splitlines()[2:-2] == percy[2:-2]
    assert mamcrawler(env, "missing", "--status", "queued").stdout.strip() == "No missing books match."


@pytest.mark.parametrize(
    "args, says",
    [
        (["reenrich", "no-such-id"], "Not in the library (library_books.item_id): no-such-id"),
        (["missing", "--status", "lost"], "mamcrawler missing: argument --status: invalid choice"),
        (["no-such-command"], "mamcrawler: argument command: invalid choice"),
    ],
)
def test_bad_input_is_one_line(demo, args, says):
    env, _, _ = demo
    out = mamcrawler(env, *args)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(says), out.stderr


def test_reenrich_is_quiet_unless_asked(demo):
    env, _, _ = demo
    item = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-c", "import duckdb, sys; print(duckdb.connect(sys.argv[1], read_only=True)"
         ".sql('SELECT min(item_id) FROM library_books').fetchall()[0][0])", env["MAMCRAWLER_WAREHOUSE"]],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    quiet = mamcrawler(env, "reenrich", item)
    assert quiet.returncode == 0 and f"re-enriched {item}" in quiet.stdout
    assert " - DEBUG - " not in quiet.stderr and "metadata: audible 1/1 books" in quiet.stderr
    loud = mamcrawler(env, "reenrich", "-v", item)
    assert loud.returncode == 0 and " - DEBUG - " in loud.stderr


def test_the_readme_dagster_commands_work_as_written(tmp_path):
    commands = [line for line in readme_block_commands() if line.startswith("dagster asset materialize")]
    assert len(commands) == 2
    env = _env(tmp_path)
    home = Path(env["DAGSTER_HOME"])
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    for command in commands:
        argv = shlex.split(command)
        out = subprocess.run([str(ROOT / ".venv/bin" / argv[0]), *argv[1:]], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "RUN_SUCCESS" in out.stderr
    import duckdb

    with duckdb.connect(env["MAMCRAWLER_WAREHOUSE"], read_only=True) as con:
        assert con.sql("SELECT count(*) FROM missing_books").fetchall()[0][0] == 45
        assert con.sql("SELECT count(DISTINCT bucket) FROM book_enrichment_state").fetchall()[0][0] > 1


def readme_block_commands() -> list[str]:
    return [line.strip() for block in README.split("```sh")[1:] for line in block.split("```", 1)[0].splitlines()]


def test_the_ui_describes_every_column_and_orders_the_choices(demo):
    import duckdb
    from dagster import AssetKey, DagsterInstance

    from mamcrawler.columns import COLUMN_DOCS

    env, _, _ = demo
    with duckdb.connect(env["MAMCRAWLER_WAREHOUSE"], read_only=True) as con:
        columns = {name for (name,) in con.sql("SELECT DISTINCT column_name FROM information_schema.columns").fetchall()}
        priority = dict(con.sql("SELECT missing_id, priority FROM missing_books").fetchall())
    assert columns - set(COLUMN_DOCS) == set()
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        def latest(asset):
            return instance.fetch_materializations(AssetKey(asset), limit=1).records[0].asset_materialization.metadata

        for asset in ("missing_books", "series_completeness", "enriched_books", "release_candidates"):
            schema = latest(asset)["dagster/column_schema"].value
            assert schema.columns and all(c.description for c in schema.columns), asset
        choices = latest("release_candidates")["choices"].value.splitlines()
        series = latest("series_completeness")
        conflicts = latest("enriched_books")["conflicts"].value
    # "no release found" is one summary line, after the books with a release or a reason.
    assert sum("no release found" in line for line in choices) == 1 and "no release found" in choices[-1]
    assert re.match(r"- \*\*\d+ books\*\*: no release found \(", choices[-1])
    # The bars picture the series table in its own order.
    bars = [line.split("|")[1].strip() for line in series["picture"].value.splitlines()[2:]]
    table = [line.split("|")[1].strip() for line in series["preview"].value.splitlines()[2:] if line.startswith("|")]
    assert bars[: len(table)] == table
    # Conflicts name the book, not only its id.
    assert conflicts == "_no rows_" or conflicts.splitlines()[0].startswith("| item_id | title |")
    # The books with a release or a reason come most urgent first.
    labelled = [line for line in choices if "no release found" not in line]
    assert labelled and len(priority) >= len(labelled)


def test_choices_most_urgent_first_and_no_release_in_one_line():
    from assets.presentation import choices_md

    choices = {"a": "no release found", "b": "best of 2", "c": "no acceptable release among 3", "d": "no release found"}
    labels = {"a": "A #1", "b": "B #2", "c": "C #1", "d": "D #5"}
    text = choices_md(choices, labels, {"a": 1, "b": 3, "c": 1, "d": 2})
    assert text.splitlines() == [
        "- **C #1**: no acceptable release among 3",
        "- **B #2**: best of 2",
        "- **2 books**: no release found (A #1, D #5)",
    ]
