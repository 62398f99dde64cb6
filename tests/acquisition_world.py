"""A whole acquisition world on loopback: ABS and MAM replays, two real qBittorrent instances.

The production profile is used as a user would configure it (environment variables only);
every metadata provider is switched off, so the missing books come from the library alone
and nothing but 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, Definitions

from mamcrawler.torrents import info_hash, make_torrent
from mamcrawler.warehouse import Warehouse
from pipelines.definitions import build_definitions
from pipelines.profiles import Profile
from resources.replay.abs import AbsReplay
from resources.replay.mam import REPLAY_MAM_ID, MamReplay
from tests.abs_server import AbsServer, m4b_book, mp3_book
from tests.audio import write_test_mp3
from tests.qbittorrent_harness import QbitInstance, qbit_pair
from tests.servers import serve

ABS_TOKEN = "abs-test-key"
STORMLIGHT_3 = 1100950  # a torrent id the fixtures do not use


def mam_row(torrent_id: int, title: str, *, series: str | None = None, position: str | None = None,
            filetype: str = "mp3", size: str = "460 KiB", tags: str = "Unabridged | 32kbps | mp3") -> dict[str, Any]:
    """A MAM search row in the fixtures' shape (`shared/fixtures/mam/README.md`)."""
    return {
        "id": torrent_id, "language": 1, "lang_code": "ENG", "main_cat": 13, "category": 41,
        "catname": "Audiobooks - Fantasy", "mediatype": 1, "maincat": 1, "categories": "[13]", "size": size,
        "numfiles": 2, "vip": 0, "vip_expire": 0, "free": 1, "personal_freeleech": 0, "fl_vip": 0, "title": title,
        "w": 10, "tags": tags, "author_info": json.dumps({"70001": "Brandon Sanderson"}),
        "narrator_info": json.dumps({"60001": "Michael Kramer", "60002": "Kate Reading"}),
        "series_info": json.dumps({"80001": [series, position]} if series else {}), "filetype": filetype,
        "seeders": 4, "leechers": 0, "added": "2026-11-01 10:00:00", "browseflags": 0, "times_completed": 3,
        "comments": 0, "owner_name": "FixtureUploaderA", "owner": 900001, "ownership": "[900001, \"FixtureUploaderA\"]",
        "bookmarked": None, "my_snatched": 0,
    }


@dataclass
class World:
    root: Path
    seeder: QbitInstance
    leecher: QbitInstance
    abs: AbsReplay | None  # None with a real ABS (`abs_server`)
    mam: MamReplay
    env: dict[str, str]
    torrent: bytes
    info_hash: str
    library_dir: Path
    instance: DagsterInstance = field(default_factory=DagsterInstance.ephemeral)
    abs_server: AbsServer | None = None
    library_id: str = ""

    @property
    def defs(self) -> Definitions:
        return build_definitions(Profile("production", "test"), self.env)

    def run(self, job: str) -> Any:
        return self.defs.resolve_job_def(job).execute_in_process(instance=self.instance, raise_on_error=False)

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.env["MAMCRAWLER_WAREHOUSE"])

    def table(self, name: str):
        return self.warehouse.read_table(name)

    def add_fillers(self, count: int, start: int) -> None:
        add_fillers(self.library_dir, count, start)

    def leecher_torrents(self) -> list[dict]:
        client = self.leecher.client()
        try:
            return [dict(t) for t in client.torrents_info()]
        finally:
            client.auth_log_out()

    def connect_peers(self) -> None:
        client = self.leecher.client()
        try:
            client.torrents_add_peers(peers=[self.seeder.peer], torrent_hashes=self.info_hash)
        finally:
            client.auth_log_out()

    def wait_for(self, condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.2)


def book_content(folder: Path, *, audio: bool = True) -> Path:
    """Two short mp3 parts (or, for a bad release, two text files) in a release folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for part in (1, 2):
        if audio:
            write_test_mp3(folder / f"Oathbringer - Part {part:02d}.mp3", seconds=40)
        else:
            (folder / f"Oathbringer - Part {part:02d}.txt").write_text("not audio\n" * 2000)
    return folder


def add_fillers(library_dir: Path, count: int, start: int = 1) -> None:
    """`count` more books: one m4b hardlinked into each folder (ABS probes each, ffmpeg runs once)."""
    if count <= 0:
        return
    folder = library_dir / "Filler Author"
    first = m4b_book(folder / f"Filler {start}", title=f"Filler {start}", author="Filler Author")
    for n in range(start + 1, start + count):
        (folder / f"Filler {n}").mkdir()
        os.link(first, folder / f"Filler {n}" / f"Filler {n}.m4b")


def real_abs_library(server: AbsServer, library_dir: Path, fillers: int = 0) -> str:
    """Stormlight #1, #2 and #4 as ripped m4b files (so #3 is missing), plus `fillers` other
    books (one file hardlinked into each folder: they cost ABS a probe each, not ffmpeg time),
    in a new library of the real ABS; its id once scanned."""
    root = library_dir / "Brandon Sanderson" / "The Stormlight Archive"
    for folder, title in (("Book 1", "The Way of Kings"), ("02", "Words of Radiance"), ("Book 4", "Rhythm of War")):
        # series and position from the folders (a grouping tag would make "X, Book 1" a series of its own)
        m4b_book(root / f"{folder} - {title}", title=title, author="Brandon Sanderson", narrator="Michael Kramer")
    add_fillers(library_dir, fillers)
    library = server.create_library(f"world-{library_dir.parent.name}", library_dir)
    server.scan(library["id"])
    return library["id"]


@contextlib.contextmanager
def acquisition_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, audio: bool = True,
                      extra_env: dict[str, str] | None = None, abs_server: AbsServer | None = None,
                      fillers: int = 0) -> Iterator[World]:
    """Seeder A holds a private torrent of Stormlight #3; MAM offers it; the pipeline sends it to B.

    With `abs_server` the library is a new library of that real ABS (see `real_abs_library`)
    and the release holds ffmpeg-made mp3 parts tagged as rippers tag them (album
    "Oathbringer (Unabridged)", series part "Book Three"), else the ABS replay's library.
    """
    seed_dir = tmp_path / "seed"
    if abs_server is None:
        content = book_content(seed_dir / "Oathbringer (Unabridged) [mp3]", audio=audio)
    else:
        content = seed_dir / "Oathbringer (Unabridged) [mp3]"
        mp3_book(content, title="Oathbringer (Unabridged)", author="Brandon Sanderson",
                 series="The Stormlight Archive", sequence="Book Three", seconds=40)
    torrent = make_torrent(content, private=True)
    library_dir = tmp_path / "library"
    library_dir.mkdir()
    abs_replay = None if abs_server else AbsReplay(token=ABS_TOKEN, library_dir=library_dir, scan_polls=1, watcher=True,
                                                   watcher_polls=1)
    library_id = real_abs_library(abs_server, library_dir, fillers) if abs_server else ""
    mam_replay = MamReplay(
        extra_rows=[mam_row(STORMLIGHT_3, "Oathbringer", series="The Stormlight Archive", position="3")],
        torrents={STORMLIGHT_3: torrent},
    )
    abs_env = {"ABS_API_KEY": ABS_TOKEN, "MAMCRAWLER_ABS_SETTLE_S": "0"}  # the replay has no watcher
    if abs_server:
        abs_env = {"ABS_API_KEY": abs_server.api_key, "ABS_LIBRARY_IDS": library_id, "MAMCRAWLER_IMPORT_LIBRARY_ID": library_id,
                   "MAMCRAWLER_ABS_LIBRARY_FOLDER": str(library_dir)}
    with (qbit_pair(tmp_path) as (seeder, leecher),
          serve(abs_replay) if abs_replay else contextlib.nullcontext(abs_server.url) as abs_url,
          serve(mam_replay) as mam_url):
        seeder.seed(torrent, seed_dir)
        env = {
            **abs_env, "MAM_ID": REPLAY_MAM_ID, "QBITTORRENT_PASSWORD": leecher.password,
            "ABS_URL": abs_url,
            "MAMCRAWLER_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
            "MAMCRAWLER_AUDIBLE": "0", "MAMCRAWLER_AUDNEXUS": "0", "MAMCRAWLER_OPENLIBRARY": "0", "MAMCRAWLER_GOOGLE_BOOKS": "0",
            "MAMCRAWLER_MAM_URL": mam_url,
            "MAMCRAWLER_MAM_MIN_INTERVAL_S": "0",
            "MAMCRAWLER_INDEXERS": "mam",
            "MAMCRAWLER_DRY_RUN": "0",
            "MAMCRAWLER_LIBRARY_DIR": str(library_dir),
            "MAMCRAWLER_TORRENT_DIR": str(tmp_path / "torrents"),
            "QBITTORRENT_URL": leecher.url,
            "QBITTORRENT_USERNAME": leecher.username,
            "MAMCRAWLER_QBITTORRENT_SAVE_PATH": str(tmp_path / "downloads"),
            **(extra_env or {}),
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)  # `EnvVar`s resolve at run time, from the process environment
        yield World(tmp_path, seeder, leecher, abs_replay, mam_replay, env, torrent, info_hash(torrent), library_dir,
                    abs_server=abs_server, library_id=library_id)
