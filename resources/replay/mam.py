"""A replay of MyAnonamouse's JSON endpoints built from the fixtures beside this module.

The JSON files come from `shared/fixtures/mam/` (written to the shapes of Prowlarr's
`MyAnonamouse.cs`, gouda, MLM and other public clients; see its README). Behaviour
reproduced: the `mam_id` cookie (missing or wrong -> the recorded 403 "not signed in"),
its rotation through `Set-Cookie` on every 200 JSON answer, search by POST JSON or by
Prowlarr's GET query string, `startNumber`/`perpage` paging, `main_cat`/`browse_lang`/`cat`
filters, the presence flags that add `description`/`dl`/`isbn`/`thumbnail` to rows, the
HTTP 200 `{"error": "Nothing returned, out of N"}` for an empty page, user stats from
`/jsonLoad.php` and `.torrent` files from `/tor/download.php?tid=`.

Built by analogy and marked here: a query that is not one of the recorded texts gets every
fixture row whose title, authors, narrators and series contain all its words (MAM ANDs
words); `.torrent` bodies are made up (one file named after the row, fake piece hashes,
private, source MAM), so they load in a client but can never complete; an unknown torrent
id answers 404 text/html.

Login (only with `login=(email, password)`), for the browser login of `resources/mam_login.py`:
`GET /login.php` is a form posting `email` and `password` to `POST /takelogin.php`
(x-www-form-urlencoded, as ruTorrent's `MyAnonamouse.php` sends it); the right pair answers
302 to `/` with a new `mam_id` cookie that the JSON endpoints accept, a wrong one the form
again with an error line. The page's markup is ours (real MAM's page has more); its hidden
`t` field, filled by a script and required by `/takelogin.php`, is our own addition so a test
proves a real browser ran the page (inferred: not a fact about MAM).
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import httpx

from mamcrawler.releases import parse_size
from resources.replay.recorded import envelope, load
from resources.replay.recorded import fake_torrent as recorded_torrent

SEARCH_PATH = "/tor/js/loadSearchJSONbasic.php"
REPLAY_MAM_ID = "FAKE-MAM-ID-0001"  # the cookie the fixtures were written with (fake)
FAKE_ANNOUNCE = "https://t.myanonamouse.net/tracker.php/FAKE-PASSKEY/announce"
_FLAG_FIELDS = {"description": "description", "dlLink": "dl", "isbn": "isbn", "thumbnail": "thumbnail"}
_GET_FLAGS = {  # Prowlarr's query-string flags -> the POST flag they stand for
    "description": "description", "dlLink": "dlLink", "isbn": "isbn",
    "thumbnails": "thumbnail", "thumbnail": "thumbnail",
}
_SYNTHETIC_FIRST_ID = 1_900_000
_HTML = {"Content-Type": "text/html; charset=utf-8"}
_LOGIN_PAGE = """<!DOCTYPE html>
<html><head><title>Login | MyAnonamouse (replay)</title></head><body>
<h1>Log in</h1>{error}
<form method="post" action="/takelogin.php">
<input type="hidden" name="t" value="">
<label>Email <input type="email" name="email"></label>
<label>Password <input type="password" name="password"></label>
<input type="submit" value="Log in!">
</form>
<script>document.querySelector('input[name="t"]').value = String(Date.now());</script>
</body></html>
"""


def _load(name: str) -> Any:
    return load("mam", name)


def fold_words(text: str) -> list[str]:
    """Lower-case words without accents: how the replay compares query and row text."""
    text = unicodedata.normalize("NFKD", html.unescape(str(text))).casefold()
    return re.findall(r"\w+", "".join(c for c in text if not unicodedata.combining(c)))


def _json_values(value: Any) -> list[str]:
    """The names inside a JSON-in-string field (malformed ones count as plain text)."""
    try:
        parsed = json.loads(value) if isinstance(value, str) and value else value
    except ValueError:
        return [str(value)]
    if isinstance(parsed, dict):
        parsed = list(parsed.values())
    return [str(v) for v in (parsed or [])]


def _searchable(row: dict[str, Any]) -> set[str]:
    parts = [str(row.get("title") or "")]
    for key in ("author_info", "narrator_info", "series_info"):
        parts += _json_values(row.get(key))
    return set(fold_words(" ".join(parts)))


@dataclass
class _Query:
    text: str
    start: int = 0
    perpage: int = 25
    main_cats: set[int] = field(default_factory=set)
    languages: set[int] = field(default_factory=set)
    categories: set[int] = field(default_factory=set)
    flags: set[str] = field(default_factory=set)  # row fields the request asked for


def _ints(values: Any) -> set[int]:
    values = values if isinstance(values, list) else [values]
    return {int(v) for v in values if str(v).strip().isdigit()} - {0}


def _number(value: Any, default: int) -> int:
    return int(value) if str(value).strip().isdigit() else default


def _parse_query(request: httpx.Request) -> _Query:
    if request.method == "POST":
        body = json.loads(request.content or b"{}")
        tor = body.get("tor") or {}
        return _Query(
            text=str(tor.get("text") or ""),
            start=_number(tor.get("startNumber"), 0),
            perpage=_number(body.get("perpage", tor.get("perpage")), 25),
            main_cats=_ints(tor.get("main_cat") or []),
            languages=_ints(tor.get("browse_lang") or []),
            categories=_ints(tor.get("cat") or []),
            flags={row_field for flag, row_field in _FLAG_FIELDS.items() if flag in body},
        )
    params = request.url.params
    return _Query(
        text=params.get("tor[text]", ""),
        start=_number(params.get("tor[startNumber]"), 0),
        perpage=_number(params.get("tor[perpage]", params.get("perpage")), 25),
        main_cats=_ints(params.get_list("tor[main_cat][]")),
        languages=_ints(params.get_list("tor[browse_lang][]")),
        categories=_ints(params.get_list("tor[cat][]")),
        flags={_FLAG_FIELDS.get(flag, flag) for param, flag in _GET_FLAGS.items() if param in params},
    )


def _keeps(query: _Query, row: dict[str, Any]) -> bool:
    return (
        (not query.main_cats or row.get("main_cat") in query.main_cats)
        and (not query.languages or row.get("language") in query.languages)
        and (not query.categories or row.get("category") in query.categories)
    )


def synthetic_row(text: str, number: int) -> dict[str, Any]:
    """A plausible row for any query (10,000-result tests): the fixture row shape, made-up values."""
    torrent_id = _SYNTHETIC_FIRST_ID + number
    return {
        "id": torrent_id, "language": 1, "lang_code": "ENG", "main_cat": 13, "category": 41,
        "catname": "Audiobooks - Fantasy", "mediatype": 1, "maincat": 1, "categories": "[13]",
        "size": f"{200 + number % 700}.0 MiB", "numfiles": 1, "vip": 0, "vip_expire": 0, "free": 0,
        "personal_freeleech": 0, "fl_vip": 0, "title": f"{text} (Synthetic Part {number + 1})", "w": 5,
        "tags": "Unabridged | 64kbps | m4b", "author_info": json.dumps({"79999": "Synthetic Author"}),
        "narrator_info": json.dumps({"69999": "Synthetic Narrator"}), "series_info": "{}", "filetype": "m4b",
        "seeders": number % 50, "leechers": 0, "added": "2026-01-01 00:00:00", "browseflags": 0,
        "times_completed": number % 300, "comments": 0, "owner_name": "FixtureUploaderS", "owner": 900099,
        "ownership": '[900099, "FixtureUploaderS"]', "bookmarked": None, "my_snatched": 0,
        "description": "<p>Synthetic row.</p>", "isbn": "", "poster_type": "jpeg",
        "cat": '<div class="cat41">&nbsp;</div>', "thumbnail": "", "dl": f"FAKEDL{torrent_id}",
    }


class MamReplay:
    """Request handler that answers like MyAnonamouse for the endpoints MAMcrawler uses.

    `mam_id` is the cookie accepted at first; every 200 JSON answer rotates it to the
    fixtures' `Set-Cookie` value (`rotate=False` stops that) and both values stay valid
    unless `keep_old_cookie=False`. `user` picks the `/jsonLoad.php` fixture ("vip" or
    "power_user"); `users` is a list of answers served in turn, one per call, the last one
    repeated (a fixture name or a body: an account whose figures change between runs). Test hooks: `extra_rows` are appended to every search result (malformed
    rows); `fail_first` answers that many requests with 503; `expire_after` answers 403 to
    every request after that many (the cookie expired mid-run); `rows_for_any_query`
    answers every search with that many synthetic rows; `torrents` serves these .torrent files
    for those ids (a torrent a test really seeds); `login` = (email, password) serves the login
    pages and `issued_cookies` lists the mam_id values they gave out. `requests` lists "METHOD path".
    """

    def __init__(
        self,
        mam_id: str = REPLAY_MAM_ID,
        *,
        user: str = "vip",
        users: list[str | dict[str, Any]] | None = None,
        rotate: bool = True,
        keep_old_cookie: bool = True,
        extra_rows: list[dict[str, Any]] | None = None,
        fail_first: int = 0,
        expire_after: int | None = None,
        rows_for_any_query: int = 0,
        torrents: dict[int, bytes] | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        headers = _load("_response_headers.json")
        self.json_headers = {k: v for k, v in headers.items() if not k.startswith("_")}
        self.rotated_mam_id = re.match(r"mam_id=([^;]+)", headers["Set-Cookie"]).group(1)
        self.valid_cookies = {mam_id}
        self.rotate = rotate
        self.keep_old_cookie = keep_old_cookie
        self.user = _load(f"jsonload_user_{user}.json")
        self.users = [_load(f"jsonload_user_{u}.json") if isinstance(u, str) else u for u in users or []]
        self.extra_rows = list(extra_rows or [])
        self.fail_first = fail_first
        self.expire_after = expire_after
        self.rows_for_any_query = rows_for_any_query
        self.torrents = dict(torrents or {})
        self.login = login
        self.issued_cookies: list[str] = []
        self.requests: list[str] = []
        self.searches: dict[frozenset[str], list[dict[str, Any]]] = {}
        self.rows: dict[int, dict[str, Any]] = {}
        for entry in _load("_index.json"):
            body = entry.get("request_body") or {}
            if entry["url"] != SEARCH_PATH or entry["status"] != 200:
                continue
            rows = _load(entry["file"]).get("data") or []
            words = frozenset(fold_words(body["tor"]["text"]))
            self.searches.setdefault(words, []).extend(rows)  # the Expanse comes in two pages
            self.rows.update((row["id"], row) for row in rows)
        self.synthetic_text = "Synthetic"
        self._served = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        if self.fail_first > 0:
            self.fail_first -= 1
            return httpx.Response(503, headers={"Content-Type": "text/html"}, text="Service Unavailable")
        if self.login is not None:
            page = self._login_route(request)
            if page is not None:
                return page
        expired = self.expire_after is not None and self._served >= self.expire_after
        if expired or _cookie(request) not in self.valid_cookies:
            return envelope(_load("error_403_not_signed_in.json"))
        self._served += 1
        path = request.url.path
        if path == SEARCH_PATH and request.method in ("GET", "POST"):
            return self._json(self._search(_parse_query(request)))
        if path == "/jsonLoad.php" and request.method == "GET":
            return self._json(self._next_user())
        if path == "/json/jsonIp.php" and request.method == "GET":
            # Not in the recorded fixtures: the shape `{ip, ASN: number, AS: string}` follows a
            # public MAM dynamic-seedbox client's zod schema (`ipResponseBodySchema`, TypeScript),
            # which reads it from t.myanonamouse.net/json/jsonIp.php. Documentation addresses
            # (RFC 5737, RFC 5398), no real IP.
            return self._json({"ip": "203.0.113.7", "ASN": 64500, "AS": "Replay Net"})
        if path == "/tor/download.php" and request.method == "GET":
            return self._download(request.url.params.get("tid", ""))
        return httpx.Response(404, headers={"Content-Type": "text/html"}, text="Page not found")

    def _next_user(self) -> Any:
        if not self.users:
            return self.user
        return self.users.pop(0) if len(self.users) > 1 else self.users[0]

    def _login_route(self, request: httpx.Request) -> httpx.Response | None:
        path, method = request.url.path, request.method
        if path == "/login.php" and method == "GET":
            return httpx.Response(200, headers=_HTML, text=_LOGIN_PAGE.format(error=""))
        if path == "/takelogin.php" and method == "POST":
            form = urllib.parse.parse_qs(request.content.decode(), keep_blank_values=True)
            sent = tuple(form.get(key, [""])[0] for key in ("email", "password"))
            if not form.get("t", [""])[0]:
                return self._login_failed("The login page's script did not run (no t field).")
            if sent != self.login:
                return self._login_failed("Incorrect email or password.")
            cookie = f"FAKE-MAM-LOGIN-{len(self.issued_cookies) + 1:04d}"
            self.issued_cookies.append(cookie)
            self.valid_cookies.add(cookie)
            headers = {"Location": "/", "Set-Cookie": f"mam_id={cookie}; path=/; HttpOnly", **_HTML}
            return httpx.Response(302, headers=headers, text="")
        if path == "/" and method == "GET" and _cookie(request) in self.valid_cookies:
            return httpx.Response(200, headers=_HTML, text="<!DOCTYPE html><html><body><p>Welcome back.</p></body></html>")
        return None

    def _login_failed(self, line: str) -> httpx.Response:
        error = f'<p class="error">{html.escape(line)}</p>'
        return httpx.Response(200, headers=_HTML, text=_LOGIN_PAGE.format(error=error))

    def _json(self, body: Any) -> httpx.Response:
        headers = dict(self.json_headers)
        if self.rotate:
            self.valid_cookies = ({*self.valid_cookies} if self.keep_old_cookie else set()) | {self.rotated_mam_id}
        else:
            headers.pop("Set-Cookie", None)
        return httpx.Response(200, headers=headers, content=json.dumps(body).encode())

    def _matches(self, query: _Query) -> list[dict[str, Any]]:
        if self.rows_for_any_query:
            self.synthetic_text = query.text  # so a later download names the file like the row
            return [synthetic_row(query.text, n) for n in range(self.rows_for_any_query)]
        words = frozenset(fold_words(query.text))
        if words in self.searches:
            return self.searches[words]
        return [row for row in self.rows.values() if words and words <= _searchable(row)]

    def _search(self, query: _Query) -> dict[str, Any]:
        rows = [row for row in self._matches(query) if _keeps(query, row)] + self.extra_rows
        perpage = min(100, max(5, query.perpage))
        window = rows[query.start : query.start + perpage]
        if not window:
            return {"error": f"Nothing returned, out of {len(rows)}"}
        data = [{k: v for k, v in row.items() if k not in _FLAG_FIELDS.values() or k in query.flags} for row in window]
        return {"perpage": perpage, "start": query.start, "data": data, "total": len(rows), "found": len(rows)}

    def _download(self, tid: str) -> httpx.Response:
        torrent_id = int(tid) if tid.isdigit() else None
        row = self.rows.get(torrent_id) or next((r for r in self.extra_rows if r.get("id") == torrent_id), None)
        if row is None and self.rows_for_any_query and torrent_id is not None:
            number = torrent_id - _SYNTHETIC_FIRST_ID
            row = synthetic_row(self.synthetic_text, number) if 0 <= number < self.rows_for_any_query else None
        if row is None:
            return httpx.Response(404, headers={"Content-Type": "text/html"}, text="Error: torrent not found")
        title, filetype, size = (str(row.get(key) or "") for key in ("title", "filetype", "size"))
        body = self.torrents.get(torrent_id) or fake_torrent(torrent_id, title or tid, filetype, size)
        headers = {
            "Content-Type": "application/x-bittorrent",
            "Content-Disposition": f'attachment; filename="{tid}.torrent"',
        }
        return httpx.Response(200, headers=headers, content=body)


def _cookie(request: httpx.Request) -> str | None:
    match = re.search(r"(?:^|;)\s*mam_id=([^;]*)", request.headers.get("cookie", ""))
    return match.group(1).strip() if match else None


def fake_torrent(torrent_id: int, title: str, filetype: str, size: str) -> bytes:
    """A deterministic private .torrent for one row: one `<title>.<filetype>` of the row's size."""
    stem = re.sub(r"[/\\:]", " ", title).strip()
    name = f"{stem}.{(filetype.split() or ['m4b'])[0].lower()}"
    return recorded_torrent(str(torrent_id), name, parse_size(size) or 1, FAKE_ANNOUNCE, source="MAM")
