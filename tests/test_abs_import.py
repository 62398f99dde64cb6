"""The import end to end against a real Audiobookshelf 2.36.0 and two real qBittorrents.

ABS scans on its own: its folder watcher starts a `watcher-scan` about 2 s after the files
appear and rescans the new item about 10 s later from its metadata.json, and a scan asked
while one runs is ignored with 200 "OK". The book must come out of all that, and out of a
forced rescan afterwards, with its title, series and position.
"""

import json

import polars as pl
import pytest

from tests.acquisition_world import acquisition_world

pytestmark = [pytest.mark.abs, pytest.mark.qbittorrent]

SERIES = "The Stormlight Archive"


def _series(item: dict) -> list[tuple[str, str | None]]:
    return [(s["name"], s["sequence"]) for s in item["media"]["metadata"]["series"]]


def test_import_survives_a_running_scan_the_watcher_and_a_forced_rescan(tmp_path, monkeypatch, abs_server):
    with acquisition_world(tmp_path, monkeypatch, abs_server=abs_server, fillers=40) as world:
        assert world.run("refresh_library").success
        missing = world.table("missing_books")
        # The real library read back: #1, #2 and #4 owned, #3 missing, nothing owned listed.
        assert missing.filter(pl.col("series") == SERIES)["position"].to_list() == [3.0]
        owned = world.table("library_books").filter(pl.col("title").str.contains("Way of Kings|Words of|Rhythm"))
        assert owned.height == 3
        assert world.run("search_and_queue").success
        world.connect_peers()
        world.wait_for(lambda: any(t["hash"] == world.info_hash and t["progress"] == 1.0 and
                                   not t["state"].startswith("checking") for t in world.leecher_torrents()),
                       "the download to finish")

        # Forty more books arrive and their scan (about 4 s of probing) is running when the import starts.
        world.add_fillers(40, start=100)
        abs_server.api("POST", f"/api/libraries/{world.library_id}/scan").raise_for_status()
        assert abs_server.tasks(world.library_id), "the scan should still be running"
        assert world.run("import_downloads").success
        imported = world.table("imported_books")
        assert imported.height == 1, world.warehouse.read_optional("failed_attempts")
        row = imported.row(0, named=True)
        assert row["abs_path"] == f"{world.library_dir}/Brandon Sanderson/{SERIES}/Book 3 - Oathbringer"
        # ABS read "Oathbringer (Unabridged)" and the phrase "Book Three" from the tags; the import
        # sent the clean title and a numeric sequence.
        assert json.loads(row["metadata_written"]) == {"title": "Oathbringer", "series": [{"name": SERIES, "sequence": "3"}]}

        item = abs_server.json("GET", f"/api/items/{row['abs_item_id']}", params={"expanded": 1})
        assert item["media"]["metadata"]["title"] == "Oathbringer"
        assert _series(item) == [(SERIES, "3")]
        # What ABS keeps for its own rescans says the same.
        stored = json.loads((abs_server.state / "metadata" / "items" / item["id"] / "metadata.json").read_text())
        assert stored["series"] == [f"{SERIES} #3"] and stored["title"] == "Oathbringer"

        abs_server.scan(world.library_id, force=True)
        after = abs_server.json("GET", f"/api/items/{row['abs_item_id']}", params={"expanded": 1})
        assert after["media"]["metadata"]["title"] == "Oathbringer" and _series(after) == [(SERIES, "3")]
        # One item for the book, in the one series the library already had.
        books = [i for i in abs_server.items(world.library_id) if "Stormlight" in i["relPath"]]
        assert len(books) == 4 and len(abs_server.items(world.library_id)) == 4 + 40 + 40
        assert {s["id"] for i in books for s in i["media"]["metadata"]["series"]} == {
            s["id"] for s in after["media"]["metadata"]["series"]
        }
        assert world.table("missing_books").filter(pl.col("series") == SERIES)["status"].to_list() == ["completed"]
