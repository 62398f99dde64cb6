"""MyAnonamouse (MAM) search, user stats and .torrent downloads as a Dagster resource.

Facts this code relies on (`shared/fixtures/mam/README.md`, `shared/DESIGN.md`): auth is the
`mam_id` cookie, a 403 (or an "Error, you are not signed in" body) means it expired or the IP
does not match; MAM rotates the cookie through `Set-Cookie` and clients keep the new value;
search is `POST /tor/js/loadSearchJSONbasic.php` paged by `tor.startNumber` + `perpage`
(5-100) until `found` rows; an empty result is HTTP 200 `{"error": "Nothing returned, out of
N"}`; MAM ANDs every word, so title+author goes first, title alone second and the main title
(before a subtitle) with the author third; there are no magnets, the .torrent comes from
`/tor/download.php?tid=<id>` with the cookie.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from dagster import ConfigurableResource
from pydantic import Field

from mamcrawler.account import AccountError, AccountStatus, account_status
from mamcrawler.mam_rows import release_from_mam_row
from mamcrawler.releases import Release
from resources.fixed import FixedConfig
from resources.http import RETRY_STATUS, send_with_retries
from resources.replay.mam import REPLAY_MAM_ID, SEARCH_PATH, MamReplay
from resources.secrets import ScrubbedError, excerpt, register, scrubbed_json

AUDIOBOOKS_MAIN_CAT = 13
NOTHING_RETURNED = "Nothing returned, out of"
_SUBTITLE = re.compile(r":|,\s+or\s+", re.IGNORECASE)


class MamError(ScrubbedError):
    """Base class: anything that stops a MAM search or download."""


class MamAuthError(MamError):
    """MAM does not accept the mam_id cookie."""


class MamUnreachableError(MamError):
    """MAM is away: no answer (DNS, refused, timeouts) or still 5xx/429 after the retries."""


class MamResponseError(MamError):
    """MAM answered with an unexpected status or body."""


AUTH_HELP = (
    "MAM rejected the mam_id cookie (HTTP 403, not signed in): it has expired, or the IP it was "
    "created for does not match this machine's. Create a new session on MyAnonamouse under "
    "Preferences -> Security (create session, for this IP or ASN) and put its mam_id value in the "
    "MAM_ID environment variable, or log in once with `mamcrawler mam-login --email ...`."
)


@dataclass
class MamSearch:
    """What one book's search found, with the numbers a person needs to trust it."""

    releases: list[Release] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> malformed rows skipped
    requests: int = 0
    query: str = ""  # the text that produced the rows
    found: int = 0  # matches MAM reported for that text
    truncated: bool = False  # stopped at max_results before `found`


def search_text_for(*parts: str | None) -> str:
    """Words only, as Prowlarr sends them: punctuation would make MAM's search miss."""
    return " ".join(re.sub(r"[^\w]+", " ", " ".join(p for p in parts if p)).split())


def main_title(title: str) -> str | None:
    """The title before its subtitle ("The Hobbit, or There and Back Again" -> "The Hobbit").

    None when there is no subtitle or the main part is one word (it would find too much).
    """
    parts = _SUBTITLE.split(title, maxsplit=1)
    if len(parts) < 2 or len(search_text_for(parts[0]).split()) < 2:
        return None
    return parts[0].strip()


class _Pacer:
    """At most one request per interval; the lock is held while waiting so callers queue."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last: float | None = None

    def wait(self, interval: float, clock: Callable[[], float], sleep: Callable[[float], None]) -> float:
        with self.lock:
            now = clock()
            delay = 0.0
            # A clock behind `last` is another clock (a test's); do not wait on it.
            if self.last is not None and self.last <= now < self.last + interval:
                delay = self.last + interval - now
                sleep(delay)
            self.last = clock()
            return delay


_pacers: dict[str, _Pacer] = {}
_pacers_lock = threading.Lock()


def _pacer(base_url: str) -> _Pacer:
    """One pacer per MAM URL in this process, shared by every session and thread."""
    with _pacers_lock:
        return _pacers.setdefault(base_url, _Pacer())


class MamResource(FixedConfig, ConfigurableResource):
    """Searches MyAnonamouse audiobooks with the `mam_id` session cookie."""

    base_url: str = "https://www.myanonamouse.net"
    mam_id: str = Field(description="The mam_id cookie of a MAM session (Preferences -> Security)")
    categories: list[int] = Field(
        default_factory=list, description="Old-style audiobook sub-category ids (tor.cat); empty = all audiobooks"
    )
    languages: list[int] = Field(default_factory=lambda: [1], description="MAM language ids (1 = English); empty = all")
    per_page: int = Field(default=100, ge=5, le=100)
    max_results: int = Field(default=200, ge=1, description="Stop paging a search here and report it truncated")
    min_interval_s: float = Field(default=2.0, ge=0, description="At least this long between two requests to MAM")
    timeout_s: float = 30.0
    max_retries: int = 3
    backoff_s: float = 1.0
    cookie_path: str = Field(default="", description="File keeping the rotated mam_id (mode 0600); empty = memory only")

    def _transport(self) -> httpx.BaseTransport | None:
        return None

    @contextlib.contextmanager
    def session(
        self, *, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> Iterator[MamSession]:
        """One connection for a run: every request paced, retried and cookie-rotated."""
        with httpx.Client(
            base_url=self.base_url.rstrip("/"),
            headers={"Accept": "application/json"},
            timeout=self.timeout_s,
            transport=self._transport(),
            follow_redirects=True,
        ) as client:
            yield MamSession(self, client, clock=clock, sleep=sleep)

    def _origin(self) -> str:
        """Which configured cookie a saved one descends from (a new MAM_ID wins over the file)."""
        return hashlib.sha256(self.mam_id.encode()).hexdigest()

    def saved_cookie(self) -> str | None:
        """The rotated cookie in `cookie_path`, if it descends from the configured `mam_id`."""
        if not self.cookie_path:
            return None
        try:
            saved = json.loads(Path(self.cookie_path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(saved, dict) or saved.get("rotated_from") != self._origin():
            return None
        return saved.get("mam_id") or None

    def save_cookie(self, value: str) -> None:
        path = Path(self.cookie_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)
            json.dump({"mam_id": value, "rotated_from": self._origin()}, out)
        os.replace(partial, path)


class MamSession:
    """One httpx client, the current cookie and the request count of one run."""

    def __init__(
        self,
        resource: MamResource,
        client: httpx.Client,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.resource = resource
        self.client = client
        self.cookie = resource.saved_cookie() or resource.mam_id
        register(resource.mam_id, self.cookie)
        self.cookie_rotated = False
        self.requests = 0
        self.waited_s = 0.0
        self._clock, self._sleep = clock, sleep

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        res = self.resource
        what = f"MAM {method} {path}"

        def send() -> httpx.Response:
            self.waited_s += _pacer(res.base_url.rstrip("/")).wait(res.min_interval_s, self._clock, self._sleep)
            self.requests += 1
            return self.client.request(method, path, headers={"Cookie": f"mam_id={self.cookie}"}, **kwargs)

        try:
            response = send_with_retries(
                send, what, max_retries=res.max_retries, backoff_s=res.backoff_s, sleep=self._sleep
            )
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            raise MamUnreachableError(
                f"cannot reach MAM at {res.base_url} ({type(exc).__name__}); is the URL right and the site up?"
            ) from None
        self._take_rotated_cookie(response)
        if response.status_code == 403 or response.content.startswith(b"Error, you are not signed in"):
            raise MamAuthError(AUTH_HELP)
        if response.status_code in RETRY_STATUS:  # still failing after the retries: MAM is away
            raise MamUnreachableError(f"{what} answered HTTP {response.status_code} after {res.max_retries} retries")
        if response.status_code >= 400:
            raise MamResponseError(f"{what} answered HTTP {response.status_code}")
        return response

    def _take_rotated_cookie(self, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            match = re.match(r"\s*mam_id=([^;]+)", header)
            if match and match.group(1) != self.cookie:
                self.cookie = match.group(1)
                register(self.cookie)
                self.cookie_rotated = True
                if self.resource.cookie_path:
                    self.resource.save_cookie(self.cookie)

    def _json(self, response: httpx.Response, what: str) -> Any:
        if "application/json" not in response.headers.get("content-type", ""):
            raise MamResponseError(f"{what} did not answer JSON (Content-Type {response.headers.get('content-type')})")
        try:
            return scrubbed_json(response)
        except ValueError:
            raise MamResponseError(f"{what} answered malformed JSON") from None

    def search_text(self, text: str, start: int = 0) -> tuple[list[dict[str, Any]], int]:
        """One page of audiobook rows for `text` from row `start`; also the total MAM found."""
        res = self.resource
        tor: dict[str, Any] = {
            "text": text,
            "srchIn": ["title", "author", "narrator", "series"],
            "searchType": "all",
            "searchIn": "torrents",
            "main_cat": [str(AUDIOBOOKS_MAIN_CAT)],
            "sortType": "default",
            "startNumber": str(start),
        }
        if res.categories:
            tor["cat"] = [str(c) for c in res.categories]
        if res.languages:
            tor["browse_lang"] = [str(lang) for lang in res.languages]
        # `isbn` is a presence flag: it adds the isbn field to every row.
        response = self._request("POST", SEARCH_PATH, json={"tor": tor, "perpage": res.per_page, "isbn": ""})
        body = self._json(response, f"MAM POST {SEARCH_PATH}")
        if not isinstance(body, dict):
            raise MamResponseError(f"MAM search answered {type(body).__name__}, not an object")
        if "error" in body:
            error = str(body["error"])
            if error.startswith(NOTHING_RETURNED):
                total = error.removeprefix(NOTHING_RETURNED).strip()
                return [], int(total) if total.isdigit() else 0
            raise MamResponseError(f"MAM search answered error: {excerpt(error)}")
        rows = body.get("data")
        if not isinstance(rows, list):
            raise MamResponseError("MAM search answered without a data list")
        found = body.get("found", body.get("total"))
        return rows, int(found) if str(found).isdigit() else start + len(rows)

    def _collect(self, text: str) -> tuple[list[dict[str, Any]], int]:
        rows: list[dict[str, Any]] = []
        found = 0
        while len(rows) < self.resource.max_results:
            page, found = self.search_text(text, start=len(rows))
            rows.extend(page)
            if not page or len(rows) >= found:
                break
        return rows[: self.resource.max_results], found

    def search(self, title: str, author: str | None = None) -> MamSearch:
        """The releases for one book: title+author, else title alone, else main title+author.

        An untitled series gap can pass the series name as `title`: MAM searches series too.
        """
        before = self.requests
        main = main_title(title)
        texts = (search_text_for(title, author), search_text_for(title), search_text_for(main, author) if main else "")
        queries = list(dict.fromkeys(q for q in texts if q))
        rows: list[dict[str, Any]] = []
        query, found = "", 0
        for query in queries:
            rows, found = self._collect(query)
            if rows:
                break
        result = MamSearch(query=query, found=found, truncated=len(rows) < found)
        skipped: Counter[str] = Counter()
        seen: set[str] = set()
        for row in rows:
            try:
                release = release_from_mam_row(row)
            except ValueError as exc:
                skipped[str(exc)] += 1
                continue
            if release.release_id in seen:
                skipped["duplicate_id"] += 1  # a page boundary moved while paging
                continue
            seen.add(release.release_id)
            result.releases.append(release)
        result.skipped = dict(skipped)
        result.requests = self.requests - before
        return result

    def download_torrent(self, release_id: str) -> bytes:
        """The .torrent file of one MAM torrent id."""
        if not str(release_id).isdigit():
            raise ValueError(f"not a MAM torrent id: {release_id!r}")
        response = self._request("GET", "/tor/download.php", params={"tid": str(release_id)})
        if not response.content.startswith(b"d"):
            raise MamResponseError(
                f"MAM GET /tor/download.php answered {response.headers.get('content-type')}, not a .torrent"
            )
        return response.content

    def account_status(self) -> AccountStatus:
        """The cookie's account with its snatch summary (ratio, points, unsatisfied, VIP end),
        every field parsed totally (mamcrawler.account); MamResponseError when it is no user."""
        what = "MAM GET /jsonLoad.php"
        body = self._json(self._request("GET", "/jsonLoad.php", params={"snatch_summary": ""}), what)
        try:
            return account_status(body)
        except AccountError as exc:
            raise MamResponseError(f"{what} answered no user: {exc}") from None

    def ip_info(self) -> tuple[dict[str, Any], str | None]:
        """What MAM sees of this machine (`GET /json/jsonIp.php`: `ip`, `ASN`, `AS`) and the
        answer's HTTP `Date` header (the preflight's IP and clock checks)."""
        what = "MAM GET /json/jsonIp.php"
        response = self._request("GET", "/json/jsonIp.php")
        body = self._json(response, what)
        if not isinstance(body, dict):
            raise MamResponseError(f"{what} answered {type(body).__name__}, not an object")
        return body, response.headers.get("date")


class ReplayMamResource(MamResource):
    """The demo indexer: the real client against the MAM fixtures, no pacing."""

    base_url: str = "http://mam.replay"
    mam_id: str = REPLAY_MAM_ID
    min_interval_s: float = 0.0

    def _transport(self) -> httpx.BaseTransport:
        return httpx.MockTransport(MamReplay(mam_id=self.mam_id))
