"""A replay of the public Audible catalog API (`/1.0/catalog/products`) from recorded answers.

The JSON files beside this module come from `shared/fixtures/audible/` (README there: which
request produced which file, field notes, and the public sources the shapes follow:
audnexus `src/config/types.ts` and its datasets, ABS `server/providers/Audible.js`, AudiMeta
`util/series.ts`, ReadMeABook's Audible notes). Routing is read from the recordings' own
`_index.json`, so every file is served for the request that produced it. What the handler
adds, and why:

- searches match on the request's `title` (+ `author`), case-insensitively, because the
  real API matches words, not exact strings; any other search gets the recorded empty
  answer. Without `response_groups` products carry only `asin` (as recorded for ABS's call).
- `GET /1.0/catalog/products/{asin}` answers the recorded product, else any product seen in
  a recorded search or batch (same shape, same response groups), else the recorded stub
  `{product: {asin}}` with the requested ASIN: the real API answers 200 for unknown ASINs.
- `?response_groups=relationships` answers the recorded relationships (four series, one
  book); other ASINs get the stub, since nothing about their relationships was recorded.
- `GET /1.0/catalog/products?asins=a,b` answers the known products in the requested order
  and the stub `{asin}` for the rest (inferred from the single-product stub).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from typing import Any

import httpx

from resources.replay.recorded import load

PRODUCTS_PATH = "/1.0/catalog/products"
HEADERS = {"Content-Type": "application/json", "Cache-Control": "private, max-age=1800"}


def _load(name: str) -> Any:
    return load("audible", name)


def _words(text: str | None) -> str:
    return " ".join((text or "").casefold().split())


def _json(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, headers=HEADERS, content=json.dumps(body).encode())


class AudibleReplay:
    """Request handler answering like the Audible catalog API for the recorded world.

    `fail_first` answers that many requests with 503 first; `rate_limit_first` answers that
    many with 429 and `Retry-After: retry_after`. `requests` lists what was asked.
    """

    def __init__(self, *, fail_first: int = 0, rate_limit_first: int = 0, retry_after: str = "1") -> None:
        self.searches: dict[tuple[str, str, bool], str] = {}
        self.relationships: dict[str, str] = {}
        self.product_files: dict[str, str] = {}
        self.products: dict[str, dict[str, Any]] = {}
        self.product_groups: list[str] = ["always-returned"]
        self.no_results = "search_no_results.json"
        self.stub: dict[str, Any] | None = None
        for entry in _load("_index.json"):
            self._route(entry)
        if self.stub is None:
            raise RuntimeError("the recorded unknown-ASIN stub is missing from the Audible fixtures")
        self.fail_first, self.rate_limit_first, self.retry_after = fail_first, rate_limit_first, retry_after
        self.requests: list[str] = []
        self.lock = threading.Lock()

    def _route(self, entry: dict[str, Any]) -> None:
        url = httpx.URL(entry["url"])
        params, name = url.params, entry["file"]
        groups = params.get("response_groups")
        if url.path == PRODUCTS_PATH and "title" in params:
            self.searches[(_words(params["title"]), _words(params.get("author")), groups is not None)] = name
            body = _load(name)
            if not body["products"]:
                self.no_results = name
            self._remember(body["products"], body["response_groups"])
        elif url.path == PRODUCTS_PATH and "asins" in params:
            body = _load(name)
            self._remember(body["products"], body["response_groups"])
        elif m := re.fullmatch(rf"{PRODUCTS_PATH}/([A-Z0-9]+)", url.path):
            if groups == "relationships":
                self.relationships[m.group(1)] = name
                return
            body = _load(name)
            if "title" not in body["product"]:
                self.stub = body
            else:
                self.product_files[m.group(1)] = name
                self._remember([body["product"]], body["response_groups"])

    def _remember(self, products: list[dict[str, Any]], groups: list[str]) -> None:
        """Full products (with a title) from any recording, for lookups by ASIN."""
        for product in products:
            if "title" in product:
                self.products.setdefault(product["asin"], product)
                if len(groups) > len(self.product_groups):
                    self.product_groups = list(groups)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
            if self.fail_first > 0:
                self.fail_first -= 1
                return httpx.Response(503, headers={"Content-Type": "text/html"}, text="<html>Service Unavailable</html>")
            if self.rate_limit_first > 0:
                self.rate_limit_first -= 1
                return httpx.Response(429, headers={"Retry-After": self.retry_after, "Content-Type": "text/plain"}, text="Too Many Requests")
        path, params = request.url.path, request.url.params
        if request.method != "GET":
            return httpx.Response(405, headers={"Content-Type": "text/plain"}, text="Method Not Allowed")
        if path == PRODUCTS_PATH and "asins" in params:
            return self._batch(params)
        if path == PRODUCTS_PATH:
            return self._search(params)
        if m := re.fullmatch(rf"{PRODUCTS_PATH}/([^/]+)", path):
            return self._product(m.group(1), params.get("response_groups"))
        return httpx.Response(404, headers={"Content-Type": "text/plain"}, text="Not Found")

    def _search(self, params: httpx.QueryParams) -> httpx.Response:
        groups = params.get("response_groups")
        key = (_words(params.get("title")), _words(params.get("author")))
        if not key[0] and key[1]:
            return self._by_author(params)
        name = self.searches.get((*key, groups is not None))
        if name is None and groups is None and (full := self.searches.get((*key, True))):
            body = _load(full)  # asked without groups: the same products, `asin` only
            body = {"products": [{"asin": p["asin"]} for p in body["products"]],
                    "response_groups": ["always-returned"], "total_results": body["total_results"]}
        else:
            body = _load(name or self.no_results)
        limit = _int(params.get("num_results"), 10)
        page = _int(params.get("page"), 0)  # 0-based
        body["products"] = body["products"][page * limit : page * limit + limit]
        return _json(body)

    def _by_author(self, params: httpx.QueryParams) -> httpx.Response:
        """`?author=` alone was not recorded: DERIVED from the recorded products (those whose
        `authors` carry every word asked for, newest first), in the recorded search envelope."""
        words = set(_words(params.get("author")).split())
        found = [
            copy.deepcopy(p) for p in self.products.values()
            if p.get("title") and words <= set(_words(" ".join(a.get("name", "") for a in p.get("authors") or [])).split())
        ]
        found.sort(key=lambda p: p.get("release_date") or "", reverse=True)
        limit, page = _int(params.get("num_results"), 10), _int(params.get("page"), 0)
        return _json({"products": found[page * limit : page * limit + limit], "response_groups": self.product_groups,
                      "total_results": len(found)})

    def _product(self, asin: str, groups: str | None) -> httpx.Response:
        if groups == "relationships":
            if asin in self.relationships:
                return _json(_load(self.relationships[asin]))
            return _json({"product": {"asin": asin}, "response_groups": ["always-returned", "relationships"]})
        if asin in self.product_files:
            return _json(_load(self.product_files[asin]))
        if asin in self.products:
            return _json({"product": copy.deepcopy(self.products[asin]), "response_groups": self.product_groups})
        stub = copy.deepcopy(self.stub)
        stub["product"]["asin"] = asin
        return _json(stub)

    def _batch(self, params: httpx.QueryParams) -> httpx.Response:
        asins = [a.strip() for a in params["asins"].split(",") if a.strip()]
        products = [copy.deepcopy(self.products[a]) if a in self.products else {"asin": a} for a in asins]
        return _json({"products": products, "response_groups": self.product_groups})


def _int(raw: str | None, default: int) -> int:
    try:
        return max(0, int(raw)) if raw is not None else default
    except ValueError:
        return default
