"""Audiobookshelf (ABS) API client as a Dagster resource.

Facts this code relies on (recorded from ABS 2.36.0, `shared/fixtures/abs/README.md`):
list pages are 0-based `page` + `limit` and `offset` is ignored; without `sort` the
order is whatever SQLite returns; `total` can be missing while a scan runs, so paging
stops at the first empty page; list items are minified, so full items come from
`POST /api/items/batch/get`; a 401 body is plain text "Unauthorized".
"""

from __future__ import annotations

import contextlib
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from dagster import ConfigurableResource
from pydantic import Field

from resources.fixed import FixedConfig
from resources.http import send_with_retries
from resources.replay.abs import AbsReplay
from resources.secrets import ScrubbedError, excerpt, register, scrubbed_json


class AbsError(ScrubbedError):
    """Base class: anything that stops a library snapshot."""


class AbsAuthError(AbsError):
    """ABS rejected the API key."""


class AbsUnreachableError(AbsError):
    """No answer from the ABS host (DNS, refused connection, timeouts after retries)."""


class AbsLibraryNotFoundError(AbsError):
    """A configured library id does not exist on the server."""


class AbsItemNotFoundError(AbsError):
    """The item was removed from ABS since the snapshot."""


class AbsResponseError(AbsError):
    """ABS answered with an unexpected status or body."""


class AbsScanTimeoutError(AbsError):
    """A library scan (ours or the folder watcher's) did not end in time."""


AUTH_HELP = (
    "ABS rejected the API key (HTTP 401). Create one in ABS under Settings -> API Keys "
    "(or POST /api/api-keys with \"isActive\": true: keys are created inactive by default) "
    "and put it in the ABS_API_KEY environment variable."
)


@dataclass
class LibraryFetch:
    """What one snapshot fetched, with the numbers a person needs to trust it."""

    items: list[dict[str, Any]] = field(default_factory=list)
    libraries: list[dict[str, str]] = field(default_factory=list)
    requests: int = 0
    pages: int = 0
    reported_total: int = 0
    listed: int = 0
    duplicate_ids: int = 0
    warnings: list[str] = field(default_factory=list)


class AudiobookshelfResource(FixedConfig, ConfigurableResource):
    """Reads every book library (or `library_ids`) of one ABS server."""

    base_url: str = Field(description="ABS server URL, e.g. http://127.0.0.1:13378")
    api_key: str = Field(description="ABS API key (Settings -> API Keys, isActive: true)")
    library_ids: list[str] = Field(default_factory=list, description="Only these libraries; empty = every book library")
    page_size: int = Field(default=500, ge=1, le=5000)
    batch_size: int = Field(default=100, ge=1, le=1000, description="Items per POST /api/items/batch/get")
    timeout_s: float = 30.0
    max_retries: int = 4
    backoff_s: float = 0.5
    max_body_bytes: int = Field(default=100_000_000, description="Answers larger than this are refused")

    def _transport(self) -> httpx.BaseTransport | None:
        return None

    @contextlib.contextmanager
    def _client(self) -> Iterator[httpx.Client]:
        register(self.api_key)
        with httpx.Client(
            base_url=self.base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"},
            timeout=self.timeout_s,
            transport=self._transport(),
            follow_redirects=True,
        ) as client:
            yield client

    def _send(self, client: httpx.Client, stats: LibraryFetch, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request with retries; any error status becomes the matching AbsError."""
        what = f"ABS {method} {path}"

        def send() -> httpx.Response:
            stats.requests += 1
            return client.request(method, path, **kwargs)

        try:
            response = send_with_retries(send, what, max_retries=self.max_retries, backoff_s=self.backoff_s)
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            raise AbsUnreachableError(
                f"cannot reach ABS at {self.base_url} ({type(exc).__name__}); is ABS_URL right and the server up?"
            ) from None
        if response.status_code == 401:
            raise AbsAuthError(AUTH_HELP)
        if response.status_code == 403 and path.endswith("/scan"):
            raise AbsResponseError(f"{what} answered HTTP 403: the API key's user must be an ABS admin for this")
        if response.status_code == 404 and "/libraries/" in path:
            raise AbsLibraryNotFoundError(f"ABS has no library with the id in {path}")
        if response.status_code == 404 and path.startswith("/api/items/"):
            raise AbsItemNotFoundError(f"ABS has no item at {path}")
        if response.status_code >= 400:
            raise AbsResponseError(f"{what} answered HTTP {response.status_code}: {excerpt(response.text)}")
        if len(response.content) > self.max_body_bytes:
            raise AbsResponseError(f"{what} answered {len(response.content)} bytes, more than {self.max_body_bytes}")
        return response

    def _call(self, client: httpx.Client, stats: LibraryFetch, method: str, path: str, **kwargs: Any) -> Any:
        """`_send` for endpoints that answer JSON."""
        return _json_object(self._send(client, stats, method, path, **kwargs), method, path)

    def _select_libraries(self, client: httpx.Client, stats: LibraryFetch) -> list[dict[str, Any]]:
        libraries = self._call(client, stats, "GET", "/api/libraries").get("libraries") or []
        libraries = [lib for lib in libraries if isinstance(lib, dict) and isinstance(lib.get("id"), str)] if isinstance(libraries, list) else []
        if not self.library_ids:
            return [lib for lib in libraries if lib.get("mediaType") == "book"]
        known = {lib["id"]: lib for lib in libraries}
        unknown = [i for i in self.library_ids if i not in known]
        if unknown:
            names = ", ".join(f"{lib.get('name')} ({lib['id']})" for lib in libraries) or "none"
            raise AbsLibraryNotFoundError(f"no ABS library with id {', '.join(unknown)}; libraries: {names}")
        return [known[i] for i in self.library_ids]

    def fetch_items(self, progress: Callable[[str], None] = lambda _: None) -> LibraryFetch:
        """Every expanded item of the selected book libraries."""
        stats = LibraryFetch()
        with self._client() as client:
            for lib in self._select_libraries(client, stats):
                stats.libraries.append({"id": lib["id"], "name": lib.get("name", "")})
                ids = self._list_ids(client, stats, lib, progress)
                for start in range(0, len(ids), self.batch_size):
                    chunk = ids[start : start + self.batch_size]
                    body = self._call(client, stats, "POST", "/api/items/batch/get", json={"libraryItemIds": chunk})
                    items = body.get("libraryItems")
                    stats.items.extend(items if isinstance(items, list) else [])
                    progress(f"{lib.get('name')}: fetched {min(start + len(chunk), len(ids))}/{len(ids)} full items")
        return stats

    def library_fingerprint(self) -> str:
        """Cheap change marker: per library the item count and the newest item.

        ABS cannot sort by `updatedAt`, so metadata edits inside ABS do not change it;
        added and removed books do.
        """
        stats = LibraryFetch()
        parts = []
        with self._client() as client:
            for lib in self._select_libraries(client, stats):
                body = self._call(
                    client, stats, "GET", f"/api/libraries/{lib['id']}/items",
                    params={"limit": 1, "page": 0, "sort": "addedAt", "desc": 1},
                )
                newest = (body.get("results") or [{}])[0]
                parts.append(f"{lib['id']}:{body.get('total')}:{newest.get('id')}:{newest.get('addedAt')}")
        return ";".join(parts)

    def _list_ids(
        self, client: httpx.Client, stats: LibraryFetch, lib: dict[str, Any], progress: Callable[[str], None]
    ) -> list[str]:
        ids: dict[str, None] = {}
        reported: int | None = None
        page = 0
        while True:
            body = self._call(
                client,
                stats,
                "GET",
                f"/api/libraries/{lib['id']}/items",
                # addedAt ascending: items a running scan adds land on later pages.
                params={"limit": self.page_size, "page": page, "sort": "addedAt"},
            )
            results = body.get("results")
            results = [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []
            stats.pages += 1
            if isinstance(body.get("total"), int) and not isinstance(body["total"], bool):
                reported = body["total"]
            if not results:
                break
            before = len(ids)
            for row in results:
                if not isinstance(row.get("id"), str) or not row["id"]:
                    continue
                if row["id"] in ids:
                    stats.duplicate_ids += 1
                else:
                    ids[row["id"]] = None
            progress(f"{lib.get('name')}: listed {len(ids)}/{reported if reported is not None else '?'} items")
            page += 1
            if stop := _paging_stop(len(ids) - before, page, self.page_size, reported):
                stats.warnings.append(f"{lib.get('name')}: {stop}; listed {len(ids)} items")
                break
        stats.listed += len(ids)
        stats.reported_total += reported or 0
        if reported is None:
            stats.warnings.append(f"{lib.get('name')}: ABS sent no total (scan running?); listed {len(ids)} items")
        elif reported != len(ids):
            stats.warnings.append(f"{lib.get('name')}: ABS reported {reported} items but listed {len(ids)}")
        return list(ids)

    def get_item(self, item_id: str) -> dict[str, Any]:
        """One expanded item as ABS holds it now."""
        with self._client() as client:
            return self._call(client, LibraryFetch(), "GET", f"/api/items/{item_id}", params={"expanded": 1})

    def update_media(self, item_id: str, metadata: dict[str, Any]) -> bool:
        """PATCH /api/items/:id/media; True when ABS changed something.

        ABS replaces the whole `series` set and stores a non-string `sequence` as null, so
        callers send the merged set with string sequences; ABS omits `updated` (rather
        than sending false) when nothing changed.
        """
        for entry in metadata.get("series") or []:
            if entry.get("sequence") is not None and not isinstance(entry["sequence"], str):
                raise ValueError(f"series sequence must be a string for ABS, got {entry['sequence']!r}")
        stats = LibraryFetch()
        with self._client() as client:
            body = self._call(client, stats, "PATCH", f"/api/items/{item_id}/media", json={"metadata": metadata})
        return bool(body.get("updated"))

    def libraries(self) -> list[dict[str, Any]]:
        """Every library with its `folders` (`fullPath` is the path as the ABS server sees it)."""
        with self._client() as client:
            return self._call(client, LibraryFetch(), "GET", "/api/libraries").get("libraries") or []

    def libraries_and_date(self) -> tuple[list[dict[str, Any]], str | None]:
        """Every library and the answer's HTTP `Date` header (the preflight's key and clock checks)."""
        with self._client() as client:
            response = self._send(client, LibraryFetch(), "GET", "/api/libraries")
        libraries = _json_object(response, "GET", "/api/libraries").get("libraries")
        if not isinstance(libraries, list):
            raise AbsResponseError("ABS GET /api/libraries answered no library list")
        return [lib for lib in libraries if isinstance(lib, dict)], response.headers.get("date")

    def scan_library(self, library_id: str) -> None:
        """Ask ABS to scan a library; ABS answers "OK" at once and scans in the background."""
        with self._client() as client:
            # ABS answers plain text "OK" here, not JSON.
            self._send(client, LibraryFetch(), "POST", f"/api/libraries/{library_id}/scan")

    def tasks(self) -> list[dict[str, Any]]:
        """Running tasks; ABS drops a task from this list once it has finished."""
        with self._client() as client:
            return self._tasks(client)

    def _tasks(self, client: httpx.Client) -> list[dict[str, Any]]:
        body = self._call(client, LibraryFetch(), "GET", "/api/tasks")
        tasks = body.get("tasks") if isinstance(body, dict) else None
        if not isinstance(tasks, list):
            raise AbsResponseError(f"ABS GET /api/tasks answered no task list: {str(body)[:200]}")
        return tasks

    def wait_for_scan(
        self,
        library_id: str,
        timeout_s: float = 600,
        poll_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        quiet_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> bool:
        """True once no unfinished scan of the library is listed (for `quiet_s` in a row); False on timeout.

        Every scan counts (`library_scans`): a `library-scan` we asked for and the folder
        watcher's own `watcher-scan`, which starts about 2 s after files appear and rescans a
        new item about 10 s later. ABS registers a scan task before its scan endpoint answers,
        so a poll right after `scan_library` already sees it.
        """
        deadline = clock() + timeout_s
        quiet_since: float | None = None
        with self._client() as client:
            while True:
                now = clock()
                running = library_scans(self._tasks(client), library_id)
                quiet_since = None if running else (now if quiet_since is None else quiet_since)
                if quiet_since is not None and now - quiet_since >= quiet_s:
                    return True
                left = deadline - now
                if left <= 0:
                    return False
                sleep(min(poll_s, left))

    def scan_until_found(
        self,
        library_id: str,
        path: str,
        attempts: int = 3,
        timeout_s: float = 600,
        poll_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, Any] | None:
        """The expanded item at `path` after scanning; None when `attempts` scans did not bring it.

        ABS ignores a scan asked while one runs (200 "OK", "Already scanning" in its log): a
        folder placed meanwhile is not in that scan. So the library's tasks are waited out
        first, the folder watcher may already have added the item, and a scan that did not
        bring it is asked again. Raises `AbsScanTimeoutError` when the library never goes idle.
        """
        for _ in range(attempts):
            if not self.wait_for_scan(library_id, timeout_s, poll_s, sleep):
                raise AbsScanTimeoutError(f"ABS was still scanning library {library_id} after {timeout_s:.0f} s")
            if (item := self.find_item_by_path(library_id, path)) is not None:
                return item
            self.scan_library(library_id)
            if not self.wait_for_scan(library_id, timeout_s, poll_s, sleep):
                raise AbsScanTimeoutError(f"the ABS scan of library {library_id} did not finish in {timeout_s:.0f} s")
            if (item := self.find_item_by_path(library_id, path)) is not None:
                return item
        return None

    def write_until_kept(
        self,
        library_id: str,
        item: dict[str, Any],
        plan: Callable[[dict[str, Any]], dict[str, Any]],
        settle_s: float,
        rounds: int = 2,
        timeout_s: float = 600,
        poll_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(first body sent, the item as ABS holds it once settled) for `plan(metadata)` edits.

        ABS's folder watcher rescans a new item about 10 s after its files appear, from the
        item's `metadata.json`, and may undo an edit made before it: the item is read back
        only once the library has shown no scan for `settle_s`, and written again (up to
        `rounds` times) while `plan` still finds something to change. The caller decides
        whether what is still missing then is a failure.
        """
        written: dict[str, Any] = {}
        for _ in range(rounds):
            body = plan(item["media"]["metadata"])
            if not body:
                break
            self.update_media(item["id"], body)
            written = written or body
            if not self.wait_for_scan(library_id, timeout_s, poll_s, sleep, quiet_s=settle_s):
                raise AbsScanTimeoutError(f"ABS library {library_id} did not settle within {timeout_s:.0f} s after the edit")
            item = self.get_item(item["id"])
        return written, item

    def find_item_by_path(self, library_id: str, path: str) -> dict[str, Any] | None:
        """The expanded item whose folder is `path` (as ABS sees it, e.g. "/audiobooks/Author/Title").

        The items list has no path filter, so this pages newest first: a book just scanned
        in is on the first page.
        """
        wanted = _path_key(path)
        stats = LibraryFetch()
        with self._client() as client:
            page, seen = 0, set()
            while True:
                body = self._call(
                    client, stats, "GET", f"/api/libraries/{library_id}/items",
                    params={"limit": self.page_size, "page": page, "sort": "addedAt", "desc": 1},
                )
                results = body.get("results")
                results = [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []
                fresh = {str(r.get("id")) for r in results} - seen
                if not results or not fresh or page * self.page_size > MAX_LISTED_ITEMS:
                    return None  # the end, or the same page again
                seen |= fresh
                for row in results:
                    if row.get("id") and _path_key(str(row.get("path") or "")) == wanted:
                        return self._call(client, stats, "GET", f"/api/items/{row['id']}", params={"expanded": 1})
                page += 1


MAX_LISTED_ITEMS = 2_000_000  # no ABS library is this big; a listing past it is a server bug
TOTAL_MARGIN = 0.1  # a running scan may add items while we page


def _paging_stop(new_ids: int, pages_read: int, page_size: int, reported: int | None) -> str | None:
    """Why the listing must stop although the last page was not empty, or None to go on."""
    if new_ids == 0:
        return "ABS sent a page of items already listed (the same page again?), paging stopped"
    expected = reported if reported is not None else MAX_LISTED_ITEMS
    if pages_read * page_size > expected * (1 + TOTAL_MARGIN) + page_size:
        return f"ABS kept sending pages past the {expected} items it reported, paging stopped"
    return None


SCAN_ACTIONS = ("library-scan", "watcher-scan")


def library_scans(tasks: list[dict[str, Any]], library_id: str) -> list[dict[str, Any]]:
    """The unfinished tasks that may change `library_id`'s items.

    A `library-scan` names its library in `data.libraryId`. ABS keeps one pending
    `watcher-scan` for every file change until its 10 s delay ends, labelled with the library
    of the first change: it may carry another library's id and still scan ours, so every
    watcher scan counts. Other tasks (backups, encodes, embeds) do not move items.
    """
    def data(task: dict[str, Any]) -> dict[str, Any]:
        return task["data"] if isinstance(task.get("data"), dict) else {}

    return [
        t for t in tasks
        if isinstance(t, dict) and not t.get("isFinished") and (
            t.get("action") == "watcher-scan"
            or (data(t).get("libraryId") == library_id and t.get("action") in (*SCAN_ACTIONS, None))
        )
    ]


def _path_key(path: str) -> str:
    """ABS keeps paths as the file system spells them; compare NFC without a trailing slash."""
    return unicodedata.normalize("NFC", path).rstrip("/")


class ReplayAudiobookshelfResource(AudiobookshelfResource):
    """The demo library: the real client against the recorded ABS 2.36.0 responses."""

    base_url: str = "http://abs.replay"
    api_key: str = "demo-token"

    def _transport(self) -> httpx.BaseTransport:
        return httpx.MockTransport(AbsReplay(token=self.api_key))


def _json_object(response: httpx.Response, method: str, path: str) -> dict[str, Any]:
    """The JSON object an ABS answer holds (scrubbed), or AbsResponseError saying what it was."""
    try:
        body = scrubbed_json(response)
    except ValueError:
        raise AbsResponseError(f"ABS {method} {path} did not answer JSON: {excerpt(response.text)}") from None
    except RecursionError:
        raise AbsResponseError(f"ABS {method} {path} answered JSON nested too deep to read") from None
    if not isinstance(body, dict):
        raise AbsResponseError(f"ABS {method} {path} answered {type(body).__name__}, not a JSON object")
    return body
