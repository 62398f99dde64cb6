"""A replay of Hardcover's GraphQL API (`POST /v1/graphql`) built from recorded responses.

The JSON files beside this module come from `shared/fixtures/hardcover/` (see its
README: shapes follow blampe/rreading-glasses' `hardcover/schema.graphql` and
`queries.graphql`, mmgoodnow/LazyLibrarian's `hc.py`, Vito0912/hardcover-provider and
the issue threads it cites). `_requests.json` holds the exact request body behind each
file; the handler answers a request only when its query text is the recorded one, so a
drift between the client's query constants and the recordings fails loudly.

Behaviour reproduced: `authorization: Bearer <token>` (a wrong or missing token gets the
recorded 401 `Unable to verify token`, a JWT-shaped wrong one the recorded `Invalid JWT`,
a doubled `Bearer Bearer …` the recorded HTTP 200 GraphQL `errors` array); SearchBooks by
query text (anything unrecorded gets the recorded zero-hit answer); BookByPk by id
(unknown ids get the recorded `books_by_pk: null`); SeriesByPk and AuthorByPk by id.

Not recorded, so built by analogy and marked here: unknown series/author ids answer
`{"data": {"series_by_pk": null}}` / `{"data": {"authors_by_pk": null}}` (the shape of
the recorded unknown book); a query text that differs from the recording answers a
Hasura-style `validation-failed` error in the shape of the recorded `errors` envelope;
the recorded 429 has only `RateLimit-*` headers, so the handler adds `Retry-After`
(knob `retry_after`, None to send the recording unchanged); Brandon Sanderson's author
record (9300001, which the recorded books name) is built from the recorded Stormlight
Archive series, so the demo's author catalogue finds him instead of warning on every run.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from resources.replay.recorded import envelope, load

GRAPHQL_PATH = "/v1/graphql"
REPLAY_TOKEN = "FAKE-HARDCOVER-TOKEN"  # the token the recordings were made with (fake)

_SEARCHES = {"the way of kings brandon sanderson": "search_way_of_kings.json"}
_BOOKS = {9100001: "book_by_pk_way_of_kings.json", 9100033: "book_by_pk_guards_guards.json"}
_SERIES = {9200001: "series_by_pk_stormlight.json", 9200003: "series_by_pk_expanse.json"}
_AUTHORS = {9300001: "author_by_pk_sanderson.json", 9300002: "author_by_pk_pratchett.json"}
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


def _load(name: str) -> Any:
    return load("hardcover", name)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"content-type": "application/json; charset=utf-8", **(headers or {})},
        content=json.dumps(body).encode(),
    )


def _envelope(name: str, extra_headers: dict[str, str] | None = None) -> httpx.Response:
    return envelope(_load(name), extra_headers)


def _squash(text: str) -> str:
    return " ".join(str(text).split())


def recorded_queries() -> dict[str, str]:
    """operationName -> the recorded query text (the client's constants must equal these)."""
    return {body["operationName"]: body["query"] for body in _load("_requests.json").values()}


class HardcoverReplay:
    """Request handler that answers like Hardcover's GraphQL endpoint for the recorded books.

    `rate_limit_first` answers that many requests (after the token check) with the
    recorded 429; `retry_after` is the `Retry-After` added to it. `requests` lists
    (operationName, variables) of every authorised request, for assertions.
    """

    def __init__(self, token: str = REPLAY_TOKEN, *, rate_limit_first: int = 0, retry_after: str | None = "1") -> None:
        self.token = token
        self.rate_limit_first = rate_limit_first
        self.retry_after = retry_after
        self.queries = {op: _squash(text) for op, text in recorded_queries().items()}
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or request.url.path != GRAPHQL_PATH:
            return httpx.Response(404, headers={"content-type": "text/plain; charset=utf-8"}, text="Not Found")
        if (denied := self._check_auth(request.headers.get("authorization"))) is not None:
            return denied
        try:
            body = json.loads(request.content or b"{}")
        except ValueError:
            return _graphql_error("invalid-json", "Error in $: Failed reading: not a valid json value")
        operation, variables = body.get("operationName") or "", body.get("variables") or {}
        self.requests.append((operation, variables))
        if self.rate_limit_first > 0:
            self.rate_limit_first -= 1
            extra = {"Retry-After": self.retry_after} if self.retry_after is not None else None
            return _envelope("error_429_rate_limited.json", extra)
        if operation not in self.queries or _squash(body.get("query", "")) != self.queries[operation]:
            return _graphql_error("validation-failed", f"no recorded answer for this {operation or 'anonymous'} query text")
        return self._dispatch(operation, variables)

    def _check_auth(self, header: str | None) -> httpx.Response | None:
        if header == f"Bearer {self.token}":
            return None
        if header and header.startswith("Bearer ") and len(header.split()) > 2:
            return _envelope("error_graphql_malformed_authorization_header.json")
        token = (header or "").removeprefix("Bearer ")
        if _JWT.match(token):
            return _envelope("error_401_invalid_jwt.json")
        return _envelope("error_401_unable_to_verify_token.json")

    def _dispatch(self, operation: str, variables: dict[str, Any]) -> httpx.Response:
        if operation == "SearchBooks":
            recorded = _SEARCHES.get(_squash(variables.get("query", "")).lower())
            if recorded is None or variables.get("page", 1) != 1:
                return _no_hits(variables)
            return _json(200, _load(recorded))
        key = variables.get("id")
        if operation == "BookByPk":
            return _json(200, _load(_BOOKS.get(key, "book_by_pk_not_found.json")))
        if operation == "SeriesByPk":
            return _json(200, _load(_SERIES[key]) if key in _SERIES else {"data": {"series_by_pk": None}})
        if operation == "AuthorByPk":
            if key not in _AUTHORS:
                return _json(200, {"data": {"authors_by_pk": None}})
            return _json(200, _author_page(key, variables.get("limit", 10), variables.get("offset", 0)))
        return _graphql_error("validation-failed", f"unknown operation {operation}")


def _no_hits(variables: dict[str, Any]) -> httpx.Response:
    """The recorded zero-hit answer, echoing the asked query like Hardcover does."""
    body = _load("search_no_hits.json")
    search = body["data"]["search"]
    text = variables.get("query", "")
    search["query"] = text
    search["page"] = search["results"]["page"] = variables.get("page", 1)
    search["results"]["request_params"].update(first_q=text, q=text)
    return _json(200, body)


def _author_page(author_id: int, limit: int, offset: int) -> dict[str, Any]:
    """The recorded author with `limit`/`offset` applied to its contributions (offset 0,
    limit 10 is the recording itself; later pages are empty, which ends paging)."""
    body = _load(_AUTHORS[author_id])
    author = body["data"]["authors_by_pk"]
    author["contributions"] = author["contributions"][offset : offset + limit]
    return body


def _graphql_error(code: str, message: str) -> httpx.Response:
    """HTTP 200 with a Hasura `errors` array, shaped like the recorded malformed-header answer."""
    return _json(200, {"errors": [{"message": message, "extensions": {"path": "$", "code": code}}]})
