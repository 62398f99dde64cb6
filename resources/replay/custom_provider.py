"""A replay of ABS custom metadata provider servers built from recorded responses.

The JSON files beside this module come from `shared/fixtures/custom-provider/` (see its
README: shapes follow advplyr/audiobookshelf's `custom-metadata-provider-specification.yaml`
and `server/providers/CustomProviderAdapter.js`, the abs-tract server by ahobsonsayers and
Vito0912/hardcover-provider). One handler plays three servers by path prefix, as abs-tract
does: `/goodreads` (Goodreads style), `/kindle/us` (Kindle style) and no prefix (a server
filling every spec field, with a loosely typed second match).

`GET {prefix}/search?mediaType=book&query=…[&author=…]` answers the recorded matches for
the recorded title (and author, when one is sent) and `{"matches": []}` for anything else;
no `query` is the recorded 400. The `Authorization` header is compared verbatim (no
`Bearer`): a wrong value gets the recorded spec-shaped 401, a missing one the recorded
FastAPI-style 401. Unknown paths answer Go's plain-text 404 (abs-tract is a Go server;
inferred, not recorded).
"""

from __future__ import annotations

from typing import Any

import httpx

from resources.replay.recorded import envelope, load

REPLAY_AUTH = "FAKE-PROVIDER-KEY"  # the Authorization value the recordings were made with (fake)
PREFIXES = ("/goodreads", "/kindle/us", "")

# prefix -> (title, author) -> recorded body
_RECORDED: dict[str, dict[tuple[str, str], str]] = {
    "/goodreads": {("the way of kings", "brandon sanderson"): "goodreads_search_way_of_kings.json"},
    "/kindle/us": {("the way of kings", "brandon sanderson"): "kindle_us_search_way_of_kings.json"},
    "": {("guards! guards!", "terry pratchett"): "full_fields_search_guards_guards.json"},
}


def _load(name: str) -> Any:
    return load("custom_provider", name)


def _envelope(name: str) -> httpx.Response:
    return envelope(_load(name))


def _key(text: str | None) -> str:
    return " ".join((text or "").split()).lower()


class CustomProviderReplay:
    """Request handler answering like the recorded custom provider servers.

    `auth=None` accepts any Authorization (abs-tract enforces none). `fail_first` answers
    that many requests with the recorded abs-tract 500 first. `requests` lists the path
    and query parameters of every request, for assertions.
    """

    def __init__(self, auth: str | None = REPLAY_AUTH, *, fail_first: int = 0) -> None:
        self.auth = auth
        self.fail_first = fail_first
        self.requests: list[tuple[str, dict[str, str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, params = request.url.path, dict(request.url.params)
        self.requests.append((path, params))
        prefix = path.removesuffix("/search") if path.endswith("/search") else None
        if request.method != "GET" or prefix not in PREFIXES:
            return httpx.Response(404, headers={"Content-Type": "text/plain; charset=utf-8"}, text="404 page not found")
        if self.auth is not None:
            sent = request.headers.get("Authorization")
            if sent is None:
                return _envelope("error_401_fastapi_detail.json")
            if sent != self.auth:
                return _envelope("error_401_unauthorized.json")
        if self.fail_first > 0:
            self.fail_first -= 1
            return _envelope("error_500_upstream.json")
        if not params.get("query"):
            return _envelope("error_400_bad_request.json")
        title, author = _key(params["query"]), _key(params.get("author"))
        for (rec_title, rec_author), name in _RECORDED[prefix].items():
            if title == rec_title and author in ("", rec_author):
                return httpx.Response(200, json=_load(name))
        return httpx.Response(200, json=_load("search_empty.json"))
