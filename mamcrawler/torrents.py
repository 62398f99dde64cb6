"""What a .torrent file or a magnet link says about itself: info-hash, file list.

The info-hash is the key every download is tracked by (qBittorrent, the tables, the
"no info-hash requested twice" check), so it is always the lower-case hex v1 hash.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import torf

_HEX40 = re.compile(r"^[0-9a-fA-F]{40}$")
_BASE32 = re.compile(r"^[A-Za-z2-7]{32}$")


class InvalidTorrent(ValueError):
    """The bytes are not a usable v1 .torrent, or the magnet carries no v1 info-hash."""


def _read(torrent: bytes) -> torf.Torrent:
    if not isinstance(torrent, bytes | bytearray):
        raise InvalidTorrent(f"expected .torrent bytes, got {type(torrent).__name__}")
    if not torrent:
        raise InvalidTorrent("empty .torrent file")
    if not torrent.startswith(b"d"):
        # An HTML login page or an error text instead of a .torrent is the usual cause.
        preview = torrent[:60].decode("utf-8", "replace").replace("\n", " ")
        raise InvalidTorrent(f"not a bencoded .torrent (starts with {preview!r})")
    try:
        return torf.Torrent.read_stream(io.BytesIO(bytes(torrent)))
    except torf.TorfError as exc:
        raise InvalidTorrent(f"invalid .torrent: {exc}") from None


def info_hash(torrent: bytes) -> str:
    """Lower-case hex v1 info-hash of a .torrent file; InvalidTorrent for anything else."""
    return _read(torrent).infohash.lower()


def torrent_files(torrent: bytes) -> list[tuple[str, int]]:
    """(path, size) per file as qBittorrent names them: "Name/sub/file" for a multi-file
    torrent, just the name for a single file; BEP 47 padding files are left out."""
    info = _read(torrent).metainfo["info"]
    name = str(info["name"])
    if "files" not in info:
        return [(name, int(info["length"]))]
    files = []
    for entry in info["files"]:
        if "p" in str(entry.get("attr", "")):
            continue
        files.append(("/".join([name, *(str(part) for part in entry["path"])]), int(entry["length"])))
    return files


def magnet_info_hash(magnet: str) -> str:
    """The v1 info-hash of a magnet link (`xt=urn:btih:` in hex or base32) as lower-case hex."""
    parts = urlsplit(magnet.strip())
    if parts.scheme.lower() != "magnet":
        raise InvalidTorrent("not a magnet link")
    for topic in parse_qs(parts.query).get("xt", []):
        if not topic.lower().startswith("urn:btih:"):
            continue
        value = topic[len("urn:btih:") :]
        if _HEX40.match(value):
            return value.lower()
        if _BASE32.match(value):
            try:
                return base64.b32decode(value.upper()).hex()
            except binascii.Error:
                break
        raise InvalidTorrent(f"magnet btih is neither 40 hex nor 32 base32 characters ({len(value)} characters)")
    raise InvalidTorrent("magnet link has no v1 info-hash (xt=urn:btih:...)")


def make_torrent(
    content: Path,
    *,
    private: bool = True,
    trackers: Iterable[str] = (),
    name: str | None = None,
) -> bytes:
    """Build a .torrent for a file or folder (tests and the demo seed their own content)."""
    torrent = torf.Torrent(
        path=content,
        name=name,
        private=private,
        trackers=list(trackers) or None,
        created_by="mamcrawler",
    )
    torrent.generate()
    return torrent.dump()


class KeptTorrents:
    """The .torrent (or magnet) of each request being sent, until qBittorrent has it, so a run
    that dies in between can finish the send. Private: a MAM .torrent carries the user's
    passkey in its announce URL."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def keep(self, info_hash: str, torrent: bytes | str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.directory / (f"{info_hash}.torrent" if isinstance(torrent, bytes) else f"{info_hash}.magnet")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            out.write(torrent if isinstance(torrent, bytes) else torrent.encode())

    def get(self, info_hash: str) -> bytes | str | None:
        if (path := self.directory / f"{info_hash}.torrent").exists():
            return path.read_bytes()
        if (path := self.directory / f"{info_hash}.magnet").exists():
            return path.read_text()
        return None

    def forget(self, info_hash: str) -> None:
        for suffix in (".torrent", ".magnet"):
            (self.directory / f"{info_hash}{suffix}").unlink(missing_ok=True)
