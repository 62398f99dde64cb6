"""A real Audiobookshelf 2.36.0 on loopback, for the tests marked `abs`.

Built once by `shared/services/audiobookshelf/install.sh` (cached in ~/.cache/mamcrawler-abs;
about 70 s the first time), started with its `start.sh` in its own process group on a free
127.0.0.1 port, initialised over the API exactly as a user would (root user, login, an API
key with `userId` and `isActive: true`) and stopped by killing that group at session end; if pytest dies before its teardown
(SIGTERM, SIGKILL), the kernel kills the server with it (PR_SET_PDEATHSIG). One server serves the session;
under xdist each worker is a session of its own and so starts its own server (on first use)
under its own temporary folder. Each test makes its own library over its own folder, so
tests stay independent without paying ABS's start-up again.

Test books are real audio made by ffmpeg (`-f lavfi -i sine`), tagged the way rippers tag
them: m4b through `-f ipod` with album/artist/composer(narrator)/grouping(series) atoms, mp3
with ID3 album/artist/TPE3-ish series tags.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import free_port

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "services" / "audiobookshelf"
# A copy of that folder (upstream tarball and its scripts, unmodified), for a clone that has no
# shared/ beside it: CI and fresh machines.
VENDORED = Path(__file__).resolve().parent / "abs_service"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mamcrawler-abs"


def _service_dir() -> Path:
    """The service folder: named by MAMCRAWLER_ABS_SERVICE, else shared/ beside the repo, else
    the copy in tests/abs_service."""
    if os.environ.get("MAMCRAWLER_ABS_SERVICE"):
        return Path(os.environ["MAMCRAWLER_ABS_SERVICE"])
    return SHARED if (SHARED / "install.sh").exists() else VENDORED


def unavailable(message: str) -> None:
    """In CI a missing ABS is a failure; on a developer machine without node it is a skip."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def build() -> Path:
    """The built server folder (install.sh returns at once once it is cached)."""
    install = _service_dir() / "install.sh"
    if not install.exists():
        unavailable(f"{install} not found: the real ABS tests need shared/services/audiobookshelf")
    done = subprocess.run(["bash", str(install), str(CACHE)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        unavailable(f"building Audiobookshelf failed ({install}, exit {done.returncode}): {done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the process that started it dies.

    start.sh execs node, and the setting survives exec, so a pytest killed before its
    teardown leaves no ABS behind.
    """
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class AbsServer:
    """One running ABS with an admin API key; `api` calls it as that key."""

    def __init__(self, abs_dir: Path, state: Path) -> None:
        self.abs_dir = abs_dir
        self.state = state
        self.port = free_port()
        self.log_path = state / "abs.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.password = f"pw-{secrets.token_hex(8)}"
        self.api_key = ""
        self.user_id = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> AbsServer:
        self.state.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["bash", str(_service_dir() / "start.sh"), str(self.abs_dir), str(self.state), str(self.port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"ABS exited with {self.process.returncode}: {self.tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/status", timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ABS did not answer /status within {timeout_s:.0f} s: {self.tail()}")
            time.sleep(0.1)
        self._initialise()
        return self

    def _initialise(self) -> None:
        """Root user, login, an active API key for that user (ABS 2.36: `userId` is required)."""
        with httpx.Client(base_url=self.url, timeout=10) as client:
            client.post("/init", json={"newRoot": {"username": "root", "password": self.password}}).raise_for_status()
            login = client.post("/login", json={"username": "root", "password": self.password})
            login.raise_for_status()
            user = login.json()["user"]
            self.user_id = user["id"]
            created = client.post(
                "/api/api-keys",
                json={"name": "mamcrawler-tests", "isActive": True, "userId": self.user_id},
                headers={"Authorization": f"Bearer {user['accessToken']}"},
            )
            created.raise_for_status()
            self.api_key = created.json()["apiKey"]["apiKey"]

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM to the whole process group (bash, node), SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout_s)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # a node child that outlived bash

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    # -- the API, as the admin key ---------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.api_key}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.api(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    def create_library(self, name: str, folder: Path, *, watcher: bool = True) -> dict[str, Any]:
        """A book library over `folder` (audible provider, ABS defaults otherwise)."""
        folder.mkdir(parents=True, exist_ok=True)
        body = {
            "name": name, "folders": [{"fullPath": str(folder)}], "mediaType": "book", "provider": "audible",
            "settings": {"disableWatcher": not watcher},
        }
        return self.json("POST", "/api/libraries", json=body)

    def tasks(self, library_id: str | None = None) -> list[dict[str, Any]]:
        tasks = self.json("GET", "/api/tasks").get("tasks") or []
        return [t for t in tasks if library_id is None or (t.get("data") or {}).get("libraryId") == library_id]

    def wait_idle(self, library_id: str, timeout_s: float = 60, settle_s: float = 0.0) -> None:
        """Until no task of the library is listed (for `settle_s` in a row)."""
        deadline = time.monotonic() + timeout_s
        quiet_since: float | None = None
        while True:
            now = time.monotonic()
            if self.tasks(library_id):
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            if quiet_since is not None and now - quiet_since >= settle_s:
                return
            if now > deadline:
                raise AssertionError(f"ABS library {library_id} still busy after {timeout_s} s: {self.tasks(library_id)}")
            time.sleep(0.2)

    def scan(self, library_id: str, *, force: bool = False) -> None:
        """Scan and wait for the scan to end."""
        self.wait_idle(library_id)
        self.api("POST", f"/api/libraries/{library_id}/scan", params={"force": 1} if force else None).raise_for_status()
        self.wait_idle(library_id)

    def items(self, library_id: str) -> list[dict[str, Any]]:
        """Every expanded item of the library, by path."""
        listed = self.json("GET", f"/api/libraries/{library_id}/items", params={"limit": 0, "page": 0})["results"]
        if not listed:
            return []
        full = self.json("POST", "/api/items/batch/get", json={"libraryItemIds": [i["id"] for i in listed]})
        return sorted(full["libraryItems"], key=lambda i: i["relPath"])

    def wait_for(self, condition: Callable[[], Any], what: str, timeout_s: float = 30) -> Any:
        deadline = time.monotonic() + timeout_s
        while not (value := condition()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            time.sleep(0.2)
        return value


@contextlib.contextmanager
def running_abs(state: Path) -> Iterator[AbsServer]:
    server = AbsServer(build(), state)
    try:
        yield server.start()
    finally:
        server.stop()


# -- test audio ------------------------------------------------------------------------

def make_audio(path: Path, *, seconds: float = 3, tags: dict[str, str] | None = None) -> Path:
    """A real sine-wave audio file with the given tags: m4b/m4a through the ipod muxer, else by extension."""
    if shutil.which("ffmpeg") is None:
        unavailable("ffmpeg not found: install the Debian package ffmpeg (scripts/system-deps.sh)")
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"sine=d={seconds}"]
    for key, value in (tags or {}).items():
        args += ["-metadata", f"{key}={value}"]
    if path.suffix in (".m4b", ".m4a"):
        args += ["-c:a", "aac", "-b:a", "32k", "-f", "ipod"]
    elif path.suffix == ".mp3":
        args += ["-c:a", "libmp3lame", "-b:a", "32k", "-id3v2_version", "3"]
    subprocess.run([*args, str(path)], check=True)
    return path


def m4b_book(folder: Path, *, title: str, author: str, series: str | None = None, sequence: str | None = None,
             narrator: str | None = None, year: str | None = None, genre: str | None = None,
             description: str | None = None, seconds: float = 3) -> Path:
    """One m4b as audiobook rippers (inAudible, OpenAudible) write it: the book in `album`,
    the narrator in `composer`, the series in `grouping` ("Series, Book N")."""
    tags = {"title": title, "album": title, "artist": author, "album_artist": author}
    if narrator:
        tags["composer"] = narrator
    if series:
        tags["grouping"] = f"{series}, Book {sequence}" if sequence else series
    if year:
        tags["date"] = year
    if genre:
        tags["genre"] = genre
    if description:
        tags["comment"] = description
    return make_audio(folder / f"{title}.m4b", seconds=seconds, tags=tags)


def mp3_book(folder: Path, *, title: str, author: str, parts: int = 2, series: str | None = None,
             sequence: str | None = None, genre: str | None = None, seconds: float = 3) -> list[Path]:
    """Numbered mp3 parts with ID3 tags as mp3 rips carry them: track titles per part, the book in
    `album`, the author in `artist`/`album_artist`, a series in `series`/`series-part` (TXXX)."""
    files = []
    for part in range(1, parts + 1):
        tags = {"title": f"{title} - Part {part:02d}", "album": title, "artist": author, "album_artist": author,
                "track": f"{part}/{parts}"}
        if series:
            tags["series"] = series
            if sequence:
                tags["series-part"] = sequence
        if genre:
            tags["genre"] = genre
        files.append(make_audio(folder / f"{title} - Part {part:02d}.mp3", seconds=seconds, tags=tags))
    return files
