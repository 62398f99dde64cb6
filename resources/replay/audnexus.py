"""A replay of the Audnexus API (`https://api.audnex.us`) from recorded answers.

The JSON files beside this module come from `shared/fixtures/audnexus/` (README there:
which request produced which file, and the audnexus source files the shapes follow:
`src/config/types.ts`, `src/server.ts`, `src/helpers/books/audible/ApiHelper.ts`,
`src/static/messages.ts`). Bodies are served as recorded; envelope files
(`{"status", "headers", "body"}`) keep their status and headers. What the handler adds:

- `GET /books/{asin}?region=..` answers the recorded book whatever the region (only `us`
  was recorded); an unknown ASIN gets the recorded `REGION_UNAVAILABLE` 404 with the
  requested ASIN and region in its message, a malformed one the recorded `Bad ASIN` 400;
- `GET /authors/{asin}` and `GET /authors?name=` answer the recorded profiles and
  searches; unknown ones get the recorded `NOT_FOUND` 404 and `[]`;
- `rate_limit_first` answers that many requests with the recorded 429 envelope, its
  `retry-after` replaced by `retry_after` when given (the recorded 37 s is slow for tests).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from typing import Any

import httpx

from resources.replay.recorded import envelope, load

# audnexus accepts Audible ASINs ("B" + 9) and ISBN-10-style ones (README field notes).
VALID_ASIN = re.compile(r"^(?:B[0-9A-Z]{9}|[0-9]{9}[0-9X])$")
JSON_TYPE = "application/json; charset=utf-8"


def _load(name: str) -> Any:
    return load("audnexus", name)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": JSON_TYPE, **(headers or {})}, content=json.dumps(body).encode())


class AudnexusReplay:
    """Request handler answering like Audnexus for the recorded books and authors.

    `rate_limit_first`: that many requests get the recorded 429 first (`retry_after`
    overrides its Retry-After seconds). `requests` lists what was asked.
    """

    def __init__(self, *, rate_limit_first: int = 0, retry_after: str | None = None) -> None:
        self.books: dict[str, str] = {}
        self.authors: dict[str, str] = {}
        self.author_searches: dict[str, str] = {}
        self.errors: dict[str, dict[str, Any]] = {}
        for entry in _load("_index.json"):
            url, name = httpx.URL(entry["url"]), entry["file"]
            if entry["saved_as"] == "envelope":
                self.errors[name] = _load(name)
            elif m := re.fullmatch(r"/books/([^/]+)", url.path):
                self.books[m.group(1)] = name
            elif m := re.fullmatch(r"/authors/([^/]+)", url.path):
                self.authors[m.group(1)] = name
            elif url.path == "/authors":
                self.author_searches[" ".join(url.params.get("name", "").casefold().split())] = name
        self.rate_limit_first, self.retry_after = rate_limit_first, retry_after
        self.requests: list[str] = []
        self.lock = threading.Lock()

    def _error(self, code: str, status: int) -> dict[str, Any]:
        for env in self.errors.values():
            if env["status"] == status and env["body"]["error"]["code"] == code:
                return copy.deepcopy(env)
        raise KeyError(f"no recorded audnexus {status} {code} answer")

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
            if self.rate_limit_first > 0:
                self.rate_limit_first -= 1
                env = self._error("RATE_LIMIT_EXCEEDED", 429)
                if self.retry_after is not None:
                    env["headers"]["retry-after"] = self.retry_after
                return envelope(env)
        path, params = request.url.path, request.url.params
        region = params.get("region", "us")
        if m := re.fullmatch(r"/books/([^/]+)", path):
            return self._book(m.group(1), region)
        if m := re.fullmatch(r"/authors/([^/]+)", path):
            if m.group(1) in self.authors:
                return _json(_load(self.authors[m.group(1)]))
            env = self._error("NOT_FOUND", 404)
            env["body"]["error"]["message"] = f"No author name found for ASIN: {m.group(1)}"
            return envelope(env)
        if path == "/authors":
            name = self.author_searches.get(" ".join(params.get("name", "").casefold().split()))
            return _json(_load(name) if name else [])
        # Fastify's default not-found answer for routes audnexus does not have.
        return _json({"message": f"Route {request.method}:{path} not found", "error": "Not Found", "statusCode": 404}, 404)

    def _book(self, asin: str, region: str) -> httpx.Response:
        if not VALID_ASIN.match(asin):
            return envelope(self._error("BAD_REQUEST", 400))
        if asin in self.books:
            return _json(_load(self.books[asin]))
        env = self._error("REGION_UNAVAILABLE", 404)
        env["body"]["error"]["message"] = f"Item not available in region '{region}' for ASIN: {asin}"
        env["body"]["error"]["details"]["asin"] = asin
        return envelope(env)
