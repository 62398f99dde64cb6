"""The ABS replay against the real ABS 2.36.0: the same requests, the same answer shapes.

Values differ (other books, other ids); the status, the Content-Type and the shape of each
body must not: every key, and the JSON type of every value that is not null on either side.
When the replay drifts from the server, the fast tests stop telling the truth, and this
test says where.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from resources.replay.abs import AbsReplay
from tests.abs_server import AbsServer, m4b_book
from tests.acquisition_world import add_fillers
from tests.servers import serve

pytestmark = pytest.mark.abs

TOKEN = "replay-shape-token"
_TYPES = {bool: "bool", int: "number", float: "number", str: "string", dict: "object", list: "array"}


def shape_differences(real: Any, replay: Any, path: str = "$") -> list[str]:
    """Where two JSON values differ in shape: keys, and types where neither side is null.

    Arrays compare every element of one side with the first of the other, so an element
    shape the replay never produces is found; an empty array matches any array.
    """
    if real is None or replay is None:
        return []
    kind_real, kind_replay = _TYPES.get(type(real), "?"), _TYPES.get(type(replay), "?")
    if kind_real != kind_replay:
        return [f"{path}: real {kind_real}, replay {kind_replay}"]
    if isinstance(real, dict):
        if path.endswith(".metaTags"):  # a map: which tags a file has is data, not shape
            return []
        out = [f"{path}.{k}: only in the real answer" for k in sorted(set(real) - set(replay))]
        out += [f"{path}.{k}: only in the replay" for k in sorted(set(replay) - set(real))]
        for key in sorted(set(real) & set(replay)):
            out += shape_differences(real[key], replay[key], f"{path}.{key}")
        return out
    if isinstance(real, list) and real and replay:
        return shape_differences(_merged(real), _merged(replay), f"{path}[]")
    return []


def _merged(elements: list[Any]) -> Any:
    """One element standing for all: objects merged key by key (first non-null value wins)."""
    if not all(isinstance(e, dict) for e in elements):
        return next((e for e in elements if e is not None), None)
    out: dict[str, Any] = {}
    for element in elements:
        for key, value in element.items():
            if out.get(key) is None:
                out[key] = value
    return out


def test_shape_differences_finds_keys_and_types():
    assert shape_differences({"a": 1, "b": [{"c": "x"}]}, {"a": 2.5, "b": [{"c": None}]}) == []
    assert shape_differences({"a": 1, "b": [{"c": "x"}, {"d": 1}]}, {"a": "1", "b": [{"c": "y"}], "e": 0}) == [
        "$.e: only in the replay", "$.a: real number, replay string", "$.b[].d: only in the real answer",
    ]


@dataclass
class Answer:
    status: int
    content_type: str | None
    body: Any

    @classmethod
    def of(cls, response: httpx.Response) -> Answer:
        content_type = response.headers.get("content-type")
        body = response.json() if content_type and "json" in content_type else response.text
        return cls(response.status_code, content_type, body)


class Side:
    """One server (real or replay) with its library, book and a way to send a request."""

    def __init__(self, url: str, token: str, library_id: str) -> None:
        self.url, self.token, self.library_id = url, token, library_id
        self.item_id = ""

    def send(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Answer:
        path = path.format(library=self.library_id, item=self.item_id)
        headers = {} if token == "" else {"Authorization": f"Bearer {token or self.token}"}
        return Answer.of(httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs))

    def wait_idle(self) -> None:
        deadline = time.monotonic() + 60
        while self.send("GET", "/api/tasks").body["tasks"]:
            assert time.monotonic() < deadline, "scan did not end"
            time.sleep(0.2)


def _book(library_dir: Path) -> None:
    m4b_book(library_dir / "Pierce Brown" / "Red Rising" / "Book 1 - Red Rising", title="Red Rising",
             author="Pierce Brown", narrator="Tim Gerard Reynolds", genre="Science Fiction")


# (what, method, path, keyword arguments); {library} and {item} are each side's own.
REQUESTS = [
    ("libraries", "GET", "/api/libraries", {}),
    ("items page", "GET", "/api/libraries/{library}/items", {"params": {"limit": 2, "page": 0, "sort": "addedAt"}}),
    ("items, page=-1", "GET", "/api/libraries/{library}/items", {"params": {"limit": 2, "page": -1}}),
    ("items, limit=2.5", "GET", "/api/libraries/{library}/items", {"params": {"limit": 2.5, "page": 0}}),
    ("items, page=abc", "GET", "/api/libraries/{library}/items", {"params": {"limit": 1, "page": "abc"}}),
    ("items of no library", "GET", "/api/libraries/nope/items", {"params": {"limit": 1, "page": 0}}),
    ("batch get", "POST", "/api/items/batch/get", {"json": {"libraryItemIds": ["{item}"]}}),
    ("batch get {}", "POST", "/api/items/batch/get", {"json": {}}),
    ("expanded item", "GET", "/api/items/{item}", {"params": {"expanded": 1}}),
    ("unknown item", "GET", "/api/items/nope", {"params": {"expanded": 1}}),
    ("patch that changes", "PATCH", "/api/items/{item}/media",
     {"json": {"metadata": {"genres": ["Military"], "series": [{"name": "Red Rising", "sequence": "1"}]}}}),
    ("patch that changes nothing", "PATCH", "/api/items/{item}/media",
     {"json": {"metadata": {"genres": ["Military"], "series": [{"name": "Red Rising", "sequence": "1"}]}}}),
    ("patch of an unknown item", "PATCH", "/api/items/nope/media", {"json": {"metadata": {"genres": []}}}),
    ("tasks, idle", "GET", "/api/tasks", {}),
]


def _compare(real: Side, replay: Side) -> list[str]:
    problems = []
    for what, method, path, kwargs in REQUESTS:
        if "json" in kwargs and "libraryItemIds" in kwargs["json"]:
            a = real.send(method, path, json={"libraryItemIds": [real.item_id]})
            b = replay.send(method, path, json={"libraryItemIds": [replay.item_id]})
        else:
            a, b = real.send(method, path, **kwargs), replay.send(method, path, **kwargs)
        problems += _differences(what, a, b)
    for what, token in (("bad token", "wrong"), ("no auth", "")):
        problems += _differences(what, real.send("GET", "/api/libraries", token=token),
                                 replay.send("GET", "/api/libraries", token=token))
    return problems


def _differences(what: str, a: Answer, b: Answer) -> list[str]:
    if (a.status, a.content_type) != (b.status, b.content_type):
        return [f"{what}: real {a.status} {a.content_type}, replay {b.status} {b.content_type}"]
    if isinstance(a.body, str) or isinstance(b.body, str):
        return [] if a.body == b.body else [f"{what}: real {a.body!r}, replay {b.body!r}"]
    return [f"{what}: {d}" for d in shape_differences(a.body, b.body)]


def test_the_replay_answers_in_the_real_servers_shapes(tmp_path, abs_server: AbsServer):
    real_dir, replay_dir = tmp_path / "real", tmp_path / "replay"
    _book(real_dir)
    library = abs_server.create_library(f"shapes-{tmp_path.name}", real_dir)
    abs_server.scan(library["id"])
    replay = AbsReplay(token=TOKEN, library_dir=replay_dir, scan_polls=2)
    with serve(replay) as url:
        real = Side(abs_server.url, abs_server.api_key, library["id"])
        fake = Side(url, TOKEN, replay.libraries[0]["id"])
        # A scan answers "OK" and shows its task while it runs (twenty new books keep the real one busy).
        _book(replay_dir)
        add_fillers(real_dir, 20)
        scans = []
        for side in (real, fake):
            first = side.send("POST", "/api/libraries/{library}/scan")
            running = side.send("GET", "/api/tasks")
            scans.append((first, running))
            side.wait_idle()
        problems = _differences("scan", scans[0][0], scans[1][0])
        problems += _differences("tasks, scanning", scans[0][1], scans[1][1])
        assert scans[0][1].body["tasks"] and scans[1][1].body["tasks"], "both list the running scan"
        real.item_id = next(i["id"] for i in abs_server.items(library["id"]) if i["relPath"].startswith("Pierce Brown/"))
        fake.item_id = next(i["id"] for i in replay.items if i["relPath"].startswith("Pierce Brown/"))
        problems += _compare(real, fake)

        # The folder watcher: a new book folder shows a `watcher-scan` task, then the book.
        replay.watcher, replay._watched = True, {i["relPath"] for i in replay.items}
        watched = []
        for side, folder in ((real, real_dir), (fake, replay_dir)):
            m4b_book(folder / "Pierce Brown" / "Red Rising" / "Book 2 - Golden Son", title="Golden Son", author="Pierce Brown")
            deadline = time.monotonic() + 30
            while not (tasks := side.send("GET", "/api/tasks")).body["tasks"]:
                assert time.monotonic() < deadline, "no watcher task"
                time.sleep(0.2)
            watched.append(tasks)
            side.wait_idle()
        problems += _differences("tasks, watcher", *watched)
        assert [t["action"] for w in watched for t in w.body["tasks"]] == ["watcher-scan", "watcher-scan"]

        # A phrase sequence does not survive a forced rescan, on either side.
        lost = []
        for side in (real, fake):
            side.send("PATCH", "/api/items/{item}/media",
                      json={"metadata": {"series": [{"name": "Red Rising", "sequence": "Book One"}]}})
            side.send("POST", "/api/libraries/{library}/scan", params={"force": 1})
            side.wait_idle()
            series = side.send("GET", "/api/items/{item}", params={"expanded": 1}).body["media"]["metadata"]["series"]
            lost.append([(s["name"], s["sequence"]) for s in series])
        assert lost == [[("Red Rising #Book One", None)]] * 2
    assert problems == [], "\n".join(problems)
