"""Scanning newly placed books into ABS: the client against the ABS 2.36.0 replay on loopback."""

from pathlib import PurePosixPath

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mamcrawler.importing import book_folder, place_files
from resources.audiobookshelf import (
    AbsAuthError,
    AbsLibraryNotFoundError,
    AbsResponseError,
    AudiobookshelfResource,
    library_scans,
)
from resources.replay.abs import AbsReplay, folder_metadata
from resources.replay.recorded import load
from tests.audio import write_test_mp3
from tests.servers import serve

TOKEN = "fake-abs-token-17"
LIBRARY = "92048683-a190-4e69-8125-f23ef2d96b9d"
EXPANSE_SERIES = "The Expanse"


def client(url, **kw):
    kw.setdefault("api_key", TOKEN)
    return AudiobookshelfResource(base_url=url, backoff_s=0.01, **kw)


def place_book(library_dir, tmp_path, author, series, label, title, files=("01.mp3", "02.mp3")):
    """A finished download placed the way the import does it; the folder path as ABS sees it."""
    sources = [(write_test_mp3(tmp_path / "downloads" / title / name, 2), PurePosixPath(name)) for name in files]
    folder = book_folder(author, series, label, title)
    place_files(sources, library_dir / folder)
    return f"/audiobooks/{folder}"


def test_libraries_list_their_folders():
    with serve(AbsReplay(token=TOKEN)) as url:
        libraries = client(url).libraries()
    assert [(lib["id"], [f["fullPath"] for f in lib["folders"]]) for lib in libraries] == [(LIBRARY, ["/audiobooks"])]


def test_a_placed_book_is_scanned_in_found_by_path_and_edited(tmp_path):
    library_dir = tmp_path / "audiobooks"
    path = place_book(library_dir, tmp_path, "James S. A. Corey", EXPANSE_SERIES, "3", "Abaddon's Gate")
    replay = AbsReplay(token=TOKEN, library_dir=library_dir)
    sleeps = []
    with serve(replay) as url:
        abs_ = client(url, page_size=10)
        assert abs_.find_item_by_path(LIBRARY, path) is None  # not scanned yet

        abs_.scan_library(LIBRARY)
        running = abs_.tasks()
        assert [(t["action"], t["data"]["libraryId"], t["isFinished"]) for t in running] == [
            ("library-scan", LIBRARY, False)
        ]
        assert abs_.wait_for_scan(LIBRARY, poll_s=0.5, sleep=sleeps.append) is True
        assert sleeps == [0.5]  # one more poll saw the task, the next one found it gone
        assert abs_.tasks() == []

        before = len(replay.requests)
        item = abs_.find_item_by_path(LIBRARY, path + "/")
        assert item is not None and item["path"] == path and item["libraryId"] == LIBRARY
        meta = item["media"]["metadata"]
        assert meta["title"] == "Abaddon's Gate" and [a["name"] for a in meta["authors"]] == ["James S. A. Corey"]
        recorded_expanse = next(
            s for i in load("abs", "items_batch_get_all.json")["libraryItems"]
            for s in i["media"]["metadata"]["series"] if s["name"] == EXPANSE_SERIES
        )
        assert meta["series"] == [{"id": recorded_expanse["id"], "name": EXPANSE_SERIES, "sequence": "3"}]
        assert meta["asin"] is None and meta["isbn"] is None and meta["narrators"] == []
        assert [f["metadata"]["filename"] for f in item["media"]["audioFiles"]] == ["01.mp3", "02.mp3"]
        assert item["folderId"] == "43dd9566-6b9f-4f4f-aab2-4fff0421ce2f" and item["relPath"] == path.removeprefix(
            "/audiobooks/"
        )

        # newest first: found on the first page of a 26-item library, then fetched expanded
        assert replay.requests[before:] == [f"GET /api/libraries/{LIBRARY}/items", f"GET /api/items/{item['id']}"]

        assert abs_.update_media(item["id"], {"asin": "B0TEST0099", "series": [{"name": "The Expanse", "sequence": "3"}]})
        assert abs_.get_item(item["id"])["media"]["metadata"]["asin"] == "B0TEST0099"


def test_a_second_scan_adds_only_new_folders(tmp_path):
    library_dir = tmp_path / "audiobooks"
    first = place_book(library_dir, tmp_path, "Andy Weir", None, None, "The Martian")
    replay = AbsReplay(token=TOKEN, library_dir=library_dir, scan_polls=0)
    with serve(replay) as url:
        abs_ = client(url)
        abs_.scan_library(LIBRARY)
        assert abs_.wait_for_scan(LIBRARY, sleep=pytest.fail)
        # a copy in progress: ABS ignores paths with a dot-named part
        write_test_mp3(library_dir / "Andy Weir" / ".The Egg.partial" / "The Egg.mp3", 1)
        second = place_book(library_dir, tmp_path, "Andy Weir", None, None, "Randomize", files=("a.mp3",))
        abs_.scan_library(LIBRARY)
        assert abs_.wait_for_scan(LIBRARY, sleep=pytest.fail)
        martian = abs_.find_item_by_path(LIBRARY, first)
        randomize = abs_.find_item_by_path(LIBRARY, second)
    paths = [i["path"] for i in replay.items]
    assert len(paths) == 27 and paths.count(first) == 1 and not any("Egg" in p for p in paths)
    assert martian["media"]["metadata"]["series"] == [] and randomize["addedAt"] > martian["addedAt"]


def test_wait_for_scan_gives_up_at_the_timeout(tmp_path):
    with serve(AbsReplay(token=TOKEN, library_dir=tmp_path, scan_polls=100)) as url:
        abs_ = client(url)
        abs_.scan_library(LIBRARY)
        assert abs_.wait_for_scan(LIBRARY, timeout_s=0, sleep=pytest.fail) is False


def test_find_item_by_path_pages_to_the_end_when_absent():
    replay = AbsReplay(token=TOKEN)
    with serve(replay) as url:
        assert client(url, page_size=10).find_item_by_path(LIBRARY, "/audiobooks/Nobody/Nothing") is None
        recorded = client(url, page_size=10).find_item_by_path(LIBRARY, "/audiobooks/Stanisław Lem/Solaris")
    assert replay.requests.count(f"GET /api/libraries/{LIBRARY}/items") >= 4  # 3 pages + the empty one
    assert recorded["media"]["metadata"]["title"] == "Solaris" and "authors" in recorded["media"]["metadata"]


def test_scan_with_a_rejected_key_or_an_unknown_library():
    with serve(AbsReplay(token=TOKEN)) as url:
        with pytest.raises(AbsAuthError) as err:
            client(url, api_key="wrong-key").scan_library(LIBRARY)
        assert "isActive" in str(err.value) and "wrong-key" not in str(err.value)
        with pytest.raises(AbsLibraryNotFoundError):
            client(url).scan_library("no-such-library")


def test_scan_by_a_non_admin_key_says_so():
    """ABS lets only admins scan; other calls answer 403 for their own reasons."""
    replay = AbsReplay(token=TOKEN)

    def non_admin(request: httpx.Request) -> httpx.Response:
        if request.method in ("POST", "PATCH"):
            return httpx.Response(403, text="Forbidden")
        return replay(request)

    with serve(non_admin) as url:
        abs_ = client(url)
        with pytest.raises(AbsResponseError, match="must be an ABS admin") as err:
            abs_.scan_library(LIBRARY)
        assert f"POST /api/libraries/{LIBRARY}/scan" in str(err.value) and TOKEN not in str(err.value)
        with pytest.raises(AbsResponseError, match="answered HTTP 403: Forbidden"):
            abs_.update_media("li_x", {"asin": "B0TEST0099"})
        assert abs_.tasks() == []


@pytest.mark.parametrize(
    "item", load("abs", "items_batch_get_all.json")["libraryItems"], ids=lambda i: i["relPath"]
)
def test_folder_parsing_matches_what_abs_read_from_folder_only_books(item):
    """Books without tags for these fields: the replay's folder parsing must agree with ABS."""
    parsed = folder_metadata(item["relPath"])
    meta = item["media"]["metadata"]
    folder_series = [s for s in meta["series"] if s["name"] == parsed["series"]]
    if parsed["series"] and folder_series and item["relPath"].startswith(("James S. A. Corey/", "Ursula K. Le Guin/")):
        assert folder_series[0]["sequence"] == parsed["sequence"]
    if not item["relPath"].startswith("Frank Herbert/"):  # there the title tag wins over the folder
        assert parsed["title"] == meta["title"]
    assert parsed["authors"] == [a["name"] for a in meta["authors"]] or item["relPath"].startswith("Terry Pratchett & ")


def test_a_scan_asked_while_one_runs_is_ignored_and_asked_again(tmp_path):
    """ABS answers 200 "OK" and does nothing; the folder placed meanwhile needs its own scan."""
    library_dir = tmp_path / "audiobooks"
    replay = AbsReplay(token=TOKEN, library_dir=library_dir, scan_polls=2)
    with serve(replay) as url:
        abs_ = client(url, page_size=10)
        abs_.scan_library(LIBRARY)  # somebody else's scan is running
        path = place_book(library_dir, tmp_path, "James S. A. Corey", EXPANSE_SERIES, "3", "Abaddon's Gate")
        abs_.scan_library(LIBRARY)
        assert replay.ignored_scans == 1
        assert abs_.wait_for_scan(LIBRARY, sleep=lambda _: None)
        assert abs_.find_item_by_path(LIBRARY, path) is None  # the running scan did not see it
        item = abs_.scan_until_found(LIBRARY, path, sleep=lambda _: None)
    assert item is not None and item["path"] == path
    assert replay.requests.count(f"POST /api/libraries/{LIBRARY}/scan") == 3


def test_the_watcher_adds_the_book_and_its_scan_is_waited_for(tmp_path):
    library_dir = tmp_path / "audiobooks"
    replay = AbsReplay(token=TOKEN, library_dir=library_dir, watcher=True, watcher_polls=2)
    with serve(replay) as url:
        abs_ = client(url, page_size=10)
        path = place_book(library_dir, tmp_path, "James S. A. Corey", EXPANSE_SERIES, "3", "Abaddon's Gate")
        assert [t["action"] for t in abs_.tasks()] == ["watcher-scan"]
        item = abs_.scan_until_found(LIBRARY, path, sleep=lambda _: None)
    assert item is not None and item["media"]["metadata"]["series"][0]["sequence"] == "3"
    assert f"POST /api/libraries/{LIBRARY}/scan" not in replay.requests  # the watcher's scan was enough


def test_a_watcher_scan_labelled_with_another_library_still_counts():
    tasks = [
        {"action": "watcher-scan", "data": {"libraryId": "other"}, "isFinished": False},
        {"action": "library-scan", "data": {"libraryId": "other"}, "isFinished": False},
        {"action": "library-scan", "data": {"libraryId": LIBRARY}, "isFinished": True},
        {"action": "embed-metadata", "data": {"libraryItemId": "x"}, "isFinished": False},
        "garbage",
    ]
    assert [t["action"] for t in library_scans(tasks, LIBRARY)] == ["watcher-scan"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.sampled_from(["watcher-scan", "library-scan", LIBRARY]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["action", "data", "libraryId", "isFinished", "x"]), inner, max_size=4),
    max_leaves=20,
)


@given(st.lists(json_values, max_size=6))
def test_library_scans_takes_any_task_list(tasks):
    found = library_scans(tasks, LIBRARY)
    assert all(isinstance(t, dict) and not t.get("isFinished") for t in found)


def test_a_phrase_sequence_is_lost_on_a_rescan_and_the_import_edit_is_checked_after_it(tmp_path):
    """The watcher rescans a new item from its metadata.json after our edit: a phrase does
    not survive that, a numeric string does; write_until_kept reads the item after it."""
    library_dir = tmp_path / "audiobooks"
    replay = AbsReplay(token=TOKEN, library_dir=library_dir, scan_polls=0, watcher=True, watcher_polls=2)
    with serve(replay) as url:
        abs_ = client(url, page_size=10)
        path = place_book(library_dir, tmp_path, "Pierce Brown", "Red Rising", None, "Golden Son")
        abs_.scan_library(LIBRARY)  # ours adds the item before the watcher's rescan
        item = abs_.find_item_by_path(LIBRARY, path)

        def wants(sequence):
            def plan(metadata):
                wanted = [{"name": "Red Rising", "sequence": sequence}]
                return {} if [(s["name"], s["sequence"]) for s in metadata["series"]] == [("Red Rising", sequence)] else {
                    "series": wanted}
            return plan

        def forced_rescan():
            httpx.post(f"{url}/api/libraries/{LIBRARY}/scan", params={"force": 1},
                       headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()
            abs_.wait_for_scan(LIBRARY, sleep=lambda _: None)
            return [(s["name"], s["sequence"]) for s in abs_.get_item(item["id"])["media"]["metadata"]["series"]]

        # The watcher's rescan undid the first write; the second lasted only until the next rescan.
        written, after = abs_.write_until_kept(LIBRARY, item, wants("Book Two"), settle_s=0, sleep=lambda _: None)
        assert written == {"series": [{"name": "Red Rising", "sequence": "Book Two"}]}
        assert replay.requests.count(f"PATCH /api/items/{item['id']}/media") == 2
        assert forced_rescan() == [("Red Rising #Book Two", None)]
        # A numeric string survives every rescan.
        written, after = abs_.write_until_kept(LIBRARY, after, wants("2"), settle_s=0, sleep=lambda _: None)
        assert written == {"series": [{"name": "Red Rising", "sequence": "2"}]}
        assert forced_rescan() == [("Red Rising", "2")]


def test_patch_answers_the_non_expanded_item_and_an_empty_batch_is_refused():
    replay = AbsReplay(token=TOKEN)
    item_id = replay.items[0]["id"]
    with serve(replay) as url, httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        changed = http.patch(f"/api/items/{item_id}/media", json={"metadata": {"genres": ["Military"]}}).json()
        same = http.patch(f"/api/items/{item_id}/media", json={"metadata": {"genres": ["Military"]}}).json()
        empty = http.post("/api/items/batch/get", json={})
    assert changed["updated"] is True and "updated" not in same
    media = changed["libraryItem"]["media"]
    assert sorted(media) == ["audioFiles", "chapters", "coverPath", "ebookFile", "id", "libraryItemId", "metadata", "tags"]
    assert "authorName" not in media["metadata"] and "seriesName" not in media["metadata"]
    assert (empty.status_code, empty.headers["content-type"], empty.text) == (403, "text/html; charset=utf-8", "Invalid payload")
