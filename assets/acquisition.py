"""Group `acquisition`: releases for the missing books, downloads in qBittorrent, imports into ABS."""

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import polars as pl
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from assets.presentation import choices_md, counts_table, lines_md, markdown_table, table_metadata
from mamcrawler import acquisition as lifecycle
from mamcrawler.identity import matched_candidates, owned_matches
from mamcrawler.importing import (
    AUDIO_EXTENSIONS,
    PlacementError,
    UnsafeDownload,
    UnsafeName,
    book_folder,
    check_audio,
    check_download,
    is_file,
    place_files,
    safe_relative,
)
from mamcrawler.notifications import IMPORTED_TITLES
from mamcrawler.release_score import candidate_frame, choose_release, rank_releases
from mamcrawler.torrents import InvalidTorrent, KeptTorrents, info_hash, magnet_info_hash
from mamcrawler.warehouse import default_warehouse_path
from mamcrawler.writeback import plan_import_metadata
from resources.audiobookshelf import AbsError, AbsScanTimeoutError, AudiobookshelfResource
from resources.indexers import IndexerAuthError, IndexerNotConfiguredError, IndexerUnavailableError, open_indexers
from resources.mam import MamError, MamResource
from resources.profile import ProfileResource
from resources.qbittorrent import QBittorrentAuthError, QBittorrentError, QBittorrentRejectedError, QBittorrentResource
from resources.settings import AcquisitionOptions, CompletenessOptions
from resources.torznab import TorznabError, TorznabResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

INDEXER_POOL = "indexers"  # MAM's politeness limit must hold across concurrent runs


def _now() -> datetime:
    return datetime.now(UTC)




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
    if not acquisition.indexers:
        raise Failure(description="no indexer configured: set MAM_ID (or run `mamcrawler mam-login`) or MAMCRAWLER_TORZNAB")
    store = warehouse.get()
    now = _now()
    missing = store.read_table("missing_books")
    previous = store.read_optional("release_searches")
    requests = store.read_optional("download_requests")
    failures = lifecycle.book_failures(store.read_optional("failed_attempts"))
    policy = acquisition.retry_policy()
    active = set() if requests is None else set(requests.filter(pl.col("status").is_in(list(lifecycle.ACTIVE)))["missing_id"])
    resting = [m for m, (count, until) in failures.items() if count >= policy.max_attempts or (until and until > now)]
    searchable = missing.filter(
        (pl.col("status") == "identified") & ~pl.col("missing_id").is_in([*active, *resting])
    )
    last_search = (previous if previous is not None else pl.DataFrame(schema=lifecycle.SEARCHES_SCHEMA)).select(
        "missing_id", "searched_at"
    )
    order = searchable.join(last_search, on="missing_id", how="left").sort(
        ["searched_at", "priority", "first_seen_at"], nulls_last=False
    )
    batch = order.head(acquisition.max_searches_per_run)
    wanted = lifecycle.wanted_books(batch, store.read_table("library_books"), store.read_optional("series_catalog"))
    excluded = lifecycle.failed_releases(requests)
    frames, choices, skipped, errors, searched_ids, searches = [], {}, {}, [], [], []
    requests_made = truncated = 0
    with open_indexers(acquisition.indexers, mam, torznab) as indexers:
        try:
            prefs = acquisition.preferences(indexers.user_is_vip())
            for book in wanted:
                title, author = lifecycle.search_text(book)
                found = indexers.search(title, author)
                requests_made += found.requests
                truncated += found.truncated  # more rows than max_results: the best of the first pages
                errors += found.errors
                if found.errors and not found.releases:
                    continue  # not searched: what the last search found stays
                ranked = rank_releases(book, found.releases, prefs)
                chosen, why = choose_release(ranked, exclude=excluded.get(book.missing_id, set()))
                frames.append(candidate_frame(book, ranked, chosen).with_columns(choice=pl.lit(why), searched_at=pl.lit(now)))
                choices[book.missing_id] = why
                searched_ids.append(book.missing_id)
                searches.append({"missing_id": book.missing_id, "searched_at": now, "releases": len(ranked), "choice": why})
                for reason, count in found.skipped.items():
                    skipped[reason] = skipped.get(reason, 0) + count
                if len(searched_ids) % 10 == 0:
                    context.log.info(f"searched {len(searched_ids)}/{len(wanted)} books, {requests_made} indexer requests")
        except IndexerAuthError as exc:
            errors.append(str(exc))
            context.log.error(str(exc))
    table = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=lifecycle.CANDIDATES_SCHEMA)
    keys = pl.DataFrame({"missing_id": searched_ids}, schema={"missing_id": pl.Utf8})
    store.replace_rows("release_candidates", table.select(list(lifecycle.CANDIDATES_SCHEMA)), keys)
    store.upsert("release_searches", pl.DataFrame(searches, schema=lifecycle.SEARCHES_SCHEMA), ("missing_id",))
    if wanted and not searched_ids:
        raise Failure(description=f"no book could be searched: {errors[0] if errors else 'unknown error'}")
    chosen = table.filter(pl.col("chosen"))
    labels = {b.missing_id: lifecycle.book_label(b.__dict__) for b in wanted}
    return MaterializeResult(
        metadata={
            **table_metadata(table, profile, ["missing_id", "indexer", "title", "filetype", "score", "accepted", "rejection", "chosen"]),
            "books_searched": len(searched_ids),
            "books_waiting": max(0, searchable.height - len(searched_ids)),
            "searches_cut_at_max_results": truncated,
            "books_with_a_release": chosen.height,
            "indexer_requests": requests_made,
            "choices": MetadataValue.md(choices_md(choices, labels, dict(missing.select("missing_id", "priority").iter_rows()))),
            "rejections": MetadataValue.md(counts_table(dict(table.filter(~pl.col("accepted"))["rejection"].value_counts().iter_rows()))),
            "skipped_rows": MetadataValue.md(counts_table(skipped)),
            "errors": lines_md(errors),
        }
    )


@asset(group_name="acquisition", deps=[release_candidates, "missing_books"], pool=WAREHOUSE_POOL, kinds={"duckdb", "qbittorrent"})
def download_requests(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    profile: ProfileResource,
    acquisition: AcquisitionOptions,
    options: CompletenessOptions,
    mam: MamResource,
    torznab: TorznabResource,
    qbittorrent: QBittorrentResource,
) -> MaterializeResult:
    """The chosen release of each missing book, sent to qBittorrent (or, in a dry run, what
    would be sent). Idempotent by info-hash: the torrent is fetched, hashed and written as
    `sending` before qBittorrent is asked, so a crash, a retry or a restart finds it and
    finishes the send instead of adding it twice; a hash once requested is never sent again.
    After a failed download the next acceptable release of the book is sent, after a backoff."""
    store = warehouse.get()
    now = _now()
    policy = acquisition.retry_policy()
    missing = store.read_table("missing_books")
    requests = store.read_optional("download_requests")
    live = None if requests is None else requests.filter(pl.col("status") != "would_send")
    books = {r["missing_id"]: r for r in missing.iter_rows(named=True)}
    # Second line of defence: a book the library (or what enrichment matched to it) already has is never sent.
    matched = matched_candidates(store.read_optional("book_metadata"), options.ownership_min_confidence)
    owned = owned_matches(missing, store.read_table("library_books"), matched)["missing_id"].to_list()
    if owned:
        context.log.warning(f"{len(owned)} missing book(s) match an owned item and are not sent")
    plan = lifecycle.plan_sends(
        lifecycle.next_candidates(store.read_optional("release_candidates"), live),
        missing.with_columns(pl.when(pl.col("missing_id").is_in(owned)).then(pl.lit("owned")).otherwise("status").alias("status")),
        live,
        lifecycle.book_failures(store.read_optional("failed_attempts")), acquisition.send_limits(), policy, now,
    )
    held = plan.held
    runtimes = {
        w.missing_id: w.expected_duration_s
        for w in lifecycle.wanted_books(
            missing.filter(pl.col("missing_id").is_in([c["missing_id"] for c in plan.eligible])),
            store.read_table("library_books"), store.read_optional("series_catalog"),
        )
    }

    def new_request(candidate: dict, status: str, info_hash: str | None, attempt: int) -> dict:
        # An omnibus runs as long as the books it covers: one book's runtime would reject it.
        single = len((candidate.get("covers") or "").split(",")) <= 1
        return lifecycle.request_row(
            books[candidate["missing_id"]], candidate, attempt=attempt, status=status, info_hash=info_hash, now=now,
            expected_duration_s=runtimes.get(candidate["missing_id"]) if single else None,
        )

    if acquisition.dry_run:
        rows, seen = [], set()
        for candidate in plan.eligible[: plan.slots]:
            if candidate.get("info_hash") and candidate["info_hash"] in seen:
                continue  # two books, one omnibus: it would be sent once
            seen.add(candidate.get("info_hash"))
            rows.append(new_request(candidate, "would_send", candidate.get("info_hash"), 0))
        table = pl.concat([t for t in (live, lifecycle.requests_frame(rows)) if t is not None], how="vertical_relaxed")
        store.write_table("download_requests", table.select(list(lifecycle.REQUEST_SCHEMA)))
        context.log.info(f"dry run: {len(rows)} download(s) recorded, nothing sent to qBittorrent")
        plan.hold_rest(taken=min(plan.slots, len(plan.eligible)))
        return _requests_result(table, profile, [{**c, "book": books[c["missing_id"]]} for c in plan.eligible[: plan.slots]],
                                held, [], dry_run=True)

    if requests is not None and requests.height != live.height:
        store.write_table("download_requests", live)  # a dry run's preview is not a request
    ledger = lifecycle.Ledger(store, policy, now)
    kept = _kept(acquisition)
    try:
        _settle_books(ledger, qbittorrent, missing, live, kept)
        qbittorrent.ensure_category()
        finished = _finish_interrupted(ledger, qbittorrent, store.read_optional("download_requests"), kept)
    except QBittorrentError as exc:
        reason = "qbittorrent_auth" if isinstance(exc, QBittorrentAuthError) else "qbittorrent_unavailable"
        ledger.service_failed("send", "qbittorrent", "qBittorrent", reason, str(exc))
        raise Failure(description=f"qBittorrent is not available, nothing was sent: {exc}") from None
    known = lifecycle.requested_hashes(live)
    sent: list[dict] = []
    refused: str | None = None
    tried = 0
    with open_indexers(acquisition.indexers, mam, torznab) as indexers:
        for candidate in plan.eligible:
            if len(sent) >= plan.slots:
                break
            tried += 1
            mid = candidate["missing_id"]
            request = new_request(candidate, "sending", None, lifecycle.next_attempt_number(live, mid))
            try:
                torrent = indexers.fetch(candidate)
                ih = info_hash(torrent) if isinstance(torrent, bytes) else magnet_info_hash(torrent)
            except IndexerNotConfiguredError as exc:
                held[str(exc)] = held.get(str(exc), 0) + 1
                continue
            except (IndexerAuthError, IndexerUnavailableError) as exc:
                reason = "indexer_auth" if isinstance(exc, IndexerAuthError) else "indexer_unavailable"
                ledger.service_failed("send", candidate["indexer"], candidate["indexer"], reason, str(exc))
                refused = str(exc) if isinstance(exc, IndexerAuthError) else None
                break  # every further fetch would fail the same way
            except (MamError, TorznabError, InvalidTorrent) as exc:
                ledger.release_failed(request, "send", "torrent_unavailable", f"{candidate['indexer']} {candidate['release_id']}: {exc}")
                continue
            if ih in known:
                # Now that the hash is known, the candidate says so: the next run goes past it.
                store.upsert("release_candidates", _with_hash(candidate, ih), ("missing_id", "indexer", "release_id"))
                held["same torrent already requested"] = held.get("same torrent already requested", 0) + 1
                continue
            request["info_hash"] = ih
            try:
                kept.keep(ih, torrent)
            except OSError as exc:
                ledger.service_failed("send", "torrent_dir", "the .torrent folder", "disk", f"cannot keep the .torrent: {exc}")
                break
            ledger.save(request)  # `sending`: from here a crash is finished by the next run
            try:
                outcome = qbittorrent.add_torrent(torrent, ih, request["tags"].split(","))
            except (QBittorrentRejectedError, InvalidTorrent) as exc:
                ledger.release_failed(request, "send", "rejected_by_qbittorrent", str(exc))
                kept.forget(ih)
                continue
            except QBittorrentError as exc:
                # Whether qBittorrent took it is unknown: the `sending` row stays and the next
                # run looks the hash up before doing anything else.
                ledger.service_failed("send", "qbittorrent", "qBittorrent", "qbittorrent_unavailable", str(exc))
                break
            ledger.save({**request, "status": "sent", "adopted": outcome.status == "already_present"}, book_status="queued")
            kept.forget(ih)
            known.add(ih)
            sent.append({**candidate, "book": books[mid]})
            context.log.info(f"sent {lifecycle.book_label(books[mid])} ({outcome.status}): {candidate['title']}")
    plan.hold_rest(taken=tried)
    for error in ledger.errors:
        context.log.warning(error)
    table = store.read_optional("download_requests")
    if table is None:
        store.write_table("download_requests", table := lifecycle.requests_frame([]))
    if refused is not None:
        raise Failure(description=f"the indexer refused our credentials, sending stopped: {refused}")
    return _requests_result(table, profile, sent, held, ledger.errors, dry_run=False, finished=finished)


# An import ABS could not take is tried again after this, doubling (each try rescans the
# library); one that failed on this machine (disk full, permissions, path mapping) by the next
# run, once the user fixed it.
ABS_RETRY = lifecycle.RetryPolicy(backoff_s=15 * 60)
NO_WAIT = lifecycle.RetryPolicy(backoff_s=0)


def _kept(options: AcquisitionOptions) -> KeptTorrents:
    """Kept beside the warehouse, like the other state (a read-only checkout still works)."""
    return KeptTorrents(Path(options.torrent_dir) if options.torrent_dir else default_warehouse_path().parent / "torrents")


def _with_hash(candidate: dict, ih: str) -> pl.DataFrame:
    row = {k: candidate.get(k) for k in lifecycle.CANDIDATES_SCHEMA}
    return pl.DataFrame([{**row, "info_hash": ih}], schema=lifecycle.CANDIDATES_SCHEMA)


def _settle_books(ledger: lifecycle.Ledger, qbittorrent: QBittorrentResource, missing, requests, kept: KeptTorrents) -> int:
    """Before anything is sent or imported: every book's status agrees with its requests, and a
    download for a book no longer wanted (owned after all, or ignored) is cancelled. A
    finished one keeps seeding; an unfinished one is removed unless the torrent was the user's."""
    repairs = lifecycle.status_repairs(missing, requests, ledger.now)
    if not repairs.is_empty():
        ledger.store.apply(statuses=("missing_books", repairs))
    unwanted = lifecycle.unwanted_requests(missing, requests, ledger.store.read_optional("library_books"))
    for request in unwanted.iter_rows(named=True):
        ih = request["info_hash"]
        if request["status"] != "completed" and qbittorrent.find(ih) is not None:
            if request["adopted"]:
                qbittorrent.remove_tags(ih, request["tags"].split(","))
            else:
                qbittorrent.remove(ih, delete_files=True)
        kept.forget(ih)
        ledger.save({**request, "status": "cancelled", "error": "the book is no longer wanted (in the library, or ignored)"})
    return unwanted.height


def _finish_interrupted(ledger: lifecycle.Ledger, qbittorrent: QBittorrentResource, live, kept: KeptTorrents) -> int:
    """Requests left `sending` by a crash: confirmed if qBittorrent has the hash, sent again
    from the kept .torrent otherwise. Returns how many were settled."""
    if live is None:
        return 0
    pending = live.filter(pl.col("status") == "sending")
    for request in pending.iter_rows(named=True):
        ih = request["info_hash"]
        adopted = False
        if qbittorrent.find(ih) is None:
            torrent = kept.get(ih)
            if torrent is None:
                ledger.release_failed(request, "send", "interrupted", "interrupted before qBittorrent had it, and the kept .torrent is gone")
                continue
            try:
                adopted = qbittorrent.add_torrent(torrent, ih, request["tags"].split(",")).status == "already_present"
            except (QBittorrentRejectedError, InvalidTorrent) as exc:
                ledger.release_failed(request, "send", "rejected_by_qbittorrent", str(exc))
                kept.forget(ih)
                continue
        ledger.save({**request, "status": "sent", "adopted": adopted}, book_status="queued")
        kept.forget(ih)
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
            "interrupted_sends_settled": finished,
            "errors": lines_md(errors),
        }
    )


class _ImportProblem(Exception):
    """Why a finished download was not imported. `retry` None: the release is unusable (not
    audio, unsafe names); else the same download is tried again after that policy's wait,
    recorded in `failed_attempts` unless `record` is off (a wait of seconds, not a failure)."""

    def __init__(self, reason: str, message: str, *, retry: lifecycle.RetryPolicy | None, record: bool = True) -> None:
        super().__init__(message)
        self.reason, self.retry, self.record = reason, retry, record


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
    requests = store.read_optional("download_requests")
    existing = store.read_optional("imported_books")
    if existing is None:
        store.write_table("imported_books", existing := _frame([], lifecycle.IMPORTED_SCHEMA))
    if acquisition.dry_run or requests is None:
        return MaterializeResult(metadata={**table_metadata(existing, profile), "mode": "dry run: nothing was sent, nothing to import"})
    ledger = lifecycle.Ledger(store, acquisition.retry_policy(), now)
    try:
        cancelled = _settle_books(ledger, qbittorrent, store.read_table("missing_books"), requests, _kept(acquisition))
        torrents = {t.info_hash: t for t in qbittorrent.torrents(tag=lifecycle.PROJECT_TAG)}
    except QBittorrentError as exc:
        raise Failure(description=f"cannot read the downloads from qBittorrent: {exc}") from None
    requests = store.read_table("download_requests")
    observed = {
        h: lifecycle.Observed(h, t.progress, t.state, t.added_on, t.completion_on, t.last_activity) for h, t in torrents.items()
    }
    counts: dict[str, int] = {"cancelled: book no longer wanted": cancelled} if cancelled else {}
    updates = lifecycle.progress_updates(requests, observed, now)
    if not updates.is_empty():
        moving = updates.select("missing_id", status=pl.lit("downloading"), updated_at=pl.lit(now))
        store.apply([("download_requests", updates, lifecycle.REQUEST_KEY)], statuses=("missing_books", moving))
        counts.update({f"now {status}": n for status, n in updates["status"].value_counts().iter_rows()})

    active = store.read_table("download_requests").filter(pl.col("status").is_in(["sent", "downloading"]))
    try:
        # Absence is not evidence: a qBittorrent that lists nothing at all has not shown that
        # our downloads were removed, so none is failed (and its book sent again) for it.
        blind = not torrents and not active.is_empty() and not qbittorrent.holds_any_torrent()
    except QBittorrentError as exc:
        raise Failure(description=f"cannot read the downloads from qBittorrent: {exc}") from None
    if blind:
        counts["not judged: qBittorrent lists no torrent at all"] = active.height
        ledger.errors.append(
            f"qBittorrent lists no torrent at all, yet {active.height} downloads were sent to it: none is taken as "
            "removed (a qBittorrent still loading its session answers so); if you did remove them, ignore the books (`mamcrawler override add ignore_book ...`)"
        )
        active = active.head(0)
    for request in active.iter_rows(named=True):
        seen = observed.get(request["info_hash"])
        try:
            if seen is None and qbittorrent.find(request["info_hash"]) is not None:
                continue  # there, without our tag (a user edit): not ours to judge
            reason = "removed from qBittorrent" if seen is None else lifecycle.stalled_reason(seen, now.timestamp(), acquisition.stall_after_s)
            if reason is None:
                continue
            if seen is not None and request["adopted"]:
                qbittorrent.remove_tags(request["info_hash"], request["tags"].split(","))  # the user's torrent: let go of it
            elif seen is not None:
                qbittorrent.remove(request["info_hash"], delete_files=True)
        except QBittorrentError as exc:
            ledger.errors.append(f"{request['book']}: could not check or remove its download ({exc}); tried again next run")
            continue
        ledger.release_failed(request, "download", "stalled" if seen else "removed", reason)
        counts["stalled or removed"] = counts.get("stalled or removed", 0) + 1
        context.log.warning(f"{request['book']}: {reason}; the next release will be tried")

    imported = []
    completed = store.read_table("download_requests").filter(pl.col("status") == "completed")
    waiting = lifecycle.retry_after(store.read_optional("failed_attempts"), "import", now)
    completed = completed.filter(~pl.col("info_hash").is_in(list(waiting)))
    if waiting:
        counts["import retry waiting"] = len(waiting)
    library = _library_target(abs_client, acquisition) if not completed.is_empty() else None
    for request in completed.iter_rows(named=True):
        try:
            torrent = torrents.get(request["info_hash"]) or qbittorrent.find(request["info_hash"])
            row = _import(request, torrent, qbittorrent, abs_client, acquisition, library, now)
        except QBittorrentError as exc:
            ledger.errors.append(f"{request['book']}: qBittorrent did not answer ({exc}); tried again next run")
            continue
        except _ImportProblem as exc:
            if exc.retry is None:
                ledger.release_failed(request, "import", exc.reason, str(exc))
            elif not exc.record:
                ledger.errors.append(f"{request['book']}: {exc}; imported by the next run")
            else:
                wait = f"after {exc.retry.backoff_s / 60:.0f} min, doubling" if exc.retry.backoff_s else "by the next run"
                ledger.service_failed("import", request["info_hash"], request["book"], exc.reason, f"{exc} (tried again {wait})", exc.retry)
            key = f"{'retry later' if exc.retry else 'unusable'}: {exc.reason}"
            counts[key] = counts.get(key, 0) + 1
            continue
        store.apply(
            [
                ("imported_books", _frame([row], lifecycle.IMPORTED_SCHEMA), ("info_hash",)),
                ("download_requests", lifecycle.requests_frame([{**request, "status": "imported", "updated_at": now}]), lifecycle.REQUEST_KEY),
            ],
            statuses=lifecycle.book_statuses([(request["missing_id"], "completed")], now),
        )
        imported.append(row)
        counts["imported"] = counts.get("imported", 0) + 1
        context.log.info(f"imported {request['book']} into ABS as {row['abs_path']} ({row['method']})")
    for error in ledger.errors:
        context.log.warning(error)
    table = store.read_table("imported_books")
    return MaterializeResult(
        metadata={
            **table_metadata(table, profile, ["book", "abs_path", "method", "files", "duration_s", "imported_at"]),
            "imported_this_run": len(imported),
            # The titles the notification of this run lists (sensors never open the warehouse).
            IMPORTED_TITLES: MetadataValue.json([row["book"] for row in imported]),
            "downloads_in_qbittorrent": len(torrents),
            "this_run": MetadataValue.md(counts_table(counts, key="event")),
            "errors": lines_md(ledger.errors),
        }
    )


def _frame(rows: list[dict], schema: dict) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema)


def _library_target(abs_client: AudiobookshelfResource, options: AcquisitionOptions) -> tuple[str, str]:
    """(ABS library id, ABS's path of the folder books are placed in)."""
    if not options.library_dir:
        raise Failure(description="set MAMCRAWLER_LIBRARY_DIR to this machine's path of the ABS library folder to import downloads")
    try:
        libraries = [lib for lib in abs_client.libraries() if lib.get("mediaType") == "book"]
    except AbsError as exc:
        raise Failure(description=f"cannot read the ABS libraries to import into: {exc}") from None
    if not options.abs_library_id and len(libraries) > 1:
        names = ", ".join(f"{lib.get('name')} ({lib['id']})" for lib in libraries)
        raise Failure(description=f"ABS has several book libraries ({names}): set MAMCRAWLER_IMPORT_LIBRARY_ID to the one to import into")
    library = next((lib for lib in libraries if lib["id"] == options.abs_library_id), None) if options.abs_library_id else (libraries[0] if libraries else None)
    if library is None:
        raise Failure(description=f"no ABS book library {options.abs_library_id or ''} to import into")
    folders = [f["fullPath"] for f in library.get("folders") or []]
    if not options.abs_library_folder and len(folders) != 1:
        raise Failure(description=f"ABS library {library.get('name')} has {len(folders)} folders ({', '.join(folders)}): "
                      "set MAMCRAWLER_ABS_LIBRARY_FOLDER to ABS's path of MAMCRAWLER_LIBRARY_DIR")
    folder = options.abs_library_folder or folders[0]
    return library["id"], folder.rstrip("/")


_KEEP = AUDIO_EXTENSIONS | {"jpg", "jpeg", "png"}  # the book and its cover
_BUSY_STATES = {"moving", "checkingUP", "checkingDL", "checkingResumeData"}


def _book_folder(request: dict) -> PurePosixPath:
    try:
        return book_folder(request["author"] or "Unknown Author", request["series"], request["position_label"],
                           request["title"] or request["release_title"])
    except UnsafeName:  # a name of nothing but unsafe characters: the id still names it
        return PurePosixPath("Unknown Author", request["missing_id"])


@contextlib.contextmanager
def _placement_problems() -> Iterator[None]:
    """A download that must never be placed is unusable; other placement failures are retried."""
    try:
        yield
    except UnsafeDownload as exc:
        raise _ImportProblem("unsafe_download", str(exc), retry=None) from None
    except PlacementError as exc:
        raise _ImportProblem("placement", str(exc), retry=NO_WAIT) from None


def _import(request: dict, torrent, qbittorrent: QBittorrentResource, abs_client: AudiobookshelfResource,
            options: AcquisitionOptions, library: tuple[str, str], now) -> dict:
    if torrent is None:
        raise _ImportProblem("torrent_removed", "the finished torrent was removed from qBittorrent before its import", retry=None)
    if torrent.state in _BUSY_STATES:
        raise _ImportProblem("qbittorrent_busy", f"qBittorrent is {torrent.state} the files", retry=NO_WAIT, record=False)
    try:
        names = [(name, safe_relative(name)) for name, _size in qbittorrent.files(request["info_hash"])]
    except UnsafeName as exc:
        raise _ImportProblem("unsafe_name", f"the torrent names a file unsafely: {exc}", retry=None) from None
    except QBittorrentError as exc:
        raise _ImportProblem("qbittorrent_unavailable", str(exc), retry=NO_WAIT) from None
    base = Path(options.local_path(torrent.save_path))
    keep = [(base / name, rel) for name, rel in names if rel.suffix.lower().lstrip(".") in _KEEP]
    if any(not is_file(source) for source, _ in keep):
        raise _ImportProblem("files_not_found", f"the downloaded files are not under {base} on this machine "
                             "(is MAMCRAWLER_DOWNLOAD_PATH_MAP right?)", retry=NO_WAIT)
    if any(not os.access(source, os.R_OK) for source, _ in keep):
        raise _ImportProblem("permission", f"permission denied reading the downloads under {base}: run MAMCRAWLER as a "
                             "user that can read qBittorrent's files", retry=NO_WAIT)
    with _placement_problems():  # links are refused before anything reads them
        check_download(keep, root=base)
    check = check_audio([base / name for name, _ in names], request["expected_duration_s"], tolerance=options.duration_tolerance)
    if not check.ok:
        raise _ImportProblem("audio_check" if check.audio_files else "not_audio", check.reason or "audio check failed", retry=None)
    # The torrent's own top folder is dropped: the book folder is ours.
    tops = {rel.parts[0] for _, rel in keep}
    if len(tops) == 1 and all(len(rel.parts) > 1 for _, rel in keep):
        keep = [(src, rel.relative_to(next(iter(tops)))) for src, rel in keep]
    folder = _book_folder(request)
    with _placement_problems():
        placement = place_files(keep, Path(options.library_dir) / folder, owner=request["info_hash"], root=base)
    library_id, abs_folder = library
    abs_path = f"{abs_folder}/{folder.as_posix()}"
    try:
        item = abs_client.scan_until_found(library_id, abs_path)
        if item is None:
            raise _ImportProblem("abs_item_missing", f"ABS has no item at {abs_path} after three scans", retry=ABS_RETRY)
        body, item = abs_client.write_until_kept(
            library_id, item, lambda metadata: plan_import_metadata(request, metadata), options.abs_settle_s
        )
    except AbsScanTimeoutError as exc:
        raise _ImportProblem("abs_scan_timeout", str(exc), retry=ABS_RETRY) from None
    except AbsError as exc:
        raise _ImportProblem("abs_unavailable", str(exc), retry=ABS_RETRY) from None
    if lost := plan_import_metadata(request, item["media"]["metadata"]):
        raise _ImportProblem("abs_metadata_lost", f"ABS undid {', '.join(sorted(lost))} again after its rescan",
                             retry=ABS_RETRY)
    return {
        "missing_id": request["missing_id"], "info_hash": request["info_hash"], "book": request["book"],
        "abs_item_id": item["id"], "abs_path": abs_path, "method": placement.method, "files": len(placement.files),
        "bytes": placement.bytes, "duration_s": check.duration_s, "metadata_written": json.dumps(body, ensure_ascii=False),
        "imported_at": now,
    }
