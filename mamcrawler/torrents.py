"""What a .torrent file or a magnet link says about itself: info-hash, file list.

The info-hash is the key every download is tracked by (qBittorrent, the tables, the
"no info-hash requested twice" check), so it is always the lower-case hex v1 hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import torf

_HEX40 = re.compile(r"^[0-9a-fA-F]{40}$")
_BASE32 = re.compile(r"^[A-Za-z2-7]{32}$")


class InvalidTorrent(ValueError):
    """The bytes are not a usable v1 .torrent, or the magnet carries no v1 info-hash.

    Messages never quote the torrent: its announce URL holds the tracker passkey."""


# A book's .torrent is a few KB; this bounds what a wrong download (a page, a file) costs to scan.
MAX_TORRENT_BYTES = 20 * 1024 * 1024
# libtorrent refuses bencode nested deeper than this (bdecode's default depth_limit).
_MAX_DEPTH = 100
_INTEGER = re.compile(rb"i(0|-?[1-9][0-9]*)e")
_STRING_LENGTH = re.compile(rb"(0|[1-9][0-9]{0,8}):")
_DIGITS = frozenset(b"0123456789")
_LIST, _DICT_KEY, _DICT_VALUE = 0, 1, 2
_MAX_INTEGER_DIGITS = 20  # a signed 64-bit integer, what libtorrent reads


def _string_end(data: bytes, pos: int) -> int:
    """End of the bencoded string starting at `pos`."""
    if (length := _STRING_LENGTH.match(data, pos)) is None:
        if all(byte in _DIGITS for byte in data[pos : pos + 10]) and len(data) - pos < 10:
            raise InvalidTorrent(f"truncated at byte {len(data)}")
        raise InvalidTorrent(f"malformed string length at byte {pos}")
    end = length.end() + int(length.group(1))
    if end > len(data):
        raise InvalidTorrent(f"truncated at byte {len(data)}")
    return end


def _value_end(data: bytes, pos: int) -> int:
    """End of the bencoded value starting at `pos` (iterative: nesting cannot exhaust the stack)."""
    containers: list[int] = []
    while True:
        if pos >= len(data):
            raise InvalidTorrent(f"truncated at byte {len(data)}")
        byte = data[pos]
        inside = containers[-1] if containers else None
        if byte == ord("e") and inside in (_LIST, _DICT_KEY):
            containers.pop()
            pos += 1
        elif inside == _DICT_KEY:
            if byte not in _DIGITS:
                raise InvalidTorrent(f"dictionary key at byte {pos} is not a string")
            pos = _string_end(data, pos)
            containers[-1] = _DICT_VALUE
            continue
        elif byte in _DIGITS:
            pos = _string_end(data, pos)
        elif byte == ord("i"):
            if (integer := _INTEGER.match(data, pos)) is None:
                if data.find(b"e", pos) < 0:
                    raise InvalidTorrent(f"truncated at byte {len(data)}")
                raise InvalidTorrent(f"malformed integer at byte {pos}")
            pos = integer.end()
        elif byte in (ord("l"), ord("d")):
            if len(containers) >= _MAX_DEPTH:
                raise InvalidTorrent(f"nested deeper than {_MAX_DEPTH} levels at byte {pos}")
            containers.append(_LIST if byte == ord("l") else _DICT_KEY)
            pos += 1
            continue
        else:
            raise InvalidTorrent(f"not bencode at byte {pos}")
        # A whole value ended here.
        if not containers:
            return pos
        if containers[-1] == _DICT_VALUE:
            containers[-1] = _DICT_KEY


def _dict_entries(data: bytes, pos: int) -> tuple[list[tuple[bytes, int, int]], int]:
    """(key, value start, value end) for each entry of the dictionary at `pos`, and its end."""
    entries = []
    pos += 1
    while True:
        if pos >= len(data):
            raise InvalidTorrent(f"truncated at byte {len(data)}")
        if data[pos] == ord("e"):
            return entries, pos + 1
        if data[pos] not in _DIGITS:
            raise InvalidTorrent(f"dictionary key at byte {pos} is not a string")
        key_end = _string_end(data, pos)
        key = data[data.index(b":", pos) + 1 : key_end]
        value_end = _value_end(data, key_end)
        entries.append((key, key_end, value_end))
        pos = value_end


def _info_span(torrent: bytes) -> tuple[bytes, int, int]:
    """The .torrent as bytes and the byte span of its top-level `info` dictionary."""
    if not isinstance(torrent, bytes | bytearray):
        raise InvalidTorrent(f"expected .torrent bytes, got {type(torrent).__name__}")
    data = bytes(torrent)
    if not data:
        raise InvalidTorrent("empty .torrent file")
    if len(data) > MAX_TORRENT_BYTES:
        raise InvalidTorrent(f"not a .torrent: {len(data)} bytes, more than {MAX_TORRENT_BYTES}")
    if not data.startswith(b"d"):
        # An HTML login page or an error text instead of a .torrent is the usual cause.
        raise InvalidTorrent("not a bencoded .torrent (does not start with a dictionary)")
    entries, end = _dict_entries(data, 0)
    if end != len(data):
        raise InvalidTorrent(f"not a .torrent: {len(data) - end} bytes of trailing data after byte {end}")
    spans = [(start, stop) for key, start, stop in entries if key == b"info"]
    if not spans:
        raise InvalidTorrent("no info dictionary")
    if len(spans) > 1:
        raise InvalidTorrent("more than one info dictionary")
    [(start, stop)] = spans
    if data[start] != ord("d"):
        raise InvalidTorrent("the info value is not a dictionary")
    info_keys = {key: data[value_start] for key, value_start, _ in _dict_entries(data, start)[0]}
    if info_keys.get(b"pieces") not in _DIGITS:
        # qBittorrent tracks a v2-only torrent by its (truncated) v2 hash, not a v1 one.
        raise InvalidTorrent("the info dictionary has no v1 pieces (a v2-only torrent?)")
    return data, start, stop


def info_hash(torrent: bytes) -> str:
    """Lower-case hex v1 info-hash of a .torrent file: the SHA-1 of the raw `info` value, as
    qBittorrent computes it. Only the bencode is checked, not announce URLs and the like,
    which qBittorrent accepts too; InvalidTorrent for anything else."""
    data, start, stop = _info_span(torrent)
    return hashlib.sha1(data[start:stop]).hexdigest()


def _decode(data: bytes, pos: int) -> tuple[Any, int]:
    """The value at `pos` of bencode `_value_end` has already checked, and its end."""
    byte = data[pos]
    if byte == ord("i"):
        end = data.index(b"e", pos)
        if end - pos - 1 > _MAX_INTEGER_DIGITS:  # int() would refuse past 4,300 digits; no real field is this big
            raise InvalidTorrent(f"integer of {end - pos - 1} digits at byte {pos}")
        return int(data[pos + 1 : end]), end + 1
    if byte in _DIGITS:
        colon = data.index(b":", pos)
        end = colon + 1 + int(data[pos:colon])
        return data[colon + 1 : end], end
    pos += 1
    if byte == ord("l"):
        items = []
        while data[pos] != ord("e"):
            item, pos = _decode(data, pos)
            items.append(item)
        return items, pos + 1
    entries = {}
    while data[pos] != ord("e"):
        key, pos = _decode(data, pos)
        entries[key], pos = _decode(data, pos)
    return entries, pos + 1


def _text(value: Any) -> str:
    if not isinstance(value, bytes):
        raise InvalidTorrent("the info dictionary has no usable file list")
    return value.decode("utf-8", "replace")


def _length(value: Any) -> int:
    if not isinstance(value, int) or value < 0:
        raise InvalidTorrent("the info dictionary has no usable file list")
    return value


def torrent_files(torrent: bytes) -> list[tuple[str, int]]:
    """(path, size) per file as qBittorrent names them: "Name/sub/file" for a multi-file
    torrent, just the name for a single file; BEP 47 padding files are left out."""
    data, start, _stop = _info_span(torrent)
    info, _end = _decode(data, start)
    name = _text(info.get(b"name"))
    if b"files" not in info:
        return [(name, _length(info.get(b"length")))]
    entries = info[b"files"]
    if not isinstance(entries, list) or not entries:
        raise InvalidTorrent("the info dictionary has no usable file list")
    files = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(path := entry.get(b"path"), list) or not path:
            raise InvalidTorrent("the info dictionary has no usable file list")
        if b"p" in (attr if isinstance(attr := entry.get(b"attr"), bytes) else b""):
            continue
        files.append(("/".join([name, *(_text(part) for part in path)]), _length(entry.get(b"length"))))
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
