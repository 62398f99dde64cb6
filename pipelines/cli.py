"""`mamcrawler`: run the main job, or print the missing books from the warehouse."""

import argparse
import getpass
import json
import os
import shutil
import sys
from pathlib import Path

import polars as pl

from mamcrawler.completeness import OVERRIDE_KINDS, OVERRIDES_TABLE, change_overrides
from mamcrawler.enrichment import BUCKETS, bucket_of
from mamcrawler.positions import format_position
from mamcrawler.warehouse import REPO_ROOT, TableNotFound, Warehouse, WarehouseError, default_warehouse_path

ALL_BUCKETS = {"dagster/asset_partition_range_start": BUCKETS[0], "dagster/asset_partition_range_end": BUCKETS[-1]}

MISSING_COLUMNS = [
    "missing_id", "author", "series", "position", "position_label", "line", "title", "title_note", "reason",
    "priority", "status", "asin", "release_date",
]
TABLE_COLUMNS = ["author", "series", "position_label", "title", "line", "reason", "priority", "status"]


def ensure_dagster_home() -> Path:
    """`DAGSTER_HOME`, or `data/dagster_home` with the project's dagster.yaml (SQLite storage)."""
    if os.environ.get("DAGSTER_HOME"):
        home = Path(os.environ["DAGSTER_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        return home
    home = REPO_ROOT / "data" / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():  # a user's own (PostgreSQL) instance file is kept
        shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _format_table(frame: pl.DataFrame) -> str:
    rows = [[("" if v is None else str(v)) for v in row] for row in frame.iter_rows()]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(frame.columns)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(frame.columns), line(["-" * w for w in widths])] + [line(r) for r in rows])


def read_missing(warehouse: Warehouse) -> pl.DataFrame:
    frame = warehouse.read_table("missing_books")
    return frame.select(MISSING_COLUMNS).sort("author", "series", "priority", nulls_last=True)


def render_missing(frame: pl.DataFrame, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(frame.to_dicts(), ensure_ascii=False, indent=2)
    if fmt == "csv":
        return frame.write_csv()
    if frame.is_empty():
        return "No missing books: every series in the library is complete as far as the library shows."
    table = frame.select(TABLE_COLUMNS).rename({"position_label": "position"})
    return _format_table(table) + f"\n\n{frame.height} missing books"


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
    sys.stdout.write(render_missing(frame, args.format).rstrip("\n") + "\n")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if args.profile:
        os.environ["MAMCRAWLER_PROFILE"] = args.profile
    home = ensure_dagster_home()
    from dagster import DagsterInstance

    from pipelines.definitions import PROFILE, defs

    print(f"Profile: {PROFILE.name} ({PROFILE.reason})")
    if PROFILE.name == "demo":
        print("  Set ABS_URL and ABS_API_KEY to read your own Audiobookshelf instead.")
    print(f"Warehouse: {default_warehouse_path()}\nDagster home: {home}")
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    with DagsterInstance.get() as instance:
        result = defs.resolve_job_def("refresh_library").execute_in_process(
            instance=instance, raise_on_error=False, run_config=quiet
        )
        if result.success and not args.skip_metadata:
            result = defs.resolve_job_def("enrich_metadata").execute_in_process(
                instance=instance, raise_on_error=False, run_config=quiet, tags=ALL_BUCKETS
            )
            if result.success:  # the catalogues need the fresh metadata: titles for the gaps
                result = defs.resolve_job_def("update_completeness").execute_in_process(
                    instance=instance, raise_on_error=False, run_config=quiet
                )
        searching = not args.skip_acquisition and bool(defs.resources["acquisition"].indexers)
        if result.success and searching:
            result = defs.resolve_job_def("search_and_queue").execute_in_process(
                instance=instance, raise_on_error=False, run_config=quiet
            )
        elif not args.skip_acquisition:
            print("No indexer configured (MAM_ID, `mamcrawler mam-login` or MAMCRAWLER_TORZNAB): nothing searched.")
    if not result.success:
        failures = [e for e in result.all_events if e.is_failure]
        for event in failures:
            print(f"FAILED {event.step_key}: {event.message}", file=sys.stderr)
        return 1
    warehouse = Warehouse(default_warehouse_path())
    books = warehouse.query("SELECT count(*) AS n FROM library_books")["n"][0]
    missing = read_missing(warehouse)
    summary = (
        missing.filter(pl.col("reason") == "series_gap")
        .group_by("author", "series")
        .agg(pl.len().alias("missing"), pl.col("position").sort().alias("positions"))
        .sort("author", "series")
    )
    print(f"\nRun {result.run_id} succeeded: {books} books in the library, {missing.height} missing books.\n")
    for row in summary.iter_rows(named=True):
        print(f"  {row['author'] or '(no author)'} - {row['series']}: {row['missing']} missing ({_ranges(row['positions'])})")
    if not args.skip_metadata:
        print(_metadata_summary(warehouse))
    if searching:
        print(_downloads_summary(warehouse))
    print("\nFull lists: mamcrawler missing --format table|csv|json, mamcrawler downloads")
    return 0


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


def _metadata_summary(warehouse: Warehouse) -> str:
    levels = warehouse.query(
        "SELECT book_confidence AS level, count(DISTINCT item_id) AS books FROM enriched_books GROUP BY 1 ORDER BY 2 DESC"
    )
    corrections = warehouse.query("SELECT mode, count(*) AS n FROM metadata_corrections GROUP BY 1") if warehouse.has_table(
        "metadata_corrections"
    ) else None
    lines = ["\nMetadata: " + ", ".join(f"{r['books']} books {r['level']}" for r in levels.iter_rows(named=True))]
    if corrections is not None and corrections.height:
        lines.append("Corrections: " + ", ".join(f"{r['n']} {r['mode']}" for r in corrections.iter_rows(named=True))
                     + " (dry run unless MAMCRAWLER_WRITEBACK=1; see metadata_corrections)")
    return "\n".join(lines)


def cmd_reenrich(args: argparse.Namespace) -> int:
    """Re-enrich single books now: each in its bucket partition, with `item_ids` config."""
    ensure_dagster_home()
    from dagster import DagsterInstance

    from pipelines.definitions import defs

    by_bucket: dict[str, list[str]] = {}
    for item_id in args.item_ids:
        by_bucket.setdefault(bucket_of(item_id), []).append(item_id)
    with DagsterInstance.get() as instance:
        for bucket, ids in sorted(by_bucket.items()):
            config = {"ops": {"book_metadata": {"config": {"item_ids": ids, "refresh": args.refresh}}}}
            result = defs.resolve_job_def("enrich_metadata").execute_in_process(
                instance=instance, raise_on_error=False, partition_key=bucket, run_config=config
            )
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


def cmd_ui(args: argparse.Namespace) -> int:
    from pipelines.ui import serve

    return serve(args.host, args.port, REPO_ROOT / "workspace.yaml", args.allow_host)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mamcrawler", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialise the whole asset graph and print what was found")
    run.add_argument("--profile", choices=["demo", "production"], help="default: demo unless ABS_URL is set")
    run.add_argument("--skip-metadata", action="store_true", help="only the library and its gaps, no providers")
    run.add_argument("--skip-acquisition", action="store_true", help="do not search the indexers for the missing books")
    run.set_defaults(func=cmd_run)
    reenrich = sub.add_parser("reenrich", help="ask the providers again about some books, now")
    reenrich.add_argument("item_ids", nargs="+", help="ABS item ids (see library_books.item_id)")
    reenrich.add_argument("--refresh", action="store_true", help="ignore cached provider answers")
    reenrich.set_defaults(func=cmd_reenrich)
    missing = sub.add_parser("missing", help="print the missing books from the warehouse")
    missing.add_argument("--format", choices=["table", "csv", "json"], default="table")
    missing.add_argument("--warehouse", help="DuckDB file (default: MAMCRAWLER_WAREHOUSE or data/warehouse.duckdb)")
    missing.set_defaults(func=cmd_missing)
    downloads = sub.add_parser("downloads", help="print the download requests (what was sent, or would be in a dry run)")
    downloads.add_argument("--format", choices=["table", "csv", "json"], default="table")
    downloads.add_argument("--warehouse", help="DuckDB file (default: MAMCRAWLER_WAREHOUSE or data/warehouse.duckdb)")
    downloads.set_defaults(func=cmd_downloads)
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
