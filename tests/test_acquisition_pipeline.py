"""The acquisition graph end to end with real qBittorrent: search, send, finish, import.

Two real qbittorrent-nox instances on loopback: A seeds a generated private audiobook
torrent that the MAM replay offers for The Stormlight Archive #3; the pipeline sends it
to B, the completion sensor sees B finish, and the import places it into the ABS library.
"""

import os

import polars as pl
import pytest
from dagster import build_sensor_context

from mamcrawler.importing import MARKER
from tests.acquisition_world import STORMLIGHT_3, acquisition_world

pytestmark = pytest.mark.qbittorrent


def _stormlight_3(world) -> dict:
    rows = world.table("missing_books").filter(
        (pl.col("series") == "The Stormlight Archive") & (pl.col("position") == 3.0)
    )
    assert rows.height == 1
    return rows.row(0, named=True)


def _sensor(world, cursor=None):
    defs = world.defs
    sensor = defs.resolve_sensor_def("qbittorrent_downloads")
    resources = {"qbittorrent": defs.resources["qbittorrent"], "acquisition": defs.resources["acquisition"]}
    with build_sensor_context(instance=world.instance, cursor=cursor, resources=resources) as context:
        result = sensor.evaluate_tick(context)
    return result


def test_missing_book_is_found_sent_downloaded_and_imported(tmp_path, monkeypatch):
    with acquisition_world(tmp_path, monkeypatch) as world:
        assert world.run("refresh_library").success
        book = _stormlight_3(world)
        assert book["status"] == "identified"

        assert world.run("search_and_queue").success
        candidates = world.table("release_candidates").filter(pl.col("missing_id") == book["missing_id"])
        chosen = candidates.filter(pl.col("chosen"))
        assert chosen["release_id"].to_list() == [str(STORMLIGHT_3)]
        # The Way of Kings rows of the same series are #1, which the library owns.
        assert candidates.filter(~pl.col("accepted")).height >= 1
        # Every search is remembered with what came of it, so the least recently searched go first.
        searches = world.table("release_searches")
        assert searches.height == world.table("missing_books").height == 45
        assert searches.filter(pl.col("missing_id") == book["missing_id"])["choice"][0].startswith("best of")

        requests = world.table("download_requests")
        sent = requests.filter(pl.col("missing_id") == book["missing_id"])
        assert sent["status"].to_list() == ["sent"] and sent["info_hash"].to_list() == [world.info_hash]
        assert _stormlight_3(world)["status"] == "queued"
        held = [t for t in world.leecher_torrents() if t["hash"] == world.info_hash]
        assert len(held) == 1
        assert held[0]["category"] == "mamcrawler"
        assert {"mamcrawler", f"mc-{book['missing_id']}"} <= set(held[0]["tags"].split(", "))
        assert held[0]["save_path"].rstrip("/") == world.env["MAMCRAWLER_QBITTORRENT_SAVE_PATH"]

        # Nothing is finished yet: the sensor asks for nothing.
        assert not _sensor(world).run_requests

        # The downloading instance restarts mid-way; a second search run adds nothing twice.
        world.leecher.restart()
        assert world.run("search_and_queue").success
        assert len([t for t in world.leecher_torrents() if t["hash"] == world.info_hash]) == 1
        assert world.table("download_requests").filter(pl.col("missing_id") == book["missing_id"]).height == 1

        world.connect_peers()
        world.wait_for(
            lambda: any(t["hash"] == world.info_hash and t["completion_on"] > 0 for t in world.leecher_torrents()),
            "the download to finish",
        )
        first = _sensor(world)
        assert [r.run_key for r in first.run_requests] == [f"import-{world.info_hash}"]
        assert first.run_requests[0].tags["mamcrawler/missing_id"] == book["missing_id"]
        # Seen again, after a restart of qBittorrent, and with a reset cursor: the same run key,
        # which Dagster launches once.
        world.leecher.restart()
        again = _sensor(world, cursor=first.cursor)
        reset = _sensor(world, cursor=None)
        assert [r.run_key for r in again.run_requests] == [f"import-{world.info_hash}"]
        assert [r.run_key for r in reset.run_requests] == [f"import-{world.info_hash}"]

        # Right after the restart qBittorrent checks its resume data; the import waits for that.
        assert world.run("import_downloads").success
        if world.table("imported_books").is_empty():
            world.wait_for(lambda: all(not t["state"].startswith("checking") for t in world.leecher_torrents()), "the check")
            assert world.run("import_downloads").success
        imported = world.table("imported_books").row(0, named=True)
        folder = world.library_dir / "Brandon Sanderson" / "The Stormlight Archive" / "Book 3 - Oathbringer"
        assert imported["abs_path"] == "/audiobooks/Brandon Sanderson/The Stormlight Archive/Book 3 - Oathbringer"
        placed = sorted(p.name for p in folder.iterdir() if p.name != MARKER)  # ABS ignores the dot-named marker
        assert placed == ["Oathbringer - Part 01.mp3", "Oathbringer - Part 02.mp3"] and (folder / MARKER).is_file()
        # A hardlink: the torrent keeps seeding from its own place.
        source = os.path.join(world.env["MAMCRAWLER_QBITTORRENT_SAVE_PATH"], "Oathbringer (Unabridged) [mp3]", placed[0])
        assert os.stat(source).st_ino == os.stat(folder / placed[0]).st_ino and imported["method"] == "hardlink"
        assert imported["duration_s"] == pytest.approx(80, abs=1)

        item = world.abs.by_id[imported["abs_item_id"]]
        assert item["path"] == imported["abs_path"]
        series = item["media"]["metadata"]["series"]
        assert [(s["name"], s["sequence"]) for s in series] == [("The Stormlight Archive", "3")]
        assert item["media"]["metadata"]["title"] == "Oathbringer"

        assert _stormlight_3(world)["status"] == "completed"
        request = world.table("download_requests").filter(pl.col("missing_id") == book["missing_id"]).row(0, named=True)
        assert request["status"] == "imported" and request["progress"] == 1.0

        # A second import run finds nothing left to do and changes nothing.
        assert world.run("import_downloads").success
        assert world.table("imported_books").height == 1
        seeding = [t for t in world.leecher_torrents() if t["hash"] == world.info_hash]
        assert seeding and seeding[0]["progress"] == 1.0  # left in qBittorrent to keep seeding
