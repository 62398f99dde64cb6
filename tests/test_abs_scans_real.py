"""The client's scan handling against the real Audiobookshelf 2.36.0.

ABS ignores a scan asked while one runs (200 "OK", "Already scanning" in its log), and its
folder watcher adds a new book on its own about 12 s after the files appear. The import's
`scan_until_found` must come out of both with the one item of the book.
"""

from __future__ import annotations

import httpx
import pytest

from resources.audiobookshelf import AudiobookshelfResource
from tests.abs_server import AbsServer, m4b_book
from tests.acquisition_world import add_fillers

pytestmark = pytest.mark.abs

SENT: list[str] = []


class _Counting(httpx.HTTPTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        SENT.append(f"{request.method} {request.url.path}")
        return super().handle_request(request)


class CountingClient(AudiobookshelfResource):
    """The real client; every request it sends is listed in SENT."""

    def _transport(self) -> httpx.BaseTransport:
        return _Counting()


def _client(server: AbsServer) -> CountingClient:
    SENT.clear()
    return CountingClient(base_url=server.url, api_key=server.api_key, backoff_s=0.01)


def _golden_son(library_dir):
    folder = library_dir / "Pierce Brown" / "Red Rising" / "Book 2 - Golden Son"
    m4b_book(folder, title="Golden Son", author="Pierce Brown")
    return folder


def test_a_scan_refused_while_one_runs_is_asked_again(tmp_path, abs_server: AbsServer):
    library_dir = tmp_path / "library"
    m4b_book(library_dir / "Pierce Brown" / "Red Rising" / "Book 1 - Red Rising", title="Red Rising", author="Pierce Brown")
    library_id = abs_server.create_library(f"refused-{tmp_path.name}", library_dir, watcher=False)["id"]
    abs_server.scan(library_id)
    add_fillers(library_dir, 40)
    abs_server.api("POST", f"/api/libraries/{library_id}/scan").raise_for_status()  # forty books: seconds of probing
    folder = _golden_son(library_dir)
    log_offset = abs_server.log_size()
    client = _client(abs_server)
    client.scan_library(library_id)  # 200 "OK", and nothing happens
    assert client.wait_for_scan(library_id, poll_s=0.3)
    assert "Already scanning" in abs_server.log_since(log_offset)
    assert client.find_item_by_path(library_id, str(folder)) is None, "the running scan had walked the folders before"

    item = client.scan_until_found(library_id, str(folder), poll_s=0.3)
    assert item is not None and item["media"]["metadata"]["title"] == "Golden Son"
    assert SENT.count(f"POST /api/libraries/{library_id}/scan") == 2  # the refused one, and the one asked again
    assert [i["relPath"] for i in abs_server.items(library_id)].count("Pierce Brown/Red Rising/Book 2 - Golden Son") == 1


def test_a_book_the_watcher_added_is_found_without_a_scan(tmp_path, abs_server: AbsServer):
    library_dir = tmp_path / "library"
    m4b_book(library_dir / "Pierce Brown" / "Red Rising" / "Book 1 - Red Rising", title="Red Rising", author="Pierce Brown")
    library_id = abs_server.create_library(f"watched-{tmp_path.name}", library_dir)["id"]
    abs_server.scan(library_id)
    folder = _golden_son(library_dir)
    # The watcher's task shows up about 2 s after the files appear: the wait covers it.
    abs_server.wait_for(lambda: abs_server.tasks(), "the watcher's task", timeout_s=15)
    client = _client(abs_server)
    item = client.scan_until_found(library_id, str(folder), poll_s=0.3)
    assert item is not None and item["relPath"] == "Pierce Brown/Red Rising/Book 2 - Golden Son"
    assert not [r for r in SENT if r.startswith("POST")], SENT  # the watcher's scan was waited for, not doubled
    assert [t["action"] for t in abs_server.tasks()] == []


def test_our_scan_and_the_watcher_race_to_one_item(tmp_path, abs_server: AbsServer):
    """Files placed and our scan asked at once: ours adds the book, the watcher rescans it later."""
    library_dir = tmp_path / "library"
    m4b_book(library_dir / "Pierce Brown" / "Red Rising" / "Book 1 - Red Rising", title="Red Rising", author="Pierce Brown")
    library_id = abs_server.create_library(f"race-{tmp_path.name}", library_dir)["id"]
    abs_server.scan(library_id)
    folder = _golden_son(library_dir)
    client = _client(abs_server)
    item = client.scan_until_found(library_id, str(folder), poll_s=0.3)
    assert item is not None
    written, settled = client.write_until_kept(
        library_id, item, lambda meta: {} if "Space Opera" in meta["genres"] else {"genres": ["Space Opera"]},
        settle_s=3, poll_s=0.3,
    )
    assert written == {"genres": ["Space Opera"]}
    meta = settled["media"]["metadata"]
    assert meta["genres"] == ["Space Opera"] and [(s["name"], s["sequence"]) for s in meta["series"]] == [("Red Rising", "2")]
    assert abs_server.tasks() == []
    books = [i for i in abs_server.items(library_id) if i["relPath"].endswith("Golden Son")]
    assert [b["id"] for b in books] == [item["id"]]
