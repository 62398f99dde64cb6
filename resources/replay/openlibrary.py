"""A replay of the Open Library endpoints MAMcrawler uses, built from recorded fixtures.

The JSON files beside this module come from `shared/fixtures/openlibrary/` (see its
README): shapes follow VCR recordings of real responses in shelfarr's test cassettes,
Open Library's own `plugins/openlibrary/api.py` (`author_works`) and
`plugins/worksearch/schemes/works.py` (search fields), and ABS's `OpenLibrary.js`; keys
and ids are fake. `_index.json` says which request each file answers.

What it reproduces:
- `GET /search.json?title=&author=`: the recorded answer for that title (words folded);
  an `author=` narrows a title-only recording to docs whose `author_name` has all its
  words, as Open Library ANDs the two (a recording made with an author is not served
  to a title-only request: that answer would be wider than what was recorded); `fields=` keeps only those keys (Open Library
  returns only the fields asked for); `limit`/`offset` slice `docs`; anything else
  answers the recorded zero-result body.
- `GET /works/{id}.json`: recorded records, including a `/type/redirect` record (a 200,
  as recorded); unknown ids answer the recorded 404 with no Content-Type header.
- `GET /authors/{id}/works.json`: pages cut from the recorded entries by the server's own
  rules (limit default 50, max 1000; `next` while `offset + len(entries) < size`; `prev`
  when `offset > 0` with its `min(0, offset - limit)` quirk); limit=5 gives back exactly
  the three recorded pages. Unknown authors answer the recorded 404 `{}`.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

import httpx

from mamcrawler.names import fold
from resources.replay.recorded import envelope, load

JSON = {"Content-Type": "application/json"}
SEARCH_HEADERS = {**JSON, "X-Served-By": "FastAPI"}


def _load(name: str) -> Any:
    return load("openlibrary", name)


def _ok(body: Any, headers: dict[str, str] = JSON) -> httpx.Response:
    return httpx.Response(200, headers=headers, content=json.dumps(body).encode())


def _envelope(name: str, **replace: Any) -> httpx.Response:
    env = _load(name)
    return envelope(env, body={**env["body"], **replace}) if replace else envelope(env)


def _safeint(raw: str | None, default: int) -> int:
    """Open Library's `h.safeint`: anything that is not an int is the default."""
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


class OpenLibraryReplay:
    """Request handler answering like openlibrary.org for search, works and author works.

    `requests` records "METHOD path?query" of every request, for counting in tests.
    """

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.searches: list[tuple[str, str | None, str]] = []  # (folded title, folded author, file)
        self.works: dict[str, str] = {}
        self.author_pages: dict[str, list[str]] = {}
        for row in _load("_index.json"):
            url = httpx.URL(row["url"])
            if url.path == "/search.json" and url.params.get("title"):
                author = url.params.get("author")
                self.searches.append((fold(url.params["title"]), fold(author) if author else None, row["file"]))
            elif (m := re.fullmatch(r"/works/(OL\d+W)\.json", url.path)) and row["status"] == 200:
                self.works[m.group(1)] = row["file"]
            elif (m := re.fullmatch(r"/authors/(OL\d+A)/works\.json", url.path)) and row["status"] == 200:
                self.author_pages.setdefault(m.group(1), []).append(row["file"])

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        query = request.url.query.decode()
        self.requests.append(f"{request.method} {path}" + (f"?{query}" if query else ""))
        if request.method == "GET" and path == "/search.json":
            return self._search(request.url.params)
        if request.method == "GET" and (m := re.fullmatch(r"/works/(OL\d+W)\.json", path)):
            name = self.works.get(m.group(1))
            return _ok(_load(name)) if name else _envelope("work_not_found.json", key=f"/works/{m.group(1)}")
        if request.method == "GET" and (m := re.fullmatch(r"/authors/(OL\d+A)/works\.json", path)):
            return self._author_works(m.group(1), path, request.url.params)
        return httpx.Response(404, headers={"Content-Type": "text/html; charset=utf-8"}, text="Page not found")

    def _search(self, params: httpx.QueryParams) -> httpx.Response:
        title = fold(params.get("title"))
        author = fold(params.get("author"))
        body = _load("search_no_results.json")
        for recorded_title, recorded_author, name in self.searches:
            if title != recorded_title or (recorded_author and recorded_author != author):
                continue
            body = _load(name)
            if author and not recorded_author:
                words = set(author.split())
                body["docs"] = [
                    d for d in body["docs"] if any(words <= set(fold(n).split()) for n in d.get("author_name") or [])
                ]
                body["numFound"] = body["num_found"] = len(body["docs"])
            break
        offset = _safeint(params.get("offset"), 0)
        limit = _safeint(params.get("limit"), 100)
        body["docs"] = body["docs"][offset : offset + limit]
        body["start"] = offset
        if params.get("fields") and params["fields"] != "*":
            keep = set(params["fields"].split(","))
            body["docs"] = [{k: v for k, v in doc.items() if k in keep} for doc in body["docs"]]
        return _ok(body, SEARCH_HEADERS)

    def _author_works(self, author: str, path: str, params: httpx.QueryParams) -> httpx.Response:
        pages = self.author_pages.get(author)
        if not pages:
            return _envelope("author_works_not_found.json")
        recorded = [_load(name) for name in pages]
        entries = [e for page in recorded for e in page["entries"]]
        size = recorded[0]["size"]
        limit = min(_safeint(params.get("limit"), 50), 1000)
        offset = _safeint(params.get("offset"), 0)
        works = entries[offset : offset + limit] if offset >= 0 else []
        query = dict(params)

        def changequery(**changes: int) -> str:
            return f"{path}?{urlencode({**query, **{k: str(v) for k, v in changes.items()}})}"

        links = {"self": f"{path}?{urlencode(query)}" if query else path, "author": f"/authors/{author}"}
        if offset > 0:
            links["prev"] = changequery(offset=min(0, offset - limit))
        if offset + len(works) < size:
            links["next"] = changequery(offset=offset + limit)
        return _ok({"links": links, "size": size, "entries": works})
