"""A replay of Audiobookshelf 2.36.0 built from recorded responses.

The JSON files beside this module were recorded from a real ABS 2.36.0 server (see
`shared/fixtures/abs/README.md`). The handler reproduces the behaviour that matters to
a client: Bearer auth with a plain-text 401 that has no Content-Type, 0-based `page` +
`limit` (`offset` ignored, non-numeric values coerced to 0, negative or fractional ones
a 400 text/html), `total` in every list response, minified list items, expanded items
from `POST /api/items/batch/get`, and "Library not found" for an unknown library.

It is an `httpx` handler, so the demo profile runs the real client in-process through
`httpx.MockTransport`, and tests serve the very same handler on a loopback port.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import httpx

from resources.replay.recorded import envelope, load

_SORT_FIELDS: dict[str, Callable[[dict], Any]] = {
    "media.metadata.title": lambda i: (i["media"]["metadata"].get("title") or "").lower(),
    "media.metadata.authorName": lambda i: (i["media"]["metadata"].get("authorName") or "").lower(),
    "addedAt": lambda i: i.get("addedAt") or 0,
    "updatedAt": lambda i: i.get("updatedAt") or 0,
    "size": lambda i: i.get("size") or 0,
}


def _load(name: str) -> Any:
    return load("abs", name)


def _envelope(name: str) -> httpx.Response:
    return envelope(_load(name))


def minify(item: dict[str, Any]) -> dict[str, Any]:
    """The list-endpoint shape of an expanded item: series only inside `seriesName`."""
    out = {k: v for k, v in item.items() if k not in ("media", "libraryFiles")}
    meta = dict(item["media"]["metadata"])
    meta.pop("authors", None)
    series = meta.pop("series", None) or []
    meta.setdefault("authorName", ", ".join(a["name"] for a in item["media"]["metadata"].get("authors") or []))
    meta.setdefault("seriesName", ", ".join(f"{s['name']} #{s['sequence']}" if s.get("sequence") else s["name"] for s in series))
    out["media"] = {"id": item["media"].get("id"), "metadata": meta, "duration": item["media"].get("duration")}
    return out


class AbsReplay:
    """Request handler that answers like ABS 2.36.0 for the endpoints MAMcrawler uses.

    `items` replaces the recorded library (synthetic libraries for tests and benchmarks);
    `omit_total` reproduces a scan in progress (no `total`); `lose_items` drops that many
    items from the listing while `total` still counts them; `fail_first` answers that many
    requests with 503 first.
    """

    def __init__(
        self,
        token: str = "demo-token",
        items: list[dict[str, Any]] | None = None,
        *,
        omit_total: bool = False,
        lose_items: int = 0,
        fail_first: int = 0,
    ) -> None:
        self.token = token
        self.libraries = _load("libraries.json")["libraries"]
        self.items = items if items is not None else _load("items_batch_get_all.json")["libraryItems"]
        self.by_id = {i["id"]: i for i in self.items}
        self.omit_total = omit_total
        self.lose_items = lose_items
        self.fail_first = fail_first
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        if self.fail_first > 0:
            self.fail_first -= 1
            return httpx.Response(503, text="Service Unavailable")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _envelope("error_invalid_token.json")
        path = request.url.path.removeprefix("/audiobookshelf")
        if request.method == "GET" and path == "/api/libraries":
            return httpx.Response(200, json={"libraries": self.libraries})
        if request.method == "GET" and (m := re.fullmatch(r"/api/libraries/([^/]+)/items", path)):
            return self._items(m.group(1), request.url.params)
        if request.method == "POST" and path == "/api/items/batch/get":
            ids = json.loads(request.content or b"{}").get("libraryItemIds") or []
            return httpx.Response(200, json={"libraryItems": [copy.deepcopy(self.by_id[i]) for i in ids if i in self.by_id]})
        if request.method == "PATCH" and (m := re.fullmatch(r"/api/items/([^/]+)/media", path)):
            return self._patch_media(m.group(1), json.loads(request.content or b"{}"))
        if request.method == "GET" and (m := re.fullmatch(r"/api/items/([^/]+)", path)):
            item = self.by_id.get(m.group(1))
            return httpx.Response(200, json=item) if item else _envelope("error_missing_item.json")
        return httpx.Response(404, headers={"Content-Type": "text/html; charset=utf-8"}, text=f"Cannot {request.method} {path}")

    def _items(self, library_id: str, params: httpx.QueryParams) -> httpx.Response:
        if library_id not in {lib["id"] for lib in self.libraries}:
            return _envelope("error_missing_library.json")
        limit, page = self._int_param(params, "limit"), self._int_param(params, "page")
        if limit is None or page is None:
            return _envelope("error_bad_page_negative.json")
        listed = [i for i in self.items if i.get("libraryId") == library_id]
        total = len(listed)
        if self.lose_items:
            listed = listed[: max(0, total - self.lose_items)]
        sort = params.get("sort")
        if sort in _SORT_FIELDS:
            listed = sorted(listed, key=_SORT_FIELDS[sort], reverse=params.get("desc") == "1")
        window = listed[page * limit : page * limit + limit] if limit else listed
        body: dict[str, Any] = {
            "results": [minify(i) for i in window],
            "total": total,
            "limit": limit,
            "page": page,
            "sortDesc": params.get("desc") == "1",
            "mediaType": "book",
            "minified": False,
            "collapseseries": False,
            "include": "",
            "offset": page * limit,
        }
        if sort:
            body["sortBy"] = sort
        if self.omit_total:
            del body["total"]
        return httpx.Response(200, json=body)

    def _patch_media(self, item_id: str, body: dict[str, Any]) -> httpx.Response:
        """ABS 2.36 semantics: `series` is the complete new set (matched by name,
        case-insensitively); a non-string `sequence` is stored as null; `updated` is
        absent (not false) when nothing changed; the answer is the non-expanded item."""
        item = self.by_id.get(item_id)
        if item is None:
            return _envelope("error_patch_missing_item.json")
        meta = item["media"]["metadata"]
        changed = False
        for key, value in (body.get("metadata") or {}).items():
            if key == "series":
                old = {s["name"].lower(): s for s in meta.get("series") or []}
                value = [
                    {
                        "id": old.get(s["name"].lower(), {}).get("id", f"series-{s['name'].lower()}"),
                        "name": old.get(s["name"].lower(), {}).get("name", s["name"]),
                        "sequence": s.get("sequence") if isinstance(s.get("sequence"), str) else None,
                    }
                    for s in value
                ]
            elif key == "authors":
                value = [{"id": f"author-{a['name'].lower()}", "name": a["name"]} for a in value]
            if meta.get(key) != value:
                meta[key] = value
                changed = True
        if "tags" in body and item["media"].get("tags") != body["tags"]:
            item["media"]["tags"] = body["tags"]
            changed = True
        answer: dict[str, Any] = {"libraryItem": copy.deepcopy(item)}
        if changed:
            answer = {"updated": True, **answer}
        return httpx.Response(200, json=answer)

    @staticmethod
    def _int_param(params: httpx.QueryParams, name: str) -> int | None:
        """ABS coerces non-numbers to 0 and rejects negative or fractional numbers."""
        raw = params.get(name)
        if raw is None:
            return 0
        try:
            value = float(raw)
        except ValueError:
            return 0
        if value < 0 or value != int(value):
            return None
        return int(value)
