"""The acquisition graph when things go wrong, with real qBittorrent on loopback.

Each fault must leave the tables consistent (no book queued or downloading without a live
request, no live request for a book that is not), say what happened (`failed_attempts`,
the run's failure or the materialisation's `errors`) and be retried later where that makes
sense. The worlds come from `tests/acquisition_world.py`.
"""

from __future__ import annotations

import errno
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import polars as pl
import pytest
from dagster import AssetKey, build_sensor_context

from assets import acquisition as acquisition_assets
from assets.checks import every_queued_book_has_a_download
from mamcrawler import importing
from mamcrawler.acquisition import REQUEST_SCHEMA, request_row
from mamcrawler.importing import MARKER, UnsafeName, safe_relative
from mamcrawler.torrents import info_hash, make_torrent
from resources import qbittorrent as qbittorrent_module
from resources.mam import AUTH_HELP
from resources.qbittorrent import QBittorrentResource
from resources.replay.mam import REPLAY_MAM_ID, MamReplay
from resources.settings import AcquisitionOptions
from resources.warehouse import WarehouseResource
from tests.acquisition_world import STORMLIGHT_3, acquisition_world
from tests.audio import write_test_mp3
from tests.bencode import bencode
from tests.servers import free_port, serve

LIVE = ("sent", "downloading", "completed")
REQUEST_KEY = ("missing_id", "attempt")


@pytest.fixture(autouse=True)
def no_login_cooldown(monkeypatch):
    """The resource remembers failed logins per URL in the process too, not only in the per-test state file."""
    monkeypatch.setattr(qbittorrent_module, "_LOGIN_REFUSED_UNTIL", {})


def _world(tmp_path, monkeypatch, *, audio: bool = True, **env: str):
    # Six searches per run: the six priority-1 books, Stormlight #3 among them.
    return acquisition_world(
        tmp_path, monkeypatch, audio=audio, extra_env={"MAMCRAWLER_MAX_SEARCHES_PER_RUN": "6", **env}
    )


def _book(world, series: str, position: float) -> dict:
    rows = world.table("missing_books").filter((pl.col("series") == series) & (pl.col("position") == position))
    return rows.row(0, named=True)


def _stormlight_3(world) -> dict:
    return _book(world, "The Stormlight Archive", 3.0)


def _book_status(world, missing_id: str) -> str:
    return world.table("missing_books").filter(pl.col("missing_id") == missing_id)["status"].item()


def _requests(world) -> pl.DataFrame:
    table = world.warehouse.read_optional("download_requests")
    return table if table is not None else pl.DataFrame(schema=REQUEST_SCHEMA)


def _requests_of(world, missing_id: str) -> pl.DataFrame:
    return _requests(world).filter(pl.col("missing_id") == missing_id)


def _failures(world, task: str) -> list[dict]:
    table = world.warehouse.read_optional("failed_attempts")
    return [] if table is None else table.filter(pl.col("task") == task).to_dicts()


def _assert_consistent(world) -> None:
    """What `every_queued_book_has_a_download` checks, on the tables and through the check."""
    books = world.table("missing_books")
    busy = set(books.filter(pl.col("status").is_in(["queued", "downloading"]))["missing_id"])
    live = set(_requests(world).filter(pl.col("status").is_in(LIVE))["missing_id"])
    assert busy == live
    assert live <= set(books["missing_id"])
    assert _requests(world).filter(pl.col("status") == "sending").is_empty()  # nothing left half-sent
    if world.warehouse.has_table("download_requests"):
        check = every_queued_book_has_a_download(warehouse=WarehouseResource(path=world.env["MAMCRAWLER_WAREHOUSE"]))
        assert check.passed, check.metadata


def _run_assets(world, *assets: str):
    """Part of `search_and_queue`, as a person re-materialising single assets would run it."""
    job = world.defs.resolve_job_def("search_and_queue")
    return job.execute_in_process(
        instance=world.instance, raise_on_error=False, asset_selection=[AssetKey(a) for a in assets]
    )


def _run_text(world, result) -> str:
    """Everything the run recorded: log lines, failures, materialisation metadata."""
    return "\n".join(repr(entry) for entry in world.instance.all_logs(result.run_id))


def _failure_text(result) -> str:
    """Each failed step's error and its causes, as the UI shows them."""
    lines = []
    for event in (e for e in result.all_events if e.is_step_failure):
        error = event.step_failure_data.error
        while error is not None:
            lines.append(f"{event.step_key}: {error.message.strip()}")
            error = error.cause
    return "\n".join(lines)


def _metadata(result, asset: str) -> dict[str, str]:
    [materialization] = result.asset_materializations_for_node(asset)
    return {key: str(getattr(value, "value", value)) for key, value in materialization.metadata.items()}


def _leecher_hashes(world) -> list[str]:
    return [t["hash"] for t in world.leecher_torrents()]


def _download(world) -> None:
    world.connect_peers()
    world.wait_for(
        lambda: any(t["hash"] == world.info_hash and t["completion_on"] > 0 for t in world.leecher_torrents()),
        "the download to finish",
    )


def _sensor(world):
    defs = world.defs
    sensor = defs.resolve_sensor_def("qbittorrent_downloads")
    resources = {"qbittorrent": defs.resources["qbittorrent"], "acquisition": defs.resources["acquisition"]}
    with build_sensor_context(instance=world.instance, resources=resources) as context:
        return sensor.evaluate_tick(context)


# --- qBittorrent ---------------------------------------------------------------------------


@pytest.mark.qbittorrent
def test_qbittorrent_down_fails_clearly_and_the_next_run_sends(tmp_path, monkeypatch):
    closed = f"http://127.0.0.1:{free_port()}"
    with _world(tmp_path, monkeypatch, QBITTORRENT_URL=closed) as world:
        assert world.run("refresh_library").success
        book = _stormlight_3(world)

        down = world.run("search_and_queue")
        assert not down.success
        said = _failure_text(down)
        assert "Failure: qBittorrent is not available, nothing was sent" in said and closed in said
        assert world.table("missing_books").filter(pl.col("status") != "identified").is_empty()
        [failure] = _failures(world, "send")
        assert (failure["item"], failure["reason"]) == ("qbittorrent", "qbittorrent_unavailable")
        assert "cannot reach qBittorrent" in failure["error"]
        _assert_consistent(world)

        world.env["QBITTORRENT_URL"] = world.leecher.url
        assert world.run("search_and_queue").success
        assert _requests_of(world, book["missing_id"])["status"].to_list() == ["sent"]
        assert _stormlight_3(world)["status"] == "queued"
        assert world.info_hash in _leecher_hashes(world)
        _assert_consistent(world)


def _login_failures_logged(world) -> int:
    path = world.leecher.app_log_path
    return path.read_text().count("WebAPI login failure") if path.exists() else 0


@pytest.mark.qbittorrent
def test_a_wrong_qbittorrent_password_fails_without_leaking_it_and_waits_out_the_cooldown(tmp_path, monkeypatch):
    wrong = "wrong-pw-Zq81-Xk"
    with _world(tmp_path, monkeypatch, QBITTORRENT_PASSWORD=wrong) as world:
        assert world.run("refresh_library").success

        first = world.run("search_and_queue")
        assert not first.success
        assert "wrong username or password (QBITTORRENT_USERNAME / QBITTORRENT_PASSWORD)" in _failure_text(first)
        world.wait_for(lambda: _login_failures_logged(world) == 1, "qBittorrent to log the failed login")

        second = world.run("search_and_queue")
        assert not second.success
        assert "Next attempt in" in _failure_text(second)
        [failure] = _failures(world, "send")
        assert (failure["item"], failure["reason"], failure["count"]) == ("qbittorrent", "qbittorrent_auth", 2)
        assert "login_cooldown_s" in failure["error"]
        for result in (first, second):
            assert wrong not in _run_text(world, result)
        assert wrong not in failure["error"]
        assert world.table("missing_books").filter(pl.col("status") != "identified").is_empty()

        # A failed login of our own, logged after anything the second run might have sent:
        # once it shows, the count proves the second run never tried to log in.
        httpx.post(f"{world.leecher.url}/api/v2/auth/login", data={"username": "probe", "password": "probe"})
        world.wait_for(lambda: _login_failures_logged(world) >= 2, "qBittorrent to log the probe")
        assert _login_failures_logged(world) == 2


# --- importing -----------------------------------------------------------------------------


@pytest.mark.qbittorrent
def test_disk_full_while_copying_leaves_nothing_and_the_next_import_places_the_book(tmp_path, monkeypatch):
    def disk_full(source: Path, target: Path) -> None:
        target.write_bytes(source.read_bytes()[:100])  # half a file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    with _world(tmp_path, monkeypatch) as world:
        assert world.run("refresh_library").success
        assert world.run("search_and_queue").success
        book = _stormlight_3(world)
        _download(world)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(importing, "_same_filesystem", lambda sources, destination: False)
            patch.setattr(importing, "_copy_file", disk_full)
            full = world.run("import_downloads")
        assert full.success
        assert list(world.library_dir.rglob("*")) == []
        assert _requests_of(world, book["missing_id"])["status"].to_list() == ["completed"]
        assert _stormlight_3(world)["status"] == "downloading"
        [failure] = _failures(world, "import")
        assert (failure["item"], failure["reason"]) == (world.info_hash, "placement")
        assert failure["error"].startswith("disk full while copying") and "nothing was left behind" in failure["error"]
        assert "disk full" in _metadata(full, "imported_books")["errors"]
        _assert_consistent(world)

        assert world.run("import_downloads").success
        assert _requests_of(world, book["missing_id"])["status"].to_list() == ["imported"]
        assert _stormlight_3(world)["status"] == "completed"
        folder = world.library_dir / "Brandon Sanderson" / "The Stormlight Archive" / "Book 3 - Oathbringer"
        assert sorted(p.name for p in folder.iterdir()) == [MARKER, "Oathbringer - Part 01.mp3", "Oathbringer - Part 02.mp3"]
        _assert_consistent(world)


@pytest.mark.qbittorrent
def test_a_download_without_audio_fails_its_release_and_the_release_is_never_chosen_again(tmp_path, monkeypatch):
    # No backoff: the book is searched again on the very next run, as it is once the backoff is over.
    with _world(tmp_path, monkeypatch, audio=False, MAMCRAWLER_RETRY_BACKOFF_HOURS="0") as world:
        assert world.run("refresh_library").success
        assert world.run("search_and_queue").success
        book = _stormlight_3(world)
        _download(world)

        assert world.run("import_downloads").success
        [request] = _requests_of(world, book["missing_id"]).to_dicts()
        assert request["status"] == "failed" and "no audio file" in request["error"]
        assert _stormlight_3(world)["status"] == "identified"
        [failure] = _failures(world, "import")
        assert (failure["item"], failure["reason"], failure["count"]) == (book["missing_id"], "not_audio", 1)
        assert world.info_hash in _leecher_hashes(world)  # left seeding
        assert not list(world.library_dir.rglob("*"))
        _assert_consistent(world)

        world.env["MAMCRAWLER_MAX_SEARCHES_PER_RUN"] = "50"  # every book, Stormlight #3 again
        assert world.run("search_and_queue").success
        candidates = world.table("release_candidates").filter(pl.col("missing_id") == book["missing_id"])
        release = candidates.filter(pl.col("release_id") == str(STORMLIGHT_3)).row(0, named=True)
        assert release["accepted"] and not release["chosen"]
        assert "1 failed before" in release["choice"]
        assert _requests_of(world, book["missing_id"])["status"].to_list() == ["failed"]
        _assert_consistent(world)


class _TwoTextFiles:
    """A qBittorrent holding the not-audio release, as far as `_import` asks it."""

    def files(self, info_hash: str) -> list[tuple[str, int]]:
        return [("Oathbringer/Oathbringer - Part 01.txt", 20000), ("Oathbringer/Oathbringer - Part 02.txt", 20000)]


def test_the_not_audio_error_names_what_the_torrent_holds(tmp_path):
    request = {"info_hash": "0" * 40, "expected_duration_s": None}
    torrent = SimpleNamespace(save_path=str(tmp_path), state="uploading")
    with pytest.raises(acquisition_assets._ImportProblem) as refused:
        acquisition_assets._import(
            request, torrent, _TwoTextFiles(), None, AcquisitionOptions(), ("lib", "/books"), None
        )
    assert refused.value.reason == "not_audio"
    assert "2 files (.txt)" in str(refused.value)


def _torrent_climbing_out(parts: list[tuple[list[str], bytes]], name: str) -> bytes:
    """A multi-file .torrent bencoded by hand, so no library in between tidies the `..` away."""
    piece = 16384
    blob = b"".join(data for _, data in parts)
    pieces = b"".join(hashlib.sha1(blob[i : i + piece]).digest() for i in range(0, len(blob), piece))
    files = [{"length": len(data), "path": path} for path, data in parts]
    info = {"name": name, "piece length": piece, "pieces": pieces, "private": 1, "files": files}
    return bencode({"announce": "http://127.0.0.1:9/announce", "info": info}, sort_keys=True)


def test_a_path_that_climbs_out_is_refused():
    with pytest.raises(UnsafeName):
        safe_relative("Oathbringer/../evil.mp3")


@pytest.mark.qbittorrent
def test_a_torrent_naming_a_parent_folder_is_placed_inside_the_book_folder_only(tmp_path, monkeypatch):
    """qBittorrent 4.5.2 (libtorrent) drops the `..` itself: the file arrives as Oathbringer/evil.mp3."""
    part = write_test_mp3(tmp_path / "part.mp3", seconds=40).read_bytes()
    evil = _torrent_climbing_out([(["Oathbringer - Part 01.mp3"], part), (["..", "evil.mp3"], part)], "Oathbringer")
    seed = tmp_path / "evil-seed"
    for name in ("Oathbringer - Part 01.mp3", "evil.mp3"):  # where the seeder's qBittorrent looks
        (seed / "Oathbringer").mkdir(parents=True, exist_ok=True)
        (seed / "Oathbringer" / name).write_bytes(part)
    with _world(tmp_path, monkeypatch) as world:
        world.mam.torrents[STORMLIGHT_3] = evil
        world.info_hash = info_hash(evil)
        world.seeder.seed(evil, seed)
        assert world.run("refresh_library").success
        assert world.run("search_and_queue").success
        _download(world)

        assert world.run("import_downloads").success
        assert _stormlight_3(world)["status"] == "completed"
        folder = world.library_dir / "Brandon Sanderson" / "The Stormlight Archive" / "Book 3 - Oathbringer"
        placed = sorted(p.relative_to(world.library_dir) for p in world.library_dir.rglob("*") if p.is_file())
        assert placed == [folder.relative_to(world.library_dir) / n for n in (MARKER, "Oathbringer - Part 01.mp3", "evil.mp3")]
        downloads = Path(world.env["MAMCRAWLER_QBITTORRENT_SAVE_PATH"])
        assert sorted(tmp_path.rglob("evil.mp3")) == sorted(
            [seed / "Oathbringer" / "evil.mp3", downloads / "Oathbringer" / "evil.mp3", folder / "evil.mp3"]
        )
        _assert_consistent(world)


# --- indexers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flooded_search(tmp_path_factory):
    """One search_and_queue run (one book, nothing sent) against a MAM that answers 10,000 rows."""
    flood = MamReplay(rows_for_any_query=10_000)
    with (
        pytest.MonkeyPatch.context() as patch,
        serve(flood) as url,
        acquisition_world(
            tmp_path_factory.mktemp("flood"),
            patch,
            extra_env={
                "MAMCRAWLER_MAM_URL": url,
                "MAMCRAWLER_MAX_SEARCHES_PER_RUN": "1",
                "MAMCRAWLER_MAX_NEW_PER_RUN": "0",
            },
        ) as world,
    ):
        assert world.run("refresh_library").success
        result = world.run("search_and_queue")
        return {
            "success": result.success,
            "failures": _failure_text(result),
            "candidates": world.table("release_candidates"),
            "metadata": _metadata(result, "release_candidates"),
            "searches": sum(1 for r in flood.requests if r.startswith("POST /tor/js/")),
        }


@pytest.mark.qbittorrent
def test_a_search_of_ten_thousand_rows_stops_at_max_results(flooded_search):
    per_book = flooded_search["candidates"].group_by("missing_id").len()
    assert per_book.height == 1 and per_book["len"].to_list() == [200]  # MamResource.max_results
    assert flooded_search["searches"] == 2  # two pages of 100, not a hundred
    assert flooded_search["metadata"]["books_searched"] == "1"
    assert flooded_search["metadata"]["searches_cut_at_max_results"] == "1"
    assert "release_candidates" not in flooded_search["failures"]


@pytest.mark.qbittorrent
def test_a_first_run_that_sends_nothing_succeeds(flooded_search):
    assert flooded_search["success"], flooded_search["failures"]


@pytest.mark.qbittorrent
def test_mam_cookie_expiring_mid_search_keeps_the_searches_done_and_the_next_run_goes_on(tmp_path, monkeypatch):
    with _world(tmp_path, monkeypatch) as world:
        assert world.run("refresh_library").success
        world.mam.expire_after = 3  # the user status and two searches, then 403

        expired = world.run("search_and_queue")
        metadata = _metadata(expired, "release_candidates")
        assert metadata["books_searched"] == "2" and AUTH_HELP in metadata["errors"]
        assert world.table("release_candidates")["missing_id"].n_unique() == 2
        text = _run_text(world, expired)
        assert REPLAY_MAM_ID not in text and world.mam.rotated_mam_id not in text
        assert world.table("missing_books").filter(pl.col("status") != "identified").is_empty()
        assert _requests(world).is_empty()
        _assert_consistent(world)

        # Expired before the run even starts: the user-status request is the one refused.
        refused = _run_assets(world, "release_candidates")
        assert not refused.success and "MAM rejected the mam_id cookie" in _failure_text(refused)
        assert REPLAY_MAM_ID not in _run_text(world, refused)

        world.mam.expire_after = None  # a new session cookie
        assert world.run("search_and_queue").success
        assert world.table("release_candidates")["missing_id"].n_unique() == 8
        assert _stormlight_3(world)["status"] == "queued"
        _assert_consistent(world)


@pytest.mark.qbittorrent
def test_mam_cookie_expiring_between_search_and_download_leaves_the_book_identified(tmp_path, monkeypatch):
    with _world(tmp_path, monkeypatch) as world:
        assert world.run("refresh_library").success
        assert _run_assets(world, "release_candidates").success
        book = _stormlight_3(world)
        assert world.table("release_candidates").filter(pl.col("missing_id") == book["missing_id"])["chosen"].any()

        world.mam.expire_after = len(world.mam.requests)
        sending = _run_assets(world, "download_requests")
        assert not sending.success  # the user has to act: the run says so by failing
        assert world.mam.requests[-1] == "GET /tor/download.php"
        assert AUTH_HELP in _run_text(world, sending)
        [failure] = _failures(world, "send")
        assert (failure["item"], failure["reason"], failure["error"]) == ("mam", "indexer_auth", AUTH_HELP)
        assert REPLAY_MAM_ID not in _run_text(world, sending)
        assert _stormlight_3(world)["status"] == "identified"
        assert _requests(world).filter(pl.col("status") == "sending").is_empty()
        assert world.info_hash not in _leecher_hashes(world)
        _assert_consistent(world)


# --- downloads -----------------------------------------------------------------------------


@pytest.mark.qbittorrent
@pytest.mark.parametrize(("max_attempts", "book_after"), [(3, "identified"), (1, "failed")])
def test_a_stalled_download_is_removed_and_its_book_retried_or_failed(tmp_path, monkeypatch, max_attempts, book_after):
    with _world(tmp_path, monkeypatch, MAMCRAWLER_MAX_ATTEMPTS=str(max_attempts)) as world:
        assert world.run("refresh_library").success
        assert world.run("search_and_queue").success
        book = _stormlight_3(world)
        [added_on] = [t["added_on"] for t in world.leecher_torrents() if t["hash"] == world.info_hash]

        world.env["MAMCRAWLER_STALL_HOURS"] = "0.0005"  # 1.8 s; no peer is ever connected
        key = f"stall-{world.info_hash}-{added_on}"
        world.wait_for(lambda: key in [r.run_key for r in _sensor(world).run_requests], "the sensor to see the stall")

        before = datetime.now(UTC)
        assert world.run("import_downloads").success
        [request] = _requests_of(world, book["missing_id"]).to_dicts()
        assert request["status"] == "failed" and "no progress for" in request["error"]
        world.wait_for(lambda: world.info_hash not in _leecher_hashes(world), "the stalled torrent to be removed")
        [failure] = [f for f in _failures(world, "download") if f["item"] == book["missing_id"]]
        assert failure["reason"] == "stalled" and failure["next_attempt_at"] > before
        assert _stormlight_3(world)["status"] == book_after
        _assert_consistent(world)


@pytest.mark.qbittorrent
def test_sends_interrupted_by_a_crash_are_finished_once(tmp_path, monkeypatch):
    with _world(tmp_path, monkeypatch) as world:
        assert world.run("refresh_library").success
        stormlight = _stormlight_3(world)
        dune = _book(world, "Dune", 1.0)
        other = make_torrent(write_test_mp3(tmp_path / "dune" / "Dune - Part 01.mp3", seconds=5).parent)
        now = datetime.now(UTC)
        crashed = [
            request_row(
                book,
                {"indexer": "mam", "release_id": release, "title": title},
                attempt=1,
                status="sending",
                info_hash=torrent_hash,
                now=now,
            )
            for book, release, title, torrent_hash in (
                (stormlight, str(STORMLIGHT_3), "Oathbringer", world.info_hash),
                (dune, "1100951", "Dune", info_hash(other)),
            )
        ]
        world.warehouse.apply([("download_requests", pl.DataFrame(crashed, schema=REQUEST_SCHEMA), REQUEST_KEY)])
        # Stormlight: the crash came before qBittorrent was asked; its .torrent was kept.
        kept = Path(world.env["MAMCRAWLER_TORRENT_DIR"]) / f"{world.info_hash}.torrent"
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_bytes(world.torrent)
        # Dune: qBittorrent took it, the crash came before the warehouse heard.
        leecher = QBittorrentResource(url=world.leecher.url, username="tester", password=world.leecher.password)
        leecher.add_torrent(other, info_hash(other), crashed[1]["tags"].split(","))

        result = world.run("search_and_queue")
        assert result.success
        assert _metadata(result, "download_requests")["interrupted_sends_settled"] == "2"
        for book, torrent_hash in ((stormlight, world.info_hash), (dune, info_hash(other))):
            assert _requests_of(world, book["missing_id"])["status"].to_list() == ["sent"]
            assert _book_status(world, book["missing_id"]) == "queued"
            assert _leecher_hashes(world).count(torrent_hash) == 1
        assert not kept.exists()  # it carries the passkey: kept only while the send is unfinished
        _assert_consistent(world)


@pytest.mark.qbittorrent
def test_a_qbittorrent_listing_nothing_fails_no_download_but_a_real_removal_does(tmp_path, monkeypatch):
    """Found by `bench faults` (downloads.empty_torrent_list): a qBittorrent answering `[]`
    (still loading its session) had every live download failed as "removed", its book sent again."""
    from bench.fault_cases.downloads import _listing_nothing

    with _world(tmp_path, monkeypatch) as world:
        assert world.run("refresh_library").success
        assert world.run("search_and_queue").success
        live = _requests(world).filter(pl.col("status").is_in(LIVE))
        assert live.height == 2 and len(_leecher_hashes(world)) == 2
        real = world.env["QBITTORRENT_URL"]
        with _listing_nothing(real) as proxy:
            world.env["QBITTORRENT_URL"] = proxy
            blind = world.run("import_downloads")
        world.env["QBITTORRENT_URL"] = real
        assert blind.success and "lists no torrent at all" in _metadata(blind, "imported_books")["errors"]
        assert _requests(world).filter(pl.col("status").is_in(LIVE)).height == 2
        assert _failures(world, "download") == []
        _assert_consistent(world)

        client = world.leecher.client()  # the user removes Stormlight #3; the other download stays
        client.torrents_delete(delete_files=True, torrent_hashes=world.info_hash)
        client.auth_log_out()
        world.wait_for(lambda: world.info_hash not in _leecher_hashes(world), "the torrent to be removed")
        assert world.run("import_downloads").success
        [request] = _requests_of(world, _stormlight_3(world)["missing_id"]).to_dicts()
        assert request["status"] == "failed" and request["error"] == "removed from qBittorrent"
        assert _requests(world).filter(pl.col("status").is_in(LIVE)).height == 1
        _assert_consistent(world)
