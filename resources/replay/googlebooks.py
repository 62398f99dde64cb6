"""A replay of the Google Books API v1 `volumes` search built from recorded fixtures.

The JSON files beside this module come from `shared/fixtures/googlebooks/` (see its
README): shapes follow Google's generated Books v1 client schema, ABS's
`server/providers/GoogleBooks.js`, shelfarr's `google_books_client.rb` and the 429/403
bodies people reported; ids, keys and most ISBNs are fake. `_index.json` says which `q`
each file answers, so the replay reads its routing from the recording itself.

What it reproduces: `q` is parsed the way Google reads it (an operator such as
`intitle:` binds to the next word or quoted phrase; other words are free and match any
field); `items` is absent when nothing matches; `maxResults` (default 10) and
`startIndex` slice the items while `totalItems` keeps the estimate; a `key=` that is not
the configured key gets the recorded 400; knobs answer the recorded 429 quota error
(anonymous/shared quota) or the legacy 403 `dailyLimitExceeded`.
`isbn:` searches are derived: the recorded volumes carrying that ISBN (10 or 13 digits).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from typing import Any, Literal

import httpx

from resources.replay.recorded import envelope, load

JSON = {"Content-Type": "application/json; charset=UTF-8"}
VALID_KEY = "FAKE-GOOGLE-API-KEY"  # the key the recorded 403 was made with
OPERATORS = {"intitle", "inauthor", "inpublisher", "subject", "isbn", "lccn", "oclc"}
_TERM = re.compile(r'(?:(\w+):)?(?:"([^"]*)"|(\S+))')

Term = tuple[str | None, str]  # (operator or None for a free word, lower-case word)


def _load(name: str) -> Any:
    return load("googlebooks", name)


def parse_q(q: str) -> list[Term]:
    """Google's reading of `q`: `intitle:The Way` restricts "the" to the title; "way" is free."""
    terms: list[Term] = []
    for match in _TERM.finditer(q):
        operator, phrase, word = match.groups()
        if operator and operator.lower() not in OPERATORS:
            operator, word = None, match.group(0)  # "Dune:" or "a:b" is just text
        field = operator.lower() if operator else None
        value = phrase if phrase is not None else word
        if field == "isbn":
            terms.append((field, re.sub(r"[^0-9Xx]", "", value).upper()))
            continue
        terms.extend((field, w) for w in re.findall(r"\w+", value.lower()))
    return terms


def same_search(asked: list[Term], recorded: list[Term]) -> bool:
    """Same words, and no word restricted to one field in one query and another in the other.

    So `inauthor:Cixin Liu` (ABS style) answers like the recorded `inauthor:"Cixin Liu"`,
    while swapping title and author does not.
    """
    if {w for _, w in asked} != {w for _, w in recorded}:
        return False
    fields_asked, fields_recorded = defaultdict(set), defaultdict(set)
    for field, word in asked:
        fields_asked[word].add(field)
    for field, word in recorded:
        fields_recorded[word].add(field)
    for word, mine in fields_asked.items():
        theirs = fields_recorded[word]
        if None not in mine and None not in theirs and not mine & theirs:
            return False
    return True


class GoogleBooksReplay:
    """Request handler answering `GET /books/v1/volumes` like Google from the recordings.

    `api_key`: the one valid key (None: no key is valid); requests without `key=` are
    anonymous and allowed. `quota` ("429" or "403") answers the recorded quota error to
    every request after the first `quota_after` ones. `requests` records each request's
    `q`, `maxResults` and whether a key was sent (never the key itself).
    """

    def __init__(
        self,
        api_key: str | None = VALID_KEY,
        *,
        quota: Literal["429", "403"] | None = None,
        quota_after: int = 0,
    ) -> None:
        self.api_key = api_key
        self.quota = quota
        self.quota_after = quota_after
        self.requests: list[dict[str, Any]] = []
        index = _load("_index.json")
        self.recorded = [
            (parse_q(httpx.URL(row["url"]).params.get("q", "")), row["file"])
            for row in index
            if row["status"] == 200 and row["saved_as"] == "body"
        ]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        self.requests.append(
            {"path": request.url.path, "q": params.get("q"), "maxResults": params.get("maxResults"), "key": "key" in params}
        )
        if request.method != "GET" or request.url.path != "/books/v1/volumes":
            return httpx.Response(404, headers={"Content-Type": "text/html; charset=UTF-8"}, text="Not Found")
        if "key" in params and params["key"] != self.api_key:
            return _envelope("error_400_api_key_invalid.json")
        if self.quota and len(self.requests) > self.quota_after:
            return _envelope(f"error_{self.quota}_" + ("quota_exceeded.json" if self.quota == "429" else "daily_limit_exceeded.json"))
        body = self._search(parse_q(params.get("q", "")))
        start = _int(params.get("startIndex"), 0)
        size = min(40, _int(params.get("maxResults"), 10))
        if "items" in body:
            body["items"] = body["items"][start : start + size]
            if not body["items"]:
                del body["items"]  # Google leaves the key out rather than sending []
        return httpx.Response(200, headers=JSON, content=json.dumps(body).encode())

    def _search(self, terms: list[Term]) -> dict[str, Any]:
        isbns = {w for f, w in terms if f == "isbn"}
        if isbns:
            return self._by_isbn(isbns)
        for recorded, name in self.recorded:
            if same_search(terms, recorded):
                return _load(name)
        return _load("volumes_empty.json")

    def _by_isbn(self, isbns: set[str]) -> dict[str, Any]:
        found: dict[str, dict] = {}
        for _, name in self.recorded:
            for volume in _load(name).get("items") or []:
                ids = {i.get("identifier") for i in volume["volumeInfo"].get("industryIdentifiers") or []}
                if ids & isbns:
                    found.setdefault(volume["id"], volume)
        body = _load("volumes_empty.json")
        body["totalItems"] = len(found)
        if found:
            body["items"] = list(found.values())
        return body


def _envelope(name: str) -> httpx.Response:
    return envelope(_load(name))


def _int(raw: str | None, default: int) -> int:
    try:
        return max(0, int(raw)) if raw is not None else default
    except ValueError:
        return default
