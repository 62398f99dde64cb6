"""qBittorrent WebUI client as a Dagster resource (qbittorrent-api).

Facts this code relies on (checked against Debian `qbittorrent-nox` 4.5.2):
- a failed login answers HTTP 200 `Fails.`, which qbittorrent-api raises as `LoginFailed`, a
  subclass of `APIConnectionError`; after the WebUI's failed-login limit (5 by
  default) every request from the IP answers 403 "Your IP address has been banned after too
  many failed authentication attempts." for `web_ui_ban_duration` (an hour). Every Dagster
  run is a new process and the sensor asks every minute, so a failed login is remembered in
  `login_state_path` and the same credentials are not tried again until `login_cooldown_s`
  passed;
- adding a torrent that is already there answers `Fails.` (no exception); torrents appear
  asynchronously after `Ok.`, so presence is polled;
- a category's save path only applies to torrents under automatic torrent management, and
  changing the category of such a torrent moves its files; a category with an empty save
  path saves into `<default save path>/<category>`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import qbittorrentapi
from dagster import ConfigurableResource
from pydantic import Field

from mamcrawler.torrents import InvalidTorrent, magnet_info_hash
from mamcrawler.torrents import info_hash as torrent_info_hash
from resources.fixed import FixedConfig
from resources.secrets import ScrubbedError, register


class QBittorrentError(ScrubbedError):
    """Base class: anything that stops talking to qBittorrent."""


class QBittorrentAuthError(QBittorrentError):
    """Wrong username/password, this IP is banned, or a recent failed login is cooling down."""


class QBittorrentUnreachableError(QBittorrentError):
    """No answer from the WebUI (refused connection, DNS, timeout)."""


class QBittorrentRejectedError(QBittorrentError):
    """qBittorrent refused a torrent that it does not already hold."""


class QBittorrentTorrentNotFoundError(QBittorrentError):
    """No torrent with this info-hash in qBittorrent (removed by someone?)."""


# The last failed login per URL when there is no `login_state_path` (the same records as the
# file): {"credentials": _credentials_key(...), "scheme": _KEYED, "failed_at": unix time, "reason": FailureReason}.
_LOGIN_REFUSED_UNTIL: dict[str, dict[str, Any]] = {}
_LOGIN_LOCK = threading.Lock()

FailureReason = Literal["credentials", "banned", "forbidden"]


@dataclass(frozen=True)
class AddOutcome:
    info_hash: str
    status: Literal["added", "already_present"]


@dataclass(frozen=True)
class TorrentState:
    """One torrent as qBittorrent reports it; times are unix seconds."""

    info_hash: str
    name: str
    state: str
    progress: float
    size: int
    amount_left: int
    added_on: int
    completion_on: int | None
    last_activity: int
    content_path: str
    save_path: str
    tags: list[str]
    category: str

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> TorrentState:
        added_on = int(info.get("added_on") or 0)
        completion_on = int(info.get("completion_on") or 0)
        # Never completed shows as -1, 0 or a time before added_on, depending on the version.
        never = completion_on <= 0 or completion_on < added_on
        return cls(
            info_hash=str(info["hash"]).lower(),
            name=str(info.get("name") or ""),
            state=str(info.get("state") or ""),
            progress=float(info.get("progress") or 0.0),
            size=int(info.get("size") or 0),
            amount_left=int(info.get("amount_left") or 0),
            added_on=added_on,
            completion_on=None if never else completion_on,
            last_activity=int(info.get("last_activity") or 0),
            content_path=str(info.get("content_path") or ""),
            save_path=str(info.get("save_path") or ""),
            tags=[tag.strip() for tag in str(info.get("tags") or "").split(",") if tag.strip()],
            category=str(info.get("category") or ""),
        )


def _safe_url(url: str) -> str:
    """The URL without user info, query or fragment (safe for messages)."""
    parts = urlsplit(url.rstrip("/"))
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _status(exc: Exception) -> str:
    status = getattr(exc, "http_status_code", None)
    response = getattr(exc, "response", None)
    return str(status or getattr(response, "status_code", None) or "error")


# Without a key file (no `login_state_path`, or it cannot be written) a key of this process.
_PROCESS_KEY = secrets.token_bytes(32)
_KEYED = "hmac-sha256"


def _install_key(state_path: str) -> bytes:
    """The random key of this installation, in a 0600 file beside the login record: a stolen
    record cannot be checked against guessed passwords without it."""
    if not state_path:
        return _PROCESS_KEY
    path = Path(state_path).with_suffix(".key")
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it just now
        with contextlib.suppress(OSError, ValueError):
            return bytes.fromhex(path.read_text(encoding="ascii").strip())
        return _PROCESS_KEY
    except OSError:
        return _PROCESS_KEY
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key.hex())
    return key


def _credentials_key(username: str, password: str, key: bytes) -> str:
    """Tells whether the credentials changed since a failed login without storing anything
    that confirms a guessed password offline (keyed with the installation's secret key)."""
    return hmac.new(key, json.dumps([username, password]).encode(), hashlib.sha256).hexdigest()


def _read_login_state(path: Path) -> dict[str, dict[str, Any]]:
    """The recorded failed logins; a missing or unreadable file records none, and records of
    the old unkeyed kind are dropped."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {url: entry for url, entry in data.items() if isinstance(entry, dict) and entry.get("scheme") == _KEYED}


def _write_login_state(path: Path, state: dict[str, dict[str, Any]]) -> None:
    """Replace the file atomically (a concurrent reader sees the old or the new one), mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(state, out, indent=1, sort_keys=True)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _normalise_hash(value: str) -> str:
    value = value.strip().lower()
    if len(value) != 40 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"not a hex v1 info-hash: {value[:60]!r}")
    return value


class QBittorrentResource(FixedConfig, ConfigurableResource):
    """Sends torrents to one qBittorrent and reports on the ones in this project's category."""

    url: str = Field(description="qBittorrent WebUI URL, e.g. http://127.0.0.1:8080")
    username: str = "admin"
    password: str = Field(description="WebUI password (from an environment variable)")
    category: str = Field(default="mamcrawler", description="Every torrent this project adds gets this category")
    save_path: str = Field(
        default="",
        description="The category's save path, as qBittorrent sees it; empty = <default save path>/<category>",
    )
    timeout_s: float = 15.0
    login_cooldown_s: float = Field(
        default=3600.0,
        ge=0,
        description="After a failed login, the same credentials are not tried on this URL for this long "
        "(qBittorrent bans the IP for an hour after 5 failures)",
    )
    login_state_path: str = Field(
        default="",
        description="JSON file remembering failed logins across processes (runs, sensor ticks); "
        "empty = only within this process",
    )
    add_confirm_s: float = Field(default=5.0, ge=0, description="How long to wait for an added torrent to appear")

    # ---- session handling -------------------------------------------------------------

    @property
    def _where(self) -> str:
        return _safe_url(self.url)

    @property
    def _credentials(self) -> str:
        return _credentials_key(self.username, self.password, _install_key(self.login_state_path))

    def _recent_failure(self) -> tuple[dict[str, Any], float] | None:
        """This URL's failed login with these credentials less than `login_cooldown_s` ago, and
        how long ago it was."""
        with _LOGIN_LOCK:
            entries = [_LOGIN_REFUSED_UNTIL.get(self._where)]
            if self.login_state_path:
                entries.append(_read_login_state(Path(self.login_state_path)).get(self._where))
        now = time.time()
        for entry in entries:
            if not entry or entry.get("credentials") != self._credentials:
                continue
            try:
                elapsed = now - float(entry["failed_at"])
            except (KeyError, TypeError, ValueError):
                continue
            # A failure "in the future" means the clock moved back: not trusted.
            if 0 <= elapsed < self.login_cooldown_s:
                return entry, elapsed
        return None

    def _refuse_during_cooldown(self) -> None:
        if (recent := self._recent_failure()) is None:
            return
        failure, elapsed = recent
        until = datetime.fromtimestamp(float(failure["failed_at"]) + self.login_cooldown_s).astimezone()
        if failure.get("reason") == "banned":
            why = f"qBittorrent at {self._where} banned this IP address after too many failed logins"
        elif failure.get("reason") == "forbidden":
            why = f"qBittorrent at {self._where} answered 403 to the login"
        else:
            why = f"wrong username or password for {self._where}"
        raise QBittorrentAuthError(
            f"{why}; not retried until {until.isoformat(timespec='seconds')} or until QBITTORRENT_PASSWORD/USERNAME "
            f"change. Next attempt in {self.login_cooldown_s - elapsed:.0f}s (login_cooldown_s), so repeated "
            "failures do not get this IP banned."
        )

    def _update_login_state(self, entry: dict[str, Any] | None) -> str:
        """Record (or with None, forget) this URL's failed login; a note when the file could not be written."""
        with _LOGIN_LOCK:
            if self.login_state_path:
                path = Path(self.login_state_path)
                state = _read_login_state(path)
                if entry is not None or self._where in state:
                    if entry is None:
                        del state[self._where]
                    else:
                        state[self._where] = entry
                    try:
                        _write_login_state(path, state)
                    except OSError as exc:
                        if entry is not None:
                            _LOGIN_REFUSED_UNTIL[self._where] = entry
                        return f" (could not record the failed login in {path}: {exc.strerror or type(exc).__name__})"
            if entry is None:
                _LOGIN_REFUSED_UNTIL.pop(self._where, None)
            elif not self.login_state_path:
                _LOGIN_REFUSED_UNTIL[self._where] = entry
        return ""

    def _login_failed(self, exc: Exception) -> QBittorrentAuthError:
        reason: FailureReason
        if isinstance(exc, qbittorrentapi.Forbidden403Error) and "banned" in str(exc).lower():
            reason = "banned"
            message = (
                f"qBittorrent at {self._where} has banned this IP address after too many failed logins "
                "(WebUI option 'ban client after consecutive failures'; the ban lasts web_ui_ban_duration, "
                "an hour by default, or until qBittorrent restarts)."
            )
        elif isinstance(exc, qbittorrentapi.Forbidden403Error):
            reason = "forbidden"
            message = f"qBittorrent at {self._where} answered 403 to the login."
        else:
            reason = "credentials"
            message = (
                f"qBittorrent at {self._where} rejected the login of user {self.username!r}: "
                "wrong username or password (QBITTORRENT_USERNAME / QBITTORRENT_PASSWORD)."
            )
        note = self._update_login_state({"credentials": self._credentials, "scheme": _KEYED, "failed_at": time.time(), "reason": reason})
        return QBittorrentAuthError(message + note)

    def _unreachable(self, exc: Exception, what: str) -> QBittorrentUnreachableError:
        cause = "timed out" if "timeout" in str(exc).lower() else "connection failed"
        return QBittorrentUnreachableError(
            f"cannot reach qBittorrent at {self._where} ({what}: {cause}); is QBITTORRENT_URL right and the WebUI up?"
        )

    @contextlib.contextmanager
    def _session(self, what: str) -> Iterator[qbittorrentapi.Client]:
        """A logged-in client for one public call: one login, one logout, errors mapped."""
        register(self.password)
        self._refuse_during_cooldown()
        client = qbittorrentapi.Client(
            host=self.url,
            username=self.username,
            password=self.password,
            REQUESTS_ARGS={"timeout": self.timeout_s},
            # Without these, every session first probes http and https (HEAD each) and
            # requests retries under qbittorrent-api's own retry: 6 timeouts per dead host.
            FORCE_SCHEME_FROM_HOST=True,
            HTTPADAPTER_ARGS={"max_retries": 0},
        )
        logged_in = False
        try:
            try:
                client.auth_log_in()
            # LoginFailed and Forbidden403Error subclass APIConnectionError: they go first.
            except (qbittorrentapi.LoginFailed, qbittorrentapi.Forbidden403Error) as exc:
                raise self._login_failed(exc) from None
            except qbittorrentapi.HTTPError as exc:
                raise QBittorrentError(
                    f"qBittorrent at {self._where} answered HTTP {_status(exc)} to the login"
                ) from None
            except qbittorrentapi.APIConnectionError as exc:
                raise self._unreachable(exc, "login") from None
            logged_in = True
            self._update_login_state(None)
            try:
                yield client
            # qbittorrent-api logs in again by itself when a call answers 403.
            except (qbittorrentapi.LoginFailed, qbittorrentapi.Forbidden403Error) as exc:
                raise self._login_failed(exc) from None
            except qbittorrentapi.NotFound404Error:
                raise QBittorrentTorrentNotFoundError(
                    f"qBittorrent at {self._where}: {what}: no such torrent"
                ) from None
            except qbittorrentapi.HTTPError as exc:
                raise QBittorrentError(f"qBittorrent at {self._where}: {what} answered HTTP {_status(exc)}") from None
            except qbittorrentapi.APIConnectionError as exc:
                logged_in = False
                raise self._unreachable(exc, what) from None
        finally:
            if logged_in:
                with contextlib.suppress(qbittorrentapi.APIError):
                    client.auth_log_out()
            client._trigger_session_initialization()  # closes the requests session

    # ---- public API -------------------------------------------------------------------

    def ensure_category(self) -> None:
        """Create the category; point an existing one at `save_path` only when one is configured
        (blanking a path the user set would make qBittorrent move every torrent in it)."""
        with self._session("ensure category") as client:
            self._ensure_category(client)

    def _ensure_category(self, client: qbittorrentapi.Client) -> None:
        categories = client.torrents_categories()
        if self.category not in categories:
            client.torrents_create_category(name=self.category, save_path=self.save_path)
        elif self.save_path and (categories[self.category].get("savePath") or "") != self.save_path:
            client.torrents_edit_category(name=self.category, save_path=self.save_path)

    def preferences(self) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """`app/preferences` and `torrents/categories`, as qBittorrent answers them (for the
        preflight checks). They hold proxy and mail passwords: read single keys, never log them whole."""
        with self._session("read preferences") as client:
            preferences = dict(client.app_preferences())
            categories = {name: dict(value) for name, value in dict(client.torrents_categories()).items()}
        return preferences, categories

    def find(self, info_hash: str) -> TorrentState | None:
        """The torrent with this info-hash whatever its category and tags; None when qBittorrent
        does not hold it (ask this before concluding that someone removed a torrent)."""
        info_hash = _normalise_hash(info_hash)
        with self._session("find torrent") as client:
            found = self._find(client, info_hash)
        return None if found is None else TorrentState.from_info(found)

    def _find(self, client: qbittorrentapi.Client, info_hash: str) -> dict[str, Any] | None:
        found = client.torrents_info(torrent_hashes=info_hash)
        return dict(found[0]) if found else None

    def add_torrent(self, torrent: bytes | str, info_hash: str, tags: list[str]) -> AddOutcome:
        """Add a .torrent (bytes) or magnet (str), idempotent by info-hash; started, under
        automatic torrent management so the category's save path applies.

        A torrent qBittorrent already holds only gets `tags` ("already_present"). Raises
        QBittorrentRejectedError when qBittorrent refuses it, and a plain QBittorrentError
        when it accepted it but does not list it yet (it may still appear).
        """
        info_hash = _normalise_hash(info_hash)
        if isinstance(torrent, str):
            actual = magnet_info_hash(torrent)
            source: dict[str, Any] = {"urls": torrent}
        else:
            actual = torrent_info_hash(torrent)
            source = {"torrent_files": bytes(torrent)}
        if actual != info_hash:
            raise InvalidTorrent(f"the torrent's info-hash is {actual}, not the expected {info_hash}")
        with self._session("add torrent") as client:
            self._ensure_category(client)
            if existing := self._find(client, info_hash):
                self._adopt(client, existing, tags)
                return AddOutcome(info_hash, "already_present")
            try:
                answer = client.torrents_add(
                    **source,
                    category=self.category,
                    tags=tags or None,
                    use_auto_torrent_management=True,
                    is_paused=False,
                )
            except qbittorrentapi.Conflict409Error:  # qBittorrent >= 5 answers 409 for a duplicate
                answer = "Fails."
            except qbittorrentapi.UnsupportedMediaType415Error:
                raise QBittorrentRejectedError(
                    f"qBittorrent at {self._where} refused torrent {info_hash}: not a valid torrent"
                ) from None
            if str(answer).strip() == "Fails.":
                if existing := self._find(client, info_hash):
                    self._adopt(client, existing, tags)
                    return AddOutcome(info_hash, "already_present")
                raise QBittorrentRejectedError(f"qBittorrent at {self._where} refused torrent {info_hash} (Fails.)")
            deadline = time.monotonic() + self.add_confirm_s
            while self._find(client, info_hash) is None:
                if time.monotonic() >= deadline:
                    raise QBittorrentError(
                        f"qBittorrent at {self._where} accepted torrent {info_hash} but does not list it "
                        f"after {self.add_confirm_s:.0f}s (it may still appear)"
                    )
                time.sleep(0.1)
            return AddOutcome(info_hash, "added")

    def _adopt(self, client: qbittorrentapi.Client, existing: dict[str, Any], tags: list[str]) -> None:
        """Give a torrent that was already there our tags; never our category: under automatic
        torrent management a new category moves the owner's files."""
        if tags:
            client.torrents_add_tags(tags=tags, torrent_hashes=existing["hash"])

    def torrents(self, tag: str | None = None) -> list[TorrentState]:
        """Every torrent with `tag` whatever its category (adopted torrents keep theirs), or
        without a tag every torrent in this project's category."""
        with self._session("list torrents") as client:
            found = client.torrents_info(tag=tag) if tag else client.torrents_info(category=self.category)
        return [TorrentState.from_info(dict(info)) for info in found]

    def holds_any_torrent(self) -> bool:
        """Whether qBittorrent lists any torrent at all, of any category: one that lists none
        (still loading its session after a restart, or its state lost) is no evidence that a
        download was removed."""
        with self._session("list torrents") as client:
            return bool(client.torrents_info(limit=1))

    def files(self, info_hash: str) -> list[tuple[str, int]]:
        """(path relative to the torrent's save path, size) for every file of the torrent."""
        info_hash = _normalise_hash(info_hash)
        with self._session("list files") as client:
            found = client.torrents_files(torrent_hash=info_hash)
        return [(str(entry["name"]), int(entry["size"])) for entry in found]

    def remove(self, info_hash: str, delete_files: bool) -> None:
        info_hash = _normalise_hash(info_hash)
        with self._session("remove torrent") as client:
            client.torrents_delete(delete_files=delete_files, torrent_hashes=info_hash)

    def remove_tags(self, info_hash: str, tags: list[str]) -> None:
        """Let go of a torrent that was the user's before we adopted it: only our tags go."""
        info_hash = _normalise_hash(info_hash)
        with self._session("remove tags") as client:
            client.torrents_remove_tags(tags=tags, torrent_hashes=info_hash)

    def add_peers(self, info_hash: str, peers: list[str]) -> int:
        """Connect the torrent to `host:port` peers (tests join two instances this way);
        returns how many qBittorrent accepted."""
        info_hash = _normalise_hash(info_hash)
        with self._session("add peers") as client:
            if self._find(client, info_hash) is None:
                raise QBittorrentTorrentNotFoundError(f"qBittorrent at {self._where}: add peers: no such torrent")
            answer = client.torrents_add_peers(peers=peers, torrent_hashes=info_hash)
        return sum(int(result.get("added") or 0) for result in dict(answer or {}).values())


class DemoQBittorrentResource(QBittorrentResource):
    """The demo's qBittorrent: never contacted, whatever the run asks (the demo never sends)."""

    url: str = "http://demo.invalid"
    password: str = ""

    @contextlib.contextmanager
    def _session(self, what: str) -> Iterator[qbittorrentapi.Client]:
        raise QBittorrentError(f"the demo never contacts qBittorrent ({what} refused)")
        yield  # pragma: no cover - a generator, so the refusal happens on entry
