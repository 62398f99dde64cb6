"""Group `acquisition`: releases for the missing books, downloads in qBittorrent, imports into ABS."""

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from assets.presentation import counts_table, lines_md, markdown_table, table_metadata
from mamcrawler import acquisition as lifecycle
from mamcrawler.importing import (
    AUDIO_EXTENSIONS,
    PlacementError,
    UnsafeName,
    book_folder,
    check_audio,
    place_files,
    safe_relative,
)
from mamcrawler.release_score import (
    ReleasePreferences,
    candidate_frame,
    choose_release,
    rank_releases,
)
from mamcrawler.torrents import InvalidTorrent, info_hash, magnet_info_hash
from mamcrawler.warehouse import REPO_ROOT
from mamcrawler.writeback import plan_import_metadata
from resources.audiobookshelf import AbsError, AudiobookshelfResource
from resources.indexers import IndexerAuthError, open_indexers
from resources.mam import MamError, MamResource
from resources.profile import ProfileResource
from resources.qbittorrent import QBittorrentError, QBittorrentRejectedError, QBittorrentResource
from resources.settings import AcquisitionOptions
from resources.torznab import TorznabError, TorznabResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

INDEXER_POOL = "indexers"  # MAM's politeness limit must hold across concurrent runs


def _now() -> datetime:
    return datetime.now(UTC)


def _preferences(options: AcquisitionOptions, user_is_vip: bool) -> ReleasePreferences:
    return ReleasePreferences(
        formats=tuple(options.formats),
        languages=tuple(options.languages),
        min_seeders=options.min_seeders,
        user_is_vip=user_is_vip,
        allow_abridged=options.allow_abridged,
        freeleech_only=options.freeleech_only,
        min_score=options.min_score,
    )


def _policy(options: AcquisitionOptions) -> lifecycle.RetryPolicy:
    return lifecycle.RetryPolicy(max_attempts=options.max_attempts, backoff_s=options.retry_backoff_s)


@asset(group_name="acquisition", deps=["missing_books", "series_catalog"], pool=INDEXER_POOL, kinds={"duckdb", "polars"})
def release_candidates(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    profile: ProfileResource,
    acquisition: AcquisitionOptions,
    mam: MamResource,
    torznab: TorznabResource,
) -> MaterializeResult:
    """Every indexer result for the missing books searched this run, scored, with the chosen
    release and the reason for the choice. Books least recently searched go first; a
    release that failed for a book before is never chosen for it again."""
    store = warehouse.get()
    now = _now()
    missing = store.read_table("missing_books")
    previous = store.read_optional("release_candidates")
    requests = store.read_optional("download_requests")
    failures = lifecycle.book_failures(store.read_optional("failed_attempts"))
    policy = _policy(acquisition)
    active = set() if requests is None else set(requests.filter(pl.col("status").is_in(list(lifecycle.ACTIVE)))["missing_id"])
    searchable = missing.filter(
        (pl.col("status") == "identified")
        & ~pl.col("missing_id").is_in(list(active))
        & ~pl.col("missing_id").is_in([m for m, (count, _) in failures.items() if count >= policy.max_attempts])
    )
    last_search = (
        previous.group_by("missing_id").agg(pl.col("searched_at").max())
        if previous is not None and not previous.is_empty()
        else pl.DataFrame(schema={"missing_id": pl.Utf8, "searched_at": lifecycle.CANDIDATES_SCHEMA["searched_at"]})
    )
    order = searchable.join(last_search, on="missing_id", how="left").sort(
        ["searched_at", "priority", "first_seen_at"], nulls_last=False
    )
    batch = order.head(acquisition.max_searches_per_run)
    wanted = lifecycle.wanted_books(batch, store.read_table("library_books"), store.read_optional("series_catalog"))
    excluded = lifecycle.failed_releases(requests)
    frames, choices, skipped, errors = [], {}, {}, []
    searched = requests_made = 0
    with open_indexers(acquisition.indexers, mam, torznab) as indexers:
        try:
            prefs = _preferences(acquisition, indexers.user_is_vip())
            for book in wanted:
                title, author = lifecycle.search_text(book)
                found = indexers.search(title, author)
                ranked = rank_releases(book, found.releases, prefs)
                chosen, why = choose_release(ranked, exclude=excluded.get(book.missing_id, set()))
                frames.append(candidate_frame(book, ranked, chosen).with_columns(choice=pl.lit(why), searched_at=pl.lit(now)))
                choices[book.missing_id] = why
                searched += 1
                requests_made += found.requests
                for reason, count in found.skipped.items():
                    skipped[reason] = skipped.get(reason, 0) + count
                errors += found.errors
                if searched % 10 == 0:
                    context.log.info(f"searched {searched}/{len(wanted)} books, {requests_made} indexer requests")
        except IndexerAuthError as exc:
            errors.append(str(exc))
            context.log.error(str(exc))
    table = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=lifecycle.CANDIDATES_SCHEMA)
    searched_ids = pl.DataFrame({"missing_id": [b.missing_id for b in wanted[:searched]]}, schema={"missing_id": pl.Utf8})
    store.replace_rows("release_candidates", table.select(list(lifecycle.CANDIDATES_SCHEMA)), searched_ids)
    if wanted and not searched:
        raise Failure(description=f"no book could be searched: {errors[0] if errors else 'unknown error'}")
    chosen = table.filter(pl.col("chosen"))
    labels = {b.missing_id: lifecycle.book_label(b.__dict__) for b in wanted}
    return MaterializeResult(
        metadata={
            **table_metadata(table, profile, ["missing_id", "indexer", "title", "filetype", "score", "accepted", "rejection", "chosen"]),
            "books_searched": searched,
            "books_waiting": max(0, searchable.height - searched),
            "books_with_a_release": chosen.height,
            "indexer_requests": requests_made,
            "choices": MetadataValue.md(
                "\n".join(f"- **{labels[m]}**: {why}" for m, why in choices.items()) or "_no book searched_"
            ),
            "rejections": MetadataValue.md(counts_table(dict(table.filter(~pl.col("accepted"))["rejection"].value_counts().iter_rows()))),
            "skipped_rows": MetadataValue.md(counts_table(skipped)),
            "errors": lines_md(errors),
        }
    )


def _torrent_dir(options: AcquisitionOptions) -> Path:
    return Path(options.torrent_dir) if options.torrent_dir else REPO_ROOT / "data" / "torrents"


def _keep_torrent(options: AcquisitionOptions, ih: str, torrent: bytes | str) -> None:
    """The .torrent (or magnet) a `sending` request needs if the run dies before qBittorrent has it."""
    directory = _torrent_dir(options)
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(torrent, bytes):
        (directory / f"{ih}.torrent").write_bytes(torrent)
    else:
        (directory / f"{ih}.magnet").write_text(torrent)


def _kept_torrent(options: AcquisitionOptions, ih: str) -> bytes | str | None:
    directory = _torrent_dir(options)
    if (directory / f"{ih}.torrent").exists():
        return (directory / f"{ih}.torrent").read_bytes()
    if (directory / f"{ih}.magnet").exists():
        return (directory / f"{ih}.magnet").read_text()
    return None


def _frame(rows: list[dict], schema: dict) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema)


def _status(missing_id: str, status: str, now: datetime) -> tuple[str, pl.DataFrame]:
    return "missing_books", pl.DataFrame(
        {"missing_id": [missing_id], "status": [status], "updated_at": [now]},
        schema={"missing_id": pl.Utf8, "status": pl.Utf8, "updated_at": pl.Datetime("us", "UTC")},
    )


REQUEST_KEY = ("missing_id", "attempt")
FAILURE_KEY = ("task", "item")


@asset(group_name="acquisition", deps=[release_candidates, "missing_books"], pool=INDEXER_POOL, kinds={"duckdb", "qbittorrent"})
def download_requests(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    profile: ProfileResource,
    acquisition: AcquisitionOptions,
    mam: MamResource,
    torznab: TorznabResource,
    qbittorrent: QBittorrentResource,
) -> MaterializeResult:
    """The chosen release of each missing book, sent to qBittorrent (or, in a dry run, what
    would be sent). Idempotent by info-hash: the torrent is fetched, hashed and written as
    `sending` before qBittorrent is asked, so a crash, a retry or a restart finds it and
    finishes the send instead of adding it twice."""
    store = warehouse.get()
    now = _now()
    policy = _policy(acquisition)
    missing = store.read_table("missing_books")
    requests = store.read_optional("download_requests")
    failed = store.read_optional("failed_attempts")
    candidates = store.read_optional("release_candidates")
    chosen = (
        candidates.filter(pl.col("chosen")) if candidates is not None else pl.DataFrame(schema=lifecycle.CANDIDATES_SCHEMA)
    )
    live = None if requests is None else requests.filter(pl.col("status") != "would_send")
    plan, held = lifecycle.plan_sends(
        chosen, missing, live, lifecycle.book_failures(failed), _limits(acquisition), policy, now
    )
    books = {r["missing_id"]: r for r in missing.iter_rows(named=True)}
    runtimes = {
        w.missing_id: w.expected_duration_s
        for w in lifecycle.wanted_books(
            missing.filter(pl.col("missing_id").is_in([c["missing_id"] for c in plan])),
            store.read_table("library_books"),
            store.read_optional("series_catalog"),
        )
    }

    def row(candidate: dict, status: str, info_hash: str | None, attempt: int) -> dict:
        return lifecycle.request_row(
            books[candidate["missing_id"]], candidate, attempt=attempt, status=status, info_hash=info_hash, now=now,
            expected_duration_s=runtimes.get(candidate["missing_id"]),
        )

    if acquisition.dry_run:
        rows = [row(c, "would_send", c.get("info_hash"), 0) for c in plan]
        table = pl.concat([live, _frame(rows, lifecycle.REQUEST_SCHEMA)], how="diagonal_relaxed") if live is not None else _frame(rows, lifecycle.REQUEST_SCHEMA)
        store.write_table("download_requests", table.select(list(lifecycle.REQUEST_SCHEMA)))
        context.log.info(f"dry run: {len(rows)} download(s) recorded, nothing sent to qBittorrent")
        return _requests_result(table, profile, [{**c, "book": books[c["missing_id"]]} for c in plan], held, [], dry_run=True)

    errors: list[str] = []
    try:
        qbittorrent.ensure_category()
        finished = _finish_interrupted(store, qbittorrent, live, acquisition, now)
    except QBittorrentError as exc:
        store.apply([("failed_attempts", _failure(failed, "send", "qbittorrent", "qBittorrent", "qbittorrent_unavailable", str(exc), now, policy), FAILURE_KEY)])
        raise Failure(description=f"qBittorrent is not available, nothing was sent: {exc}") from None
    known_hashes = set() if live is None else set(live.filter(pl.col("status") != "failed")["info_hash"].drop_nulls())
    sent: list[dict] = []
    with open_indexers(acquisition.indexers, mam, torznab) as indexers:
        for candidate in plan:
            mid = candidate["missing_id"]
            attempt = lifecycle.next_attempt_number(store.read_optional("download_requests"), mid)
            label = lifecycle.book_label(books[mid])
            try:
                torrent = indexers.fetch(candidate)
                ih = info_hash(torrent) if isinstance(torrent, bytes) else magnet_info_hash(torrent)
            except IndexerAuthError as exc:
                errors.append(str(exc))
                store.apply([("failed_attempts", _failure(failed, "send", candidate["indexer"], label, "indexer_auth", str(exc), now, policy), FAILURE_KEY)])
                break  # every further fetch would fail the same way
            except (MamError, TorznabError, InvalidTorrent) as exc:  # this release only: the next one may work
                message = f"{candidate['indexer']} {candidate['release_id']}: {exc}"
                errors.append(message)
                store.apply([
                    ("download_requests", _frame([{**row(candidate, "failed", None, attempt), "error": message}], lifecycle.REQUEST_SCHEMA), REQUEST_KEY),
                    ("failed_attempts", _failure(failed, "send", mid, label, "torrent_unavailable", message, now, policy), FAILURE_KEY),
                ])
                continue
            if ih in known_hashes:
                held["same torrent already requested"] = held.get("same torrent already requested", 0) + 1
                continue
            _keep_torrent(acquisition, ih, torrent)
            request = row(candidate, "sending", ih, attempt)
            store.apply([("download_requests", _frame([request], lifecycle.REQUEST_SCHEMA), REQUEST_KEY)])
            try:
                outcome = qbittorrent.add_torrent(torrent, ih, request["tags"].split(","))
            except QBittorrentRejectedError as exc:
                store.apply([
                    ("download_requests", _frame([{**request, "status": "failed", "error": str(exc)}], lifecycle.REQUEST_SCHEMA), REQUEST_KEY),
                    ("failed_attempts", _failure(failed, "send", mid, label, "rejected_by_qbittorrent", str(exc), now, policy), FAILURE_KEY),
                ])
                errors.append(f"{label}: {exc}")
                continue
            except QBittorrentError as exc:
                # Whether qBittorrent took it is unknown: the `sending` row stays and the next
                # run looks the hash up before doing anything else.
                errors.append(f"qBittorrent failed while adding {label}: {exc}")
                store.apply([("failed_attempts", _failure(failed, "send", "qbittorrent", "qBittorrent", "qbittorrent_unavailable", str(exc), now, policy), FAILURE_KEY)])
                break
            store.apply(
                [("download_requests", _frame([{**request, "status": "sent"}], lifecycle.REQUEST_SCHEMA), REQUEST_KEY)],
                statuses=_status(mid, "queued", now),
            )
            known_hashes.add(ih)
            sent.append({**candidate, "book": books[mid], "outcome": outcome.status})
            context.log.info(f"sent {label} ({outcome.status}): {candidate['title']}")
    for error in errors:
        context.log.warning(error)
    table = store.read_table("download_requests")
    return _requests_result(table, profile, sent, held, errors, dry_run=False, finished=finished)


def _limits(options: AcquisitionOptions) -> lifecycle.SendLimits:
    return lifecycle.SendLimits(max_new_per_run=options.max_new_per_run, max_active=options.max_active)


def _failure(failed, task, item, book, reason, error, now, policy) -> pl.DataFrame:
    return lifecycle.record_failure(failed, task=task, item=item, book=book, reason=reason, error=error, now=now, policy=policy)


def _finish_interrupted(store, qbittorrent: QBittorrentResource, live, options: AcquisitionOptions, now) -> int:
    """Requests left `sending` by a crash: confirmed if qBittorrent has the hash, sent again
    from the kept .torrent otherwise. Returns how many were finished."""
    if live is None:
        return 0
    pending = live.filter(pl.col("status") == "sending")
    if pending.is_empty():
        return 0
    present = {t.info_hash for t in qbittorrent.torrents()}
    for request in pending.iter_rows(named=True):
        ih = request["info_hash"]
        if ih not in present:
            kept = _kept_torrent(options, ih)
            try:
                if kept is None:
                    raise QBittorrentRejectedError("interrupted before qBittorrent had it, and the kept .torrent is gone")
                qbittorrent.add_torrent(kept, ih, request["tags"].split(","))
            except (QBittorrentRejectedError, InvalidTorrent) as exc:
                store.apply([("download_requests", _frame([{**request, "status": "failed", "updated_at": now, "error": str(exc)}], lifecycle.REQUEST_SCHEMA), REQUEST_KEY)])
                continue
        store.apply(
            [("download_requests", _frame([{**request, "status": "sent", "updated_at": now}], lifecycle.REQUEST_SCHEMA), REQUEST_KEY)],
            statuses=_status(request["missing_id"], "queued", now),
        )
    return pending.height


def _requests_result(table, profile, plan, held, errors, *, dry_run: bool, finished: int = 0) -> MaterializeResult:
    by_status = dict(table["status"].value_counts().iter_rows()) if not table.is_empty() else {}
    planned = pl.DataFrame(
        [{"book": lifecycle.book_label(c["book"]), "release": c["title"], "indexer": c["indexer"], "score": c.get("score")} for c in plan],
        schema={"book": pl.Utf8, "release": pl.Utf8, "indexer": pl.Utf8, "score": pl.Float64},
    )
    return MaterializeResult(
        metadata={
            **table_metadata(table, profile, ["book", "release_title", "indexer", "status", "info_hash", "error"]),
            "mode": "dry run: recorded, nothing sent (set MAMCRAWLER_DRY_RUN=0 to send)" if dry_run else "live",
            ("would_send" if dry_run else "sent_this_run"): len(plan),
            "this_run": MetadataValue.md(markdown_table(planned)),
            "not_sent": MetadataValue.md(counts_table(held)),
            "by_status": MetadataValue.md(counts_table(by_status, key="status")),
            "interrupted_sends_finished": finished,
            "errors": lines_md(errors),
        }
    )


IMPORTED_SCHEMA: dict[str, pl.DataType] = {
    "missing_id": pl.Utf8,
    "info_hash": pl.Utf8,
    "book": pl.Utf8,
    "abs_item_id": pl.Utf8,
    "abs_path": pl.Utf8,
    "method": pl.Utf8,  # hardlink / copy
    "files": pl.Int64,
    "bytes": pl.Int64,
    "duration_s": pl.Float64,
    "metadata_written": pl.Utf8,
    "imported_at": pl.Datetime("us", "UTC"),
}


class _ReleaseUnusable(Exception):
    """The download itself is wrong (not audio, unsafe names, wrong runtime): try another release."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _TryLater(Exception):
    """The import could not finish now (disk full, ABS away); the same download is retried."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@asset(group_name="acquisition", deps=[download_requests], pool=WAREHOUSE_POOL, kinds={"duckdb", "qbittorrent"})
def imported_books(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    profile: ProfileResource,
    acquisition: AcquisitionOptions,
    qbittorrent: QBittorrentResource,
    abs_client: AudiobookshelfResource,
) -> MaterializeResult:
    """Follows every sent download in qBittorrent: progress, stalls (removed, recorded in
    `failed_attempts`, the next release tried after a backoff) and completions, which are
    checked (audio, runtime), placed into the ABS library folder (hardlink, so the torrent
    keeps seeding, or copy), scanned into ABS and given the wanted book's metadata."""
    store = warehouse.get()
    now = _now()
    policy = _policy(acquisition)
    requests = store.read_optional("download_requests")
    if acquisition.dry_run or requests is None:
        table = store.read_optional("imported_books")
        table = table if table is not None else _frame([], IMPORTED_SCHEMA)
        return MaterializeResult(metadata={**table_metadata(table, profile), "mode": "dry run: nothing was sent, nothing to import"})
    try:
        torrents = {t.info_hash: t for t in qbittorrent.torrents()}
    except QBittorrentError as exc:
        raise Failure(description=f"cannot read the downloads from qBittorrent: {exc}") from None
    observed = {
        h: lifecycle.Observed(h, t.progress, t.state, t.added_on, t.completion_on, t.last_activity) for h, t in torrents.items()
    }
    counts: dict[str, int] = {}

    def count(what: str) -> None:
        counts[what] = counts.get(what, 0) + 1

    updates = lifecycle.progress_updates(requests, observed, now)
    if not updates.is_empty():
        moving = updates.select("missing_id", status=pl.lit("downloading"), updated_at=pl.lit(now))
        store.apply([("download_requests", updates, REQUEST_KEY)], statuses=("missing_books", moving))
        for status, n in updates["status"].value_counts().iter_rows():
            counts[f"now {status}"] = n

    errors: list[str] = []
    failed = store.read_optional("failed_attempts")
    active = store.read_table("download_requests").filter(pl.col("status").is_in(["sent", "downloading"]))
    for request in active.iter_rows(named=True):
        seen = observed.get(request["info_hash"])
        reason = "removed from qBittorrent" if seen is None else lifecycle.stalled_reason(seen, now.timestamp(), acquisition.stall_after_s)
        if reason is None:
            continue
        if seen is not None:
            try:
                qbittorrent.remove(request["info_hash"], delete_files=True)
            except QBittorrentError as exc:
                errors.append(f"{request['book']}: stalled, but qBittorrent did not remove it ({exc}); tried again next run")
                continue
        failed = _give_up(store, failed, request, "download", "stalled" if seen else "removed", reason, now, policy)
        count("stalled or removed")
        context.log.warning(f"{request['book']}: {reason}; the next release will be tried")

    imported = []
    completed = store.read_table("download_requests").filter(pl.col("status") == "completed")
    library = _library_target(abs_client, acquisition) if not completed.is_empty() else None
    for request in completed.iter_rows(named=True):
        torrent = torrents.get(request["info_hash"])
        try:
            if torrent is None:
                raise _TryLater("torrent_gone", "the torrent is no longer in qBittorrent")
            row = _import(request, torrent, qbittorrent, abs_client, acquisition, library, now)
        except _ReleaseUnusable as exc:
            failed = _give_up(store, failed, request, "import", exc.reason, str(exc), now, policy)
            errors.append(f"{request['book']}: {exc}")
            count(f"unusable: {exc.reason}")
            continue
        except _TryLater as exc:
            store.apply([("failed_attempts", _failure(failed, "import", request["info_hash"], request["book"], exc.reason, str(exc), now, policy), FAILURE_KEY)])
            failed = store.read_optional("failed_attempts")
            errors.append(f"{request['book']}: {exc} (will retry)")
            count(f"retry later: {exc.reason}")
            continue
        store.apply(
            [
                ("imported_books", _frame([row], IMPORTED_SCHEMA), ("info_hash",)),
                ("download_requests", _frame([{**request, "status": "imported", "updated_at": now}], lifecycle.REQUEST_SCHEMA), REQUEST_KEY),
            ],
            statuses=_status(request["missing_id"], "completed", now),
        )
        imported.append(row)
        count("imported")
        context.log.info(f"imported {request['book']} into ABS as {row['abs_path']} ({row['method']})")
    for error in errors:
        context.log.warning(error)
    table = store.read_optional("imported_books")
    table = table if table is not None else _frame([], IMPORTED_SCHEMA)
    return MaterializeResult(
        metadata={
            **table_metadata(table, profile, ["book", "abs_path", "method", "files", "duration_s", "imported_at"]),
            "imported_this_run": len(imported),
            "downloads_in_qbittorrent": len(torrents),
            "this_run": MetadataValue.md(counts_table(counts, key="event")),
            "errors": lines_md(errors),
        }
    )


def _give_up(store, failed, request: dict, task: str, reason: str, error: str, now, policy) -> pl.DataFrame | None:
    """This release failed: the request is `failed`, the failure counted, and the book goes
    back to `identified` (the next release after a backoff) or `failed` when attempts are used up."""
    failure = _failure(failed, task, request["missing_id"], request["book"], reason, error, now, policy)
    used = lifecycle.book_failures(pl.concat([f for f in (failed, failure) if f is not None]).unique(FAILURE_KEY, keep="last")).get(request["missing_id"], (0, None))[0]
    store.apply(
        [
            ("download_requests", _frame([{**request, "status": "failed", "updated_at": now, "error": error}], lifecycle.REQUEST_SCHEMA), REQUEST_KEY),
            ("failed_attempts", failure, FAILURE_KEY),
        ],
        statuses=_status(request["missing_id"], "failed" if used >= policy.max_attempts else "identified", now),
    )
    return store.read_optional("failed_attempts")


def _library_target(abs_client: AudiobookshelfResource, options: AcquisitionOptions) -> tuple[str, str]:
    """(ABS library id, ABS's path of the folder books are placed in)."""
    if not options.library_dir:
        raise Failure(description="set MAMCRAWLER_LIBRARY_DIR to this machine's path of the ABS library folder to import downloads")
    try:
        libraries = [lib for lib in abs_client.libraries() if lib.get("mediaType") == "book"]
    except AbsError as exc:
        raise Failure(description=f"cannot read the ABS libraries to import into: {exc}") from None
    library = next((lib for lib in libraries if lib["id"] == options.abs_library_id), None) if options.abs_library_id else (libraries[0] if libraries else None)
    if library is None:
        raise Failure(description=f"no ABS book library {options.abs_library_id or ''} to import into")
    folder = options.abs_library_folder or library["folders"][0]["fullPath"]
    return library["id"], folder.rstrip("/")


def _import(request: dict, torrent, qbittorrent: QBittorrentResource, abs_client: AudiobookshelfResource, options: AcquisitionOptions, library: tuple[str, str], now) -> dict:
    try:
        files = qbittorrent.files(request["info_hash"])
        names = [(name, safe_relative(name)) for name, _size in files]
    except UnsafeName as exc:
        raise _ReleaseUnusable("unsafe_name", f"the torrent names a file unsafely: {exc}") from None
    except QBittorrentError as exc:
        raise _TryLater("qbittorrent_unavailable", str(exc)) from None
    base = Path(options.local_path(torrent.save_path))
    keep = [(base / name, rel) for name, rel in names if rel.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS | {"jpg", "jpeg", "png"}]
    audio = [src for src, rel in keep if rel.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS]
    check = check_audio(audio, request["expected_duration_s"], tolerance=options.duration_tolerance)
    if not check.ok:
        raise _ReleaseUnusable("not_audio" if not audio else "audio_check", check.reason or "audio check failed")
    # The torrent's own top folder is dropped: the book folder is ours.
    tops = {rel.parts[0] for _, rel in keep}
    if len(tops) == 1 and all(len(rel.parts) > 1 for _, rel in keep):
        keep = [(src, rel.relative_to(next(iter(tops)))) for src, rel in keep]
    folder = book_folder(request["author"] or "Unknown Author", request["series"], request["position_label"], request["title"] or request["release_title"])
    try:
        placement = place_files(keep, Path(options.library_dir) / folder)
    except PlacementError as exc:
        raise _TryLater("placement", str(exc)) from None
    library_id, abs_folder = library
    abs_path = f"{abs_folder}/{folder.as_posix()}"
    try:
        abs_client.scan_library(library_id)
        if not abs_client.wait_for_scan(library_id):
            raise _TryLater("abs_scan_timeout", "the ABS library scan did not finish in time")
        item = abs_client.find_item_by_path(library_id, abs_path)
        if item is None:
            raise _TryLater("abs_item_missing", f"ABS has no item at {abs_path} after the scan")
        body = plan_import_metadata(request, item["media"]["metadata"])
        if body:
            abs_client.update_media(item["id"], body)
    except AbsError as exc:
        raise _TryLater("abs_unavailable", str(exc)) from None
    return {
        "missing_id": request["missing_id"], "info_hash": request["info_hash"], "book": request["book"],
        "abs_item_id": item["id"], "abs_path": abs_path, "method": placement.method, "files": len(placement.files),
        "bytes": placement.bytes, "duration_s": check.duration_s, "metadata_written": json.dumps(body, ensure_ascii=False),
        "imported_at": now,
    }
