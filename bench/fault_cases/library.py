"""ABS answering badly, through a loopback server, to the real `refresh_library` job.

Every case first refreshes from the recorded ABS 2.36 library (25 items, 45 missing books),
then injects its fault. A suspect or unreadable answer must fail the run and keep every table
as it was; a bad item among good ones must cost that item at most. `rows_lost` counts the
rows of the first refresh (by id, in `abs_library_items`, `library_books` and `missing_books`)
that are gone after the fault.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.fault_cases import CANARIES, FaultResult
from bench.unreachable import closed_port_url, dropping_server
from resources.replay.abs import AbsReplay
from tests.servers import serve

KEY = CANARIES["ABS_API_KEY"]
TABLES = {"abs_library_items": "item_id", "library_books": "item_id", "missing_books": "missing_id"}


def _refresh(work: Path, handler: Callable[[httpx.Request], httpx.Response] | None = None, url: str | None = None):
    """`refresh_library` in this process against `handler` (served on loopback) or `url`."""
    from dagster import DagsterInstance

    from pipelines.definitions import build_definitions
    from pipelines.profiles import resolve_profile

    os.environ["MAMCRAWLER_WAREHOUSE"] = str(work / "data" / "warehouse.duckdb")
    os.environ["ABS_API_KEY"] = KEY

    def run(base_url: str):
        os.environ["ABS_URL"] = base_url
        defs = build_definitions(resolve_profile())
        return defs.resolve_job_def("refresh_library").execute_in_process(instance=DagsterInstance.ephemeral(), raise_on_error=False)

    if url is not None:
        return run(url)
    with serve(handler) as served:
        return run(served)


def _failure(result) -> str:
    from dagster import DagsterEventType

    lines = []  # each failed step's innermost error: what the step itself said
    for event in (e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE):
        error = event.event_specific_data.error
        while error.cause is not None:
            error = error.cause
        lines.append(error.message.strip().split(": ", 1)[-1])
    return " | ".join(lines)


def _rows() -> dict[str, set[str]]:
    from mamcrawler.warehouse import Warehouse, default_warehouse_path

    store = Warehouse(default_warehouse_path())
    return {table: set(store.read_table(table, [key])[key].to_list()) if store.has_table(table) else set()
            for table, key in TABLES.items()}


def _lost(before: dict[str, set[str]], after: dict[str, set[str]]) -> int:
    return sum(len(before[t] - after[t]) for t in TABLES)


def _baseline(work: Path) -> dict[str, set[str]] | None:
    first = _refresh(work, AbsReplay(token=KEY))
    rows = _rows()
    return rows if first.success and len(rows["library_books"]) == 25 and len(rows["missing_books"]) == 45 else None


def _refused(name: str, work: Path, fault, said: str, url: str | None = None) -> FaultResult:
    """After a good refresh, `fault` must fail the run with `said` in the failure, and every
    table must keep every row."""
    before = _baseline(work)
    if before is None:
        return FaultResult(name, survived=False, detail="the first, good refresh failed")
    result = _refresh(work, fault, url=url)
    after = _rows()
    text = _failure(result)
    lost = _lost(before, after)
    unchanged = after == before
    return FaultResult(name, survived=not result.success and said in text and unchanged, rows_lost=lost,
                       detail=f"run {'succeeded' if result.success else 'failed'}: {text[:220]}; rows lost {lost}")


# --- suspect snapshots ----------------------------------------------------------------------

class NoLibraries(AbsReplay):
    def __init__(self, **kw):
        super().__init__(token=KEY, **kw)
        self.libraries = []


def empty_libraries(work: Path) -> FaultResult:
    return _refused("library: ABS lists no library", work, NoLibraries(), "Suspect library snapshot")


def empty_results_with_total(work: Path) -> FaultResult:
    return _refused("library: results [] with total 25", work, AbsReplay(token=KEY, lose_items=25), "Suspect library snapshot")


def shrink_40_percent(work: Path) -> FaultResult:
    return _refused("library: a shrink of 40%", work, AbsReplay(token=KEY, items=AbsReplay().items[:15]), "shrank from 25 to 15")


class EndlessFreshIds(AbsReplay):
    """Every page has new ids and a `total` of 25: a listing that never ends on its own."""

    pages = 0

    def _items(self, library_id, params):
        page, limit = int(params.get("page", 0)), int(params.get("limit", 1))
        EndlessFreshIds.pages += 1
        rows = [{"id": f"li_{page}_{i}", "libraryId": library_id} for i in range(limit)]
        return httpx.Response(200, json={"results": rows, "total": 25})


def _bounded(name: str, work: Path, replay) -> FaultResult:
    """A listing that never ends must be refused as suspect after a few pages, not read forever."""
    result = _refused(name, work, replay, "Suspect library snapshot")
    pages = type(replay).pages
    result.survived &= pages <= 5
    result.hung = pages > 5
    result.detail += f"; {pages} pages read"
    return result


def endless_fresh_ids(work: Path) -> FaultResult:
    return _bounded("library: a listing of new ids that never ends", work, EndlessFreshIds(token=KEY))


# --- unreadable answers ---------------------------------------------------------------------

class Answering(AbsReplay):
    """The replay, but `path` (one endpoint) answers `body` (raw bytes) with `status`."""

    def __init__(self, path: str, body: bytes, status: int = 200, times: int | None = None):
        super().__init__(token=KEY)
        self.path, self.body, self.status, self.times = path, body, status, times

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(self.path) and (self.times is None or self.times > 0):
            self.times = None if self.times is None else self.times - 1
            self.requests.append(f"{request.method} {request.url.path}")
            return httpx.Response(self.status, content=self.body, headers={"Content-Type": "application/json; charset=utf-8"})
        return super().__call__(request)


def truncated_json(work: Path) -> FaultResult:
    whole = json.dumps({"libraryItems": AbsReplay().items}).encode()
    return _refused("library: truncated JSON", work, Answering("/items/batch/get", whole[: len(whole) // 2]), "did not answer JSON")


def nested_json(work: Path) -> FaultResult:
    return _refused("library: JSON nested 100,000 deep", work,
                    Answering("/items/batch/get", b'{"libraryItems": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), "nested too deep")


def http_500_then_recovery(work: Path) -> FaultResult:
    """ABS answers 500 to everything: the run fails with the tables kept; then two 500s the
    retries absorb, and the run after succeeds with every row back."""
    name = "library: HTTP 500, then recovery"
    down = _refused(name, work, Answering("/api/libraries", b"Internal Server Error", status=500), "answered HTTP 500")
    if not down.survived:
        return down
    result = _refresh(work, Answering("/api/libraries", b"Internal Server Error", status=500, times=2))
    after = _rows()
    return FaultResult(name, survived=result.success and len(after["library_books"]) == 25 and len(after["missing_books"]) == 45,
                       detail=f"{down.detail}; then two 500s: run {'succeeded' if result.success else 'failed: ' + _failure(result)[:200]}")


def abs_unreachable(work: Path) -> FaultResult:
    return _refused("library: ABS port closed", work, None, "cannot reach ABS", url=closed_port_url())


def abs_drops_connections(work: Path) -> FaultResult:
    with dropping_server() as (url, _):
        return _refused("library: ABS drops every connection", work, None, "cannot reach ABS", url=url)


def wrong_api_key(work: Path) -> FaultResult:
    return _refused("library: ABS refuses the API key", work, AbsReplay(token="another-key"), "ABS_API_KEY")


# --- one bad item among good ones -----------------------------------------------------------

def _with_bad_item(name: str, work: Path, change: Callable[[dict], None], raw: Callable[[bytes], bytes] = lambda b: b) -> FaultResult:
    """The 25 items and one more, changed by `change` (and its bytes by `raw`): the run
    succeeds, the 25 keep every row, the new item is kept (repaired) or skipped."""
    before = _baseline(work)
    if before is None:
        return FaultResult(name, survived=False, detail="the first, good refresh failed")
    items = AbsReplay().items
    bad = copy.deepcopy(items[0])
    bad["id"], bad["media"]["libraryItemId"], bad["relPath"] = "li_fault", "li_fault", "Fault/Item"
    bad["media"]["metadata"].update(title="A Book Nobody Has", series=[], authors=[{"id": "au_x", "name": "Nobody"}])

    class Replay(AbsReplay):
        """The listing as recorded; the full item, in `batch/get`, changed."""

        def __call__(self, request: httpx.Request) -> httpx.Response:
            response = super().__call__(request)
            if request.url.path.endswith("/items/batch/get"):
                body = response.json()
                for item in body["libraryItems"]:
                    if item["id"] == "li_fault":
                        change(item)
                return httpx.Response(200, content=raw(json.dumps(body).encode()), headers=response.headers)
            return response

    result = _refresh(work, Replay(token=KEY, items=[*items, bad]))
    after = _rows()
    lost = _lost(before, after)
    kept = "li_fault" in after["library_books"]
    return FaultResult(name, survived=result.success and lost == 0, rows_lost=lost,
                       detail=f"run {'succeeded' if result.success else 'failed: ' + _failure(result)[:200]}; "
                       f"bad item {'kept' if kept else 'skipped'}; rows lost {lost}")


def numeric_series_name(work: Path) -> FaultResult:
    return _with_bad_item("library: a series name that is a number", work,
                          lambda item: item["media"]["metadata"].update(series=[{"id": "se_x", "name": 5, "sequence": "1"}]))


def duration_abc(work: Path) -> FaultResult:
    return _with_bad_item("library: duration \"abc\"", work, lambda item: item["media"].update(duration="abc"))


def lone_surrogate_escaped(work: Path) -> FaultResult:
    return _with_bad_item("library: a lone surrogate in a title (\\ud800)", work,
                          lambda item: item["media"]["metadata"].update(title="Du\ud800ne"))


def lone_surrogate_raw(work: Path) -> FaultResult:
    """The surrogate as raw bytes on the wire (invalid UTF-8), not as a JSON escape."""
    return _with_bad_item("library: a lone surrogate as raw bytes", work,
                          lambda item: item["media"]["metadata"].update(title="Du@SURROGATE@ne"),
                          raw=lambda body: body.replace(b"@SURROGATE@", b"\xed\xa0\x80"))


def wrong_types_everywhere(work: Path) -> FaultResult:
    def change(item: dict) -> None:
        item.update(size="big", addedAt=1e30, mediaType=7, libraryFiles="x")
        item["media"]["metadata"].update(authors="Nobody", narrators=[None, 3], genres={"a": 1}, publishedYear="MMXX",
                                         isbn=9780441013593, asin=["B0"], description="x" * 1_000_000)
    return _with_bad_item("library: wrong types in every field", work, change)


class SamePageForever(AbsReplay):
    """Whatever page is asked, the first 10 items again (a server that ignores `page`)."""

    pages = 0

    def _items(self, library_id, params):
        SamePageForever.pages += 1
        response = super()._items(library_id, httpx.QueryParams({**dict(params), "page": "0", "limit": "10"}))
        body = response.json()
        return httpx.Response(200, json={**body, "limit": int(params.get("limit", 10))})


def same_page_forever(work: Path) -> FaultResult:
    """The listing must stop at the repeated page; 10 of 25 items is a suspect shrink."""
    return _bounded("library: the same page forever", work, SamePageForever(token=KEY))


CASES = [
    empty_libraries, empty_results_with_total, shrink_40_percent, endless_fresh_ids, same_page_forever,
    truncated_json, nested_json, http_500_then_recovery, abs_unreachable, abs_drops_connections, wrong_api_key,
    numeric_series_name, duration_abc, lone_surrogate_escaped, lone_surrogate_raw, wrong_types_everywhere,
]
