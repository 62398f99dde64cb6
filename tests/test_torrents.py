"""Info-hash, file list and magnet parsing of mamcrawler.torrents (no services)."""

import base64
import hashlib
import io
import os
from pathlib import Path

import pytest
import torf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamcrawler.torrents import (
    MAX_TORRENT_BYTES,
    InvalidTorrent,
    info_hash,
    magnet_info_hash,
    make_torrent,
    torrent_files,
)
from tests.bencode import bencode

PASSKEY = "SECRETPASSKEY"
VALID_ANNOUNCE = f"http://127.0.0.1:8443/{PASSKEY}/announce"
INVALID_ANNOUNCE = f"http://127.0.0.1:99999/{PASSKEY}/announce"  # port out of range


def torf_hash(torrent: bytes) -> str:
    return torf.Torrent.read_stream(io.BytesIO(torrent)).infohash.lower()


def make_audiobook(root: Path, title: str = "Fake Author - Fake Book") -> tuple[Path, bytes]:
    folder = root / "seed" / title
    folder.mkdir(parents=True)
    (folder / "01 - Chapter One.mp3").write_bytes(b"ID3" + os.urandom(300_000))
    (folder / "02 - Chapter Two.mp3").write_bytes(b"ID3" + os.urandom(200_000))
    return folder, make_torrent(folder, private=True)


def with_announce(torrent: bytes, old: str, new: str) -> bytes:
    replaced = torrent.replace(bencode(old), bencode(new))
    assert replaced != torrent
    return replaced


@pytest.fixture(scope="module")
def passkey_torrents(tmp_path_factory) -> tuple[bytes, bytes]:
    """A private torrent announcing to a passkey URL, and the same with an invalid port."""
    folder = tmp_path_factory.mktemp("passkey") / "Book"
    folder.mkdir()
    (folder / "part 1.mp3").write_bytes(b"\1" * 40_000)
    (folder / "part 2.mp3").write_bytes(b"\2" * 25_000)
    valid = make_torrent(folder, trackers=[VALID_ANNOUNCE])
    return valid, with_announce(valid, VALID_ANNOUNCE, INVALID_ANNOUNCE)


def test_hash_and_files_of_what_make_torrent_wrote(tmp_path):
    folder, torrent = make_audiobook(tmp_path)
    digest = info_hash(torrent)
    assert digest == torf_hash(torrent)
    assert len(digest) == 40 and digest == digest.lower()
    assert torrent_files(torrent) == [
        ("Fake Author - Fake Book/01 - Chapter One.mp3", 300_003),
        ("Fake Author - Fake Book/02 - Chapter Two.mp3", 200_003),
    ]
    single = make_torrent(folder / "01 - Chapter One.mp3", name="renamed.mp3", private=False, trackers=[VALID_ANNOUNCE])
    assert info_hash(single) == torf_hash(single)
    assert torrent_files(single) == [("renamed.mp3", 300_003)]
    assert info_hash(bytearray(single)) == info_hash(single)


def test_passkey_announce_qbittorrent_accepts_is_hashed_and_never_quoted(passkey_torrents):
    valid, invalid_port = passkey_torrents
    # torf validates the announce URL and quotes it, passkey included, in its error.
    with pytest.raises(torf.TorfError, match=PASSKEY):
        torf_hash(invalid_port)
    assert info_hash(invalid_port) == info_hash(valid) == torf_hash(valid)
    assert (
        torrent_files(invalid_port)
        == torrent_files(valid)
        == [("Book/part 1.mp3", 40_000), ("Book/part 2.mp3", 25_000)]
    )


def test_hash_is_of_the_raw_info_bytes_as_written():
    """Keys out of order are hashed as they stand (qBittorrent does the same); torf re-encodes."""
    info = {"piece length": 16384, "pieces": b"\0" * 20, "name": "Book.m4b", "length": 5}
    torrent = bencode({"info": info, "announce": INVALID_ANNOUNCE})
    raw_info = bencode(info)
    assert info_hash(torrent) == hashlib.sha1(raw_info).hexdigest()
    assert torrent_files(torrent) == [("Book.m4b", 5)]


def test_padding_files_are_left_out():
    info = {
        "files": [
            {"length": 3, "path": ["a.mp3"]},
            {"attr": "p", "length": 16381, "path": [".pad", "16381"]},
            {"length": 4, "path": ["sub", "b.mp3"]},
        ],
        "name": "Book",
        "piece length": 16384,
        "pieces": b"\0" * 20,
    }
    assert torrent_files(bencode({"info": info})) == [("Book/a.mp3", 3), ("Book/sub/b.mp3", 4)]


def info_with(**changes) -> bytes:
    info = {"length": 5, "name": PASSKEY, "piece length": 16384, "pieces": b"\0" * 20} | changes
    return bencode({"announce": INVALID_ANNOUNCE, "info": {k: v for k, v in info.items() if v is not None}})


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        ("d4:infod", "expected .torrent bytes, got str"),
        (b"<html><body>Please log in " + PASSKEY.encode() + b"</body></html>", "not a bencoded .torrent"),
        (bencode({"announce": INVALID_ANNOUNCE}), "no info dictionary"),
        (bencode({"announce": INVALID_ANNOUNCE, "info": PASSKEY}), "info value is not a dictionary"),
        (bencode({"info": {"name": PASSKEY}}), "no v1 pieces"),
        (bencode({"info": {"pieces": 5}}), "no v1 pieces"),
        (info_with() + b"\n", "1 bytes of trailing data after byte"),
        (info_with() + bencode(PASSKEY), "trailing data"),
        (info_with()[:-1], "truncated at byte"),
        (b"d8:announce99:" + INVALID_ANNOUNCE.encode() + b"e", "truncated at byte"),
        (b"d8:announcei12", "truncated at byte"),
        (b"d8:announce" + PASSKEY.encode() + b"e", "not bencode at byte 11"),
        (b"d8:announcei012e4:infod6:pieces0:ee", "malformed integer at byte 11"),
        (b"d8:announcei-0e4:infod6:pieces0:ee", "malformed integer"),
        (b"d8:announceie4:infod6:pieces0:ee", "malformed integer"),
        (b"d8:announce01:x4:infod6:pieces0:ee", "malformed string length at byte 11"),
        (b"di1e1:x4:infod6:pieces0:ee", "dictionary key at byte 1 is not a string"),
        (b"d4:infod6:pieces0:li1ei2ee3:abcee", "dictionary key at byte .* is not a string"),
        (b"d4:infod6:pieces0:3:abcee", "not bencode"),
        (b"d1:x" + b"l" * 101 + b"e" * 101 + b"4:infod6:pieces0:ee", "nested deeper than 100 levels"),
        (b"d4:infod6:pieces0:e4:infod6:pieces0:ee", "more than one info dictionary"),
        (b"d" + bytes(MAX_TORRENT_BYTES), "more than"),
    ],
)
def test_malformed_torrents_are_invalid_without_quoting_them(data, reason):
    with pytest.raises(InvalidTorrent, match=reason) as error:
        info_hash(data)
    assert PASSKEY not in str(error.value)


@pytest.mark.parametrize(
    "torrent",
    [
        info_with(name=None),
        info_with(name=7),
        info_with(length=None),
        info_with(length=-1),
        info_with(length=PASSKEY),
        info_with(files=[]),
        info_with(files=PASSKEY),
        info_with(files=[{"length": 1}]),
        info_with(files=[{"length": 1, "path": PASSKEY}]),
        info_with(files=[{"length": PASSKEY, "path": [PASSKEY]}]),
        info_with(files=[{"length": 1, "path": [PASSKEY, 3]}]),
    ],
)
def test_unusable_file_list_is_invalid_without_quoting_it(torrent):
    assert info_hash(torrent)  # the bencode itself is fine
    with pytest.raises(InvalidTorrent, match="no usable file list") as error:
        torrent_files(torrent)
    assert PASSKEY not in str(error.value)


def test_every_truncation_is_invalid_without_quoting(passkey_torrents):
    _valid, torrent = passkey_torrents
    for end in range(len(torrent)):
        with pytest.raises(InvalidTorrent) as error:
            info_hash(torrent[:end])
        assert PASSKEY not in str(error.value), end


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupted_bytes_give_a_hash_or_a_clean_invalid_torrent(passkey_torrents, data):
    _valid, torrent = passkey_torrents
    corrupted = bytearray(torrent)
    for _ in range(data.draw(st.integers(1, 4))):
        corrupted[data.draw(st.integers(0, len(torrent) - 1))] = data.draw(st.integers(0, 255))
    for reader in (info_hash, torrent_files):
        try:
            reader(bytes(corrupted))
        except InvalidTorrent as exc:
            assert PASSKEY not in str(exc)


def test_magnet_hashes_in_hex_and_base32():
    digest = "c834c4294cef7904d731649c81198a3ba7d5a2c9"
    base32 = base64.b32encode(bytes.fromhex(digest)).decode()
    assert magnet_info_hash(f"magnet:?xt=urn:btih:{digest.upper()}&dn=Fake+Book") == digest
    assert magnet_info_hash(f"magnet:?dn=x&xt=urn:btih:{base32}&tr=http%3A%2F%2F127.0.0.1%2Fa") == digest


@pytest.mark.parametrize(
    "magnet",
    ["http://example.invalid/x.torrent", "magnet:?dn=no-hash", "magnet:?xt=urn:btih:abc", "magnet:?xt=urn:btmh:1220ab"],
)
def test_magnet_without_v1_hash_is_invalid(magnet):
    with pytest.raises(InvalidTorrent):
        magnet_info_hash(magnet)
