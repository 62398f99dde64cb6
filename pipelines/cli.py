"""`mamcrawler`: run the main job, or print the missing books from the warehouse."""

import argparse
import getpass
import json
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import polars as pl

from mamcrawler.completeness import OVERRIDE_KINDS, OVERRIDES_TABLE, change_overrides
from mamcrawler.enrichment import BUCKETS, bucket_of
from mamcrawler.figures import correction_figures, level_counts, levels_line, missing_figures, plural
from mamcrawler.gaps import LIFECYCLE
from mamcrawler.positions import format_position
from mamcrawler.warehouse import REPO_ROOT, TableNotFound, Warehouse, WarehouseError, default_warehouse_path
from pipelines.recovery import pool_holders, prepare_home, reap_dead_runs, run_tags, wait_for_pools

ALL_BUCKETS = {"dagster/asset_partition_range_start": BUCKETS[0], "dagster/asset_partition_range_end": BUCKETS[-1]}

MISSING_COLUMNS = [
    "missing_id", "author", "series", "position", "position_label", "line", "title", "title_note", "reason",
    "priority", "status", "asin", "release_date",
]
ACCEPT_SHRINK = {"abs_library_items": {"config": {"accept_shrink": True}}}
# The default table: what a person acts on, in 100 columns; `--wide` shows every column.
TABLE_COLUMNS = {"priority": "prio", "author": "author", "series": "series", "position_label": "#", "title": "title", "status": "status"}
TABLE_WIDTH = 100
# The columns shrunk when a table is too wide, with the share of the width each keeps.
FLEXIBLE = {"title": 2.0, "series": 1.0, "author": 1.0}


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments are one line on stderr and exit 2, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def ensure_dagster_home() -> Path:
    """`DAGSTER_HOME` (default `data/dagster_home`), with the project's dagster.yaml (SQLite
    storage, the pools) unless it has its own, its storage created once under a file lock."""
    home = Path(os.environ.get("DAGSTER_HOME") or REPO_ROOT / "data" / "dagster_home")
    prepare_home(home, REPO_ROOT / "dagster.yaml", log=lambda line: print(line, file=sys.stderr))
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _execute(instance, job, **kwargs):
    """One job of ours: dead runs' slots freed first, the wait for a live one said, pid tagged."""
    wait_for_pools(instance, log=lambda line: print(line, file=sys.stderr))
    tags = {**kwargs.pop("tags", {}), **run_tags()}
    return job.execute_in_process(instance=instance, raise_on_error=False, tags=tags, **kwargs)


def _fit(widths: dict[str, int], limit: int, shares: dict[str, float] = FLEXIBLE) -> dict[str, int]:
    """Column widths shrunk, widest flexible column first, until the row fits `limit`."""
    widths = dict(widths)
    total = lambda: sum(widths.values()) + 2 * (len(widths) - 1)  # noqa: E731
    while total() > limit:
        flexible = [c for c in widths if c in shares and widths[c] > max(8, len(c))]
        if not flexible:
            break
        widest = max(flexible, key=lambda c: widths[c] / shares[c])
        widths[widest] -= 1
    return widths


def _format_table(frame: pl.DataFrame, width: int | None = None, shares: dict[str, float] = FLEXIBLE) -> str:
    rows = [[("" if v is None else str(v)) for v in row] for row in frame.iter_rows()]
    natural = {c: max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(frame.columns)}
    widths = list((_fit(natural, width, shares) if width else natural).values())
    cut = lambda text, w: text if len(text) <= w else text[: w - 1] + "…"  # noqa: E731
    line = lambda cells: "  ".join(cut(c, w).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(frame.columns), line(["-" * w for w in widths])] + [line(r) for r in rows])


def read_missing(warehouse: Warehouse) -> pl.DataFrame:
    """Every missing book, the most urgent first: priority 1 is the next book of a series."""
    frame = warehouse.read_table("missing_books")
    return frame.select(MISSING_COLUMNS).sort("priority", "author", "series", "position", nulls_last=True)


def filter_missing(frame: pl.DataFrame, series: str | None, author: str | None, status: str | None) -> pl.DataFrame:
    """Case-insensitive substring filters on series and author; status exactly."""
    for column, needle in (("series", series), ("author", author)):
        if needle:
            frame = frame.filter(pl.col(column).str.to_lowercase().str.contains(needle.lower(), literal=True))
    return frame.filter(pl.col("status") == status) if status else frame


def render_missing(frame: pl.DataFrame, fmt: str, wide: bool = False) -> str:
    if fmt == "json":
        return json.dumps(frame.to_dicts(), ensure_ascii=False, indent=2)
    if fmt == "csv":
        return frame.write_csv()
    if frame.is_empty():
        return "No missing books match."
    if wide:
        return _format_table(frame) + f"\n\n{plural(frame.height, 'missing book')}"
    # A book without a known title shows why in its place, in brackets.
    titled = frame.with_columns(
        pl.coalesce("title", pl.lit("(") + pl.col("title_note").fill_null("no title known") + pl.lit(")")).alias("title")
    )
    table = titled.select(list(TABLE_COLUMNS)).rename(TABLE_COLUMNS)
    return _format_table(table, TABLE_WIDTH) + f"\n\n{plural(frame.height, 'missing book')} (--wide for every column)"


def cmd_missing(args: argparse.Namespace) -> int:
    warehouse = Warehouse(args.warehouse or default_warehouse_path())
    try:
        frame = read_missing(warehouse)
    except TableNotFound:
        print(
            f"The warehouse at {warehouse.path} has no missing_books table yet. "
            "Run `mamcrawler run` (or materialise the assets in the Dagster UI) first.",
            file=sys.stderr,
        )
        return 2
    except WarehouseError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    frame = filter_missing(frame, args.series, args.author, args.status)
    sys.stdout.write(render_missing(frame, args.format, args.wide).rstrip("\n") + "\n")
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    """What `mamcrawler run` does first, for runs started from the UI or `dagster`."""
    ensure_dagster_home()
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        reaped = reap_dead_runs(instance)
        for pool, run_id in pool_holders(instance):
            print(f"pool `{pool}` is held by run {run_id}, whose process is alive")
    print(f"{len(reaped)} dead runs recovered")
    return 0


def _stop_on_sigterm() -> None:
    """SIGTERM ends a run like Ctrl-C does (Dagster then ends the run and frees its slots)."""

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def cmd_run(args: argparse.Namespace) -> int:
    _stop_on_sigterm()
    if args.profile:
        os.environ["MAMCRAWLER_PROFILE"] = args.profile
    started = datetime.now(UTC)
    home = ensure_dagster_home()
    from dagster import DagsterInstance

    from pipelines.definitions import PROFILE, defs

    print(f"Profile: {PROFILE.name} ({PROFILE.reason})")
    if PROFILE.name == "demo":
        print("  Set ABS_URL and ABS_API_KEY to read your own Audiobookshelf instead.")
    print(f"Warehouse: {default_warehouse_path()}\nDagster home: {home}")
    quiet = log_config(args.verbose)
    with DagsterInstance.get() as instance:
        refresh_config = {**quiet, **({"ops": ACCEPT_SHRINK} if args.accept_shrink else {})}
        result = _execute(instance, defs.resolve_job_def("refresh_library"), run_config=refresh_config)
        if result.success and not args.skip_metadata:
            result = _execute(instance, defs.resolve_job_def("enrich_metadata"), run_config=quiet, tags=ALL_BUCKETS)
            if result.success:  # the catalogues need the fresh metadata: titles for the gaps
                result = _execute(instance, defs.resolve_job_def("update_completeness"), run_config=quiet)
        searching = not args.skip_acquisition and bool(defs.resources["acquisition"].indexers)
        if result.success and searching:
            result = _execute(instance, defs.resolve_job_def("search_and_queue"), run_config=quiet)
        elif not args.skip_acquisition:
            print("No indexer configured (MAM_ID, `mamcrawler mam-login` or MAMCRAWLER_TORZNAB): nothing searched.")
    if not result.success:
        failures = [e for e in result.all_events if e.is_failure]
        for event in failures:
            print(f"FAILED {event.step_key}: {event.message}", file=sys.stderr)
        return 1
    print(run_summary(Warehouse(default_warehouse_path()), result.run_id, started, not args.skip_metadata, searching))
    return 0


def run_summary(warehouse: Warehouse, run_id: str, started: datetime, metadata: bool, searching: bool) -> str:
    """What `mamcrawler run` prints at the end: every figure from `mamcrawler.figures`."""
    books = warehouse.query("SELECT count(*) AS n FROM library_books")["n"][0]
    missing = read_missing(warehouse)
    series = warehouse.read_optional("series_completeness")
    upcoming = warehouse.read_optional("upcoming_books")
    figures = missing_figures(missing, series, 0 if upcoming is None else upcoming.height)
    by_series = (
        missing.filter(pl.col("reason") == "series_gap")
        .group_by("author", "series")
        .agg(pl.len().alias("missing"), pl.col("position").sort().alias("positions"))
        .sort("author", "series")
    )
    lines = [f"\nRun {run_id} succeeded: {books} books in the library, {missing.height} missing books.", f"  {figures.line()}\n"]
    for row in by_series.iter_rows(named=True):
        lines.append(f"  {row['author'] or '(no author)'} - {row['series']}: {row['missing']} missing ({_ranges(row['positions'])})")
    if metadata:
        lines.append(_metadata_summary(warehouse, started))
    if searching:
        lines.append(_downloads_summary(warehouse))
    lines.append("\nFull lists: mamcrawler missing [--wide] [--series S] [--author A] [--format csv|json], mamcrawler downloads")
    return "\n".join(lines)


def _downloads_summary(warehouse: Warehouse) -> str:
    requests = warehouse.read_optional("download_requests")
    if requests is None or requests.is_empty():
        return "\nDownloads: no release chosen yet (see release_candidates for why)"
    counts = dict(requests["status"].value_counts().iter_rows())
    lines = ["\nDownloads: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))]
    if counts.get("would_send"):
        lines.append("  (dry run: nothing was sent; set MAMCRAWLER_DRY_RUN=0 to send to qBittorrent)")
    for row in requests.filter(pl.col("status") != "imported").sort("book").iter_rows(named=True):
        lines.append(f"  {row['status']:<10} {row['book']}  <-  {row['release_title']} ({row['indexer']} {row['release_id']})")
    return "\n".join(lines)


def cmd_downloads(args: argparse.Namespace) -> int:
    warehouse = Warehouse(args.warehouse or default_warehouse_path())
    try:
        requests = warehouse.read_table("download_requests")
    except (TableNotFound, WarehouseError) as exc:
        print(f"{exc}. Run `mamcrawler run` (or the search_and_queue job) first.", file=sys.stderr)
        return 2
    columns = ["book", "status", "indexer", "release_id", "release_title", "info_hash", "progress", "error"]
    frame = requests.select(columns).sort("status", "book")
    if args.format == "json":
        sys.stdout.write(json.dumps(frame.to_dicts(), ensure_ascii=False, indent=2, default=str) + "\n")
    elif args.format == "csv":
        sys.stdout.write(frame.write_csv())
    else:
        sys.stdout.write(_format_table(frame) + f"\n\n{frame.height} download requests\n")
    return 0


# `mamcrawler tasks`: the table's columns (header: source), the error and trigger shrink first.
TASK_COLUMNS = {"started (UTC)": "started_at", "task": "task", "trigger": "trigger", "status": "status",
                "took_s": "elapsed_s", "items": "processed", "ok": "succeeded", "failed": "failed", "error": "error"}


def render_tasks(frame: pl.DataFrame, fmt: str) -> str:
    """The task history, as read (newest first): a 100-column table, or every column as CSV/JSON."""
    if fmt == "json":
        return json.dumps(frame.to_dicts(), ensure_ascii=False, indent=2)
    if fmt == "csv":
        return frame.write_csv()
    if frame.is_empty():
        return "No task runs recorded yet (the task_history_* sensors record each run of a task job)."
    table = frame.select(
        pl.col("started_at").str.slice(0, 16).str.replace("T", " ").alias("started (UTC)"),
        *(pl.col(source).alias(header) for header, source in list(TASK_COLUMNS.items())[1:]),
    )
    runs = plural(frame.height, "task run")
    return _format_table(table, TABLE_WIDTH, {"error": 1.0, "trigger": 1.0}) + f"\n\n{runs} (took_s: seconds; --format csv for every column)"


def cmd_tasks(args: argparse.Namespace) -> int:
    from mamcrawler.task_history import TaskHistory, default_history_path

    history = TaskHistory(args.history or default_history_path())
    frame = history.read(task=args.task, limit=args.limit)
    sys.stdout.write(render_tasks(frame, args.format).rstrip("\n") + "\n")
    return 0


def _metadata_summary(warehouse: Warehouse, started: datetime) -> str:
    state = warehouse.read_optional("book_enrichment_state")
    levels = level_counts([] if state is None else state["best_level"])
    corrections = correction_figures(warehouse.read_optional("metadata_corrections"), started)
    hint = "\n  (dry run: set MAMCRAWLER_WRITEBACK=1 to send them to ABS; see metadata_corrections)"
    return f"\nMetadata: {levels_line(levels)}\n{corrections.line()}" + (hint if corrections.by_mode.get("dry_run") else "")


def log_config(verbose: int) -> dict:
    """Run config for Dagster's console log: our INFO lines by default, DEBUG (every engine event) with -v."""
    return {"loggers": {"console": {"config": {"log_level": "DEBUG" if verbose else "INFO"}}}}


def cmd_reenrich(args: argparse.Namespace) -> int:
    """Re-enrich single books now: each in its bucket partition, with `item_ids` config."""
    warehouse = Warehouse(default_warehouse_path())
    try:
        known = set(warehouse.read_table("library_books", ["item_id"])["item_id"])
    except (TableNotFound, WarehouseError) as exc:
        print(f"{exc}. Run `mamcrawler run` first.", file=sys.stderr)
        return 2
    unknown = [i for i in args.item_ids if i not in known]
    if unknown:
        print(f"Not in the library (library_books.item_id): {', '.join(unknown)}", file=sys.stderr)
        return 2
    ensure_dagster_home()
    from dagster import DagsterInstance

    from pipelines.definitions import defs

    by_bucket: dict[str, list[str]] = {}
    for item_id in args.item_ids:
        by_bucket.setdefault(bucket_of(item_id), []).append(item_id)
    with DagsterInstance.get() as instance:
        for bucket, ids in sorted(by_bucket.items()):
            config = {"ops": {"book_metadata": {"config": {"item_ids": ids, "refresh": args.refresh}}}, **log_config(args.verbose)}
            result = _execute(instance, defs.resolve_job_def("enrich_metadata"), partition_key=bucket, run_config=config)
            if not result.success:
                for event in (e for e in result.all_events if e.is_failure):
                    print(f"FAILED {event.step_key}: {event.message}", file=sys.stderr)
                return 1
            print(f"bucket {bucket}: re-enriched {', '.join(ids)} (run {result.run_id})")
    return 0


def _ranges(positions: list[float]) -> str:
    """[3, 4, 5, 7, 7.5] -> "3-5, 7, 7.5"."""
    parts: list[str] = []
    start = prev = None
    for p in [*positions, None]:
        if start is not None and (p is None or p != prev + 1 or p != int(p)):
            parts.append(format_position(start) if start == prev else f"{format_position(start)}-{format_position(prev)}")
            start = None
        if p is not None and start is None:
            start = p
        prev = p
    return ", ".join(parts)


def cmd_override(args: argparse.Namespace) -> int:
    """The same change as the `edit_completeness_overrides` job, from the shell."""
    warehouse = Warehouse(args.warehouse or default_warehouse_path())
    current = warehouse.read_optional(OVERRIDES_TABLE) if warehouse.path.exists() else None
    if args.action != "list":
        entry = {"kind": args.kind, "target": args.target, "note": args.note}
        try:
            current = change_overrides(current, [entry] if args.action == "add" else [], [entry] if args.action == "remove" else [])
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        warehouse.write_table(OVERRIDES_TABLE, current)
    if current is None or current.is_empty():
        print("No overrides.")
    else:
        print(_format_table(current.select("kind", "target", "note")))
    if args.action != "list":
        print("\nApplied at the next completeness rebuild (mamcrawler run, or the update_completeness job).")
    return 0


def mam_cookie_path() -> Path:
    """Where the production profile's MamResource keeps its cookie (`pipelines/profiles.py`)."""
    return default_warehouse_path().parent / "mam_id.cookie"


def cmd_mam_login(args: argparse.Namespace) -> int:
    """Log in with a browser once, keep the cookie where the MAM resource reads it."""
    from resources.mam import MamResource
    from resources.mam_login import MamLoginError, login_for_mam_id

    password = os.environ.get("MAM_PASSWORD", "")
    if not password and sys.stdin.isatty():
        password = getpass.getpass("MAM password: ")
    if not password:
        print("Set MAM_PASSWORD (or run this in a terminal to be asked for it).", file=sys.stderr)
        return 2
    base_url = args.url or os.environ.get("MAMCRAWLER_MAM_URL") or "https://www.myanonamouse.net"
    try:
        cookie = login_for_mam_id(base_url, args.email, password)
    except MamLoginError as exc:
        print(f"MAM login failed: {exc}", file=sys.stderr)
        return 1
    path = mam_cookie_path()
    MamResource(base_url=base_url, mam_id=os.environ.get("MAM_ID", ""), cookie_path=str(path)).save_cookie(cookie)
    print(f"Logged in; the session cookie is saved in {path} (mode 0600)")
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    """Run `apply_retention` now (a dry run only counts) and print what it deleted."""
    ensure_dagster_home()
    from dagster import DagsterEventType, DagsterInstance

    from pipelines.definitions import build_definitions
    from pipelines.profiles import resolve_profile

    defs = build_definitions(resolve_profile())  # the settings as the environment has them now
    config = {**log_config(0), "ops": {"prune_old_records": {"config": {"dry_run": args.dry_run}}}}
    with DagsterInstance.get() as instance:
        result = _execute(instance, defs.resolve_job_def("apply_retention"), run_config=config)
    if not result.success:
        for event in (e for e in result.all_events if e.is_failure):
            print(f"FAILED {event.step_key}: {event.message}", file=sys.stderr)
        return 1
    [output] = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_OUTPUT]
    print(output.step_output_data.metadata["deleted"].value)
    print(output.step_output_data.metadata["summary"].value + (" (dry run: nothing deleted)" if args.dry_run else ""))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """One line per preflight finding; exit 1 when any fails (secrets are never printed:
    every message is built from settings names and scrubbed errors)."""
    if args.profile:
        os.environ["MAMCRAWLER_PROFILE"] = args.profile
    from pipelines.doctor import DEMO_REPLAYED, run_checks
    from pipelines.profiles import build_resources, resolve_profile

    profile = resolve_profile()
    print(f"Profile: {profile.name} ({profile.reason})")
    if profile.name == "demo":
        print(f"  {DEMO_REPLAYED}: these lines check the demo, not your services.")
    findings = run_checks(build_resources(profile))
    for finding in findings:
        print(finding.line())
    counts = {s: sum(f.severity == s for f in findings) for s in ("ok", "warn", "fail")}
    print(f"\n{counts['ok']} ok, {counts['warn']} warnings, {counts['fail']} failures")
    return 1 if counts["fail"] else 0


def cmd_ui(args: argparse.Namespace) -> int:
    from pipelines.ui import serve

    return serve(args.host, args.port, REPO_ROOT / "workspace.yaml", args.allow_host)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="mamcrawler", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    run = sub.add_parser("run", help="materialise the whole asset graph and print what was found")
    run.add_argument("--profile", choices=["demo", "production"], help="default: demo unless ABS_URL is set")
    run.add_argument("--skip-metadata", action="store_true", help="only the library and its gaps, no providers")
    run.add_argument("--skip-acquisition", action="store_true", help="do not search the indexers for the missing books")
    run.add_argument(
        "--accept-shrink", action="store_true",
        help="accept a library snapshot that is empty, lost a library or shrank past MAMCRAWLER_MAX_SHRINK",
    )
    run.set_defaults(func=cmd_run)
    recover = sub.add_parser("recover", help="mark runs whose process is gone failed and free their pool slots")
    recover.set_defaults(func=cmd_recover)
    reenrich = sub.add_parser("reenrich", help="ask the providers again about some books, now")
    reenrich.add_argument("item_ids", nargs="+", help="ABS item ids (see library_books.item_id)")
    reenrich.add_argument("--refresh", action="store_true", help="ignore cached provider answers")
    for command in (run, reenrich):
        command.add_argument("-v", "--verbose", action="count", default=0, help="every Dagster event in the log (DEBUG)")
    reenrich.set_defaults(func=cmd_reenrich)
    missing = sub.add_parser("missing", help="print the missing books from the warehouse")
    missing.add_argument("--format", choices=["table", "csv", "json"], default="table")
    missing.add_argument("--wide", action="store_true", help="every column, untruncated (the table is 100 columns otherwise)")
    missing.add_argument("--series", help="only series whose name contains this (any case)")
    missing.add_argument("--author", help="only authors whose name contains this (any case)")
    missing.add_argument("--status", choices=list(LIFECYCLE), help="only books in this lifecycle status")
    missing.add_argument("--warehouse", help="DuckDB file (default: MAMCRAWLER_WAREHOUSE or data/warehouse.duckdb)")
    missing.set_defaults(func=cmd_missing)
    downloads = sub.add_parser("downloads", help="print the download requests (what was sent, or would be in a dry run)")
    downloads.add_argument("--format", choices=["table", "csv", "json"], default="table")
    downloads.add_argument("--warehouse", help="DuckDB file (default: MAMCRAWLER_WAREHOUSE or data/warehouse.duckdb)")
    downloads.set_defaults(func=cmd_downloads)
    tasks = sub.add_parser("tasks", help="print the task history (each run of MAM, METADATA_*, SERIES, AUTHOR, LIBRARY, ACCOUNT, RETENTION)")
    tasks.add_argument("--format", choices=["table", "csv", "json"], default="table")
    tasks.add_argument("--task", type=str.upper, help="only this task (MAM, METADATA_NEW, METADATA_FULL, SERIES, AUTHOR, LIBRARY)")
    tasks.add_argument("--limit", type=int, help="only the N newest runs")
    tasks.add_argument("--history", help="SQLite file (default: MAMCRAWLER_TASK_HISTORY or data/task_history.sqlite)")
    tasks.set_defaults(func=cmd_tasks)
    retention = sub.add_parser("retention", help="delete old corrections, account and task history, Dagster runs now")
    retention.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    retention.set_defaults(func=cmd_retention)
    override = sub.add_parser("override", help="ignore a book or series, mark a series complete, follow an author")
    override.add_argument("action", choices=["add", "remove", "list"])
    override.add_argument("kind", nargs="?", choices=list(OVERRIDE_KINDS))
    override.add_argument("target", nargs="?", help="missing_id or title / series_id or name / author name")
    override.add_argument("--note", help="why, for your future self")
    override.add_argument("--warehouse", help="DuckDB file (default: MAMCRAWLER_WAREHOUSE or data/warehouse.duckdb)")
    override.set_defaults(func=cmd_override)
    mam_login = sub.add_parser(
        "mam-login", help="log in to MyAnonamouse with a browser and keep the mam_id cookie (password: MAM_PASSWORD)"
    )
    mam_login.add_argument("--email", required=True, help="the email you log in to MAM with")
    mam_login.add_argument("--url", help="MAM's address (default: MAMCRAWLER_MAM_URL or https://www.myanonamouse.net)")
    mam_login.set_defaults(func=cmd_mam_login)
    doctor = sub.add_parser("doctor", help="check ABS, qBittorrent, MAM, free disk space and the clock; exit 1 on a failure")
    doctor.add_argument("--profile", choices=["demo", "production"], help="default: demo unless ABS_URL is set")
    doctor.set_defaults(func=cmd_doctor)
    ui = sub.add_parser("ui", help="the Dagster web UI and daemon on 127.0.0.1, guarded against other web pages")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback only)")
    ui.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")), help="default PORT or 3000")
    ui.add_argument("--allow-host", action="append", default=[], metavar="HOST:PORT",
                    help="another Host header to answer (a reverse proxy's name); repeatable")
    ui.set_defaults(func=cmd_ui)
    args = parser.parse_args(argv)
    if args.command == "override" and args.action != "list" and not (args.kind and args.target):
        parser.error("override add/remove needs KIND and TARGET")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
