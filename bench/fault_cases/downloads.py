"""Downloads when qBittorrent misleads: an empty torrent list, sends repeated.

The world is the acquisition tests' (`tests/acquisition_world.py`): ABS and MAM replays on
loopback and two real qbittorrent-nox, the seeder holding the release of Stormlight #3 that
MAM offers. `downloads_lost` counts live downloads (sent, downloading, completed) that the
fault turned into anything else; `downloads_duplicated` counts books with more than one live
download, and torrents held twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest

from bench.fault_cases import FaultResult
from tests.servers import serve

LIVE = ("sent", "downloading", "completed")


@contextlib.contextmanager
def _world(work: Path) -> Iterator:
    from tests.acquisition_world import acquisition_world

    with pytest.MonkeyPatch.context() as patch, acquisition_world(
        work, patch, extra_env={"MAMCRAWLER_MAX_SEARCHES_PER_RUN": "6"}
    ) as world:
        yield world


@contextlib.contextmanager
def _listing_nothing(target: str) -> Iterator[str]:
    """A proxy before the real qBittorrent that answers every torrent listing with `[]` (a
    qBittorrent still loading its session after a restart answers so)."""

    def proxy(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v2/torrents/info":
            return httpx.Response(200, json=[])
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        answer = httpx.request(request.method, f"{target}{request.url.raw_path.decode()}", headers=headers,
                               content=request.content, timeout=30)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    with serve(proxy) as url:
        yield url


def _live(world) -> pl.DataFrame:
    table = world.warehouse.read_optional("download_requests")
    return pl.DataFrame() if table is None else table.filter(pl.col("status").is_in(LIVE))


def _duplicated(world) -> int:
    live = _live(world)
    books = 0 if live.is_empty() else int((live.group_by("missing_id").len()["len"] > 1).sum())
    hashes = [t["hash"] for t in world.leecher_torrents()]
    return books + len(hashes) - len(set(hashes))


def _lost(before: pl.DataFrame, world) -> int:
    if before.is_empty():
        return 0
    after = _live(world)
    still = set() if after.is_empty() else set(after["info_hash"])
    return sum(h not in still for h in before["info_hash"])


def empty_torrent_list(work: Path) -> FaultResult:
    """qBittorrent answers `[]` to every listing while it holds the download: the import run
    must not declare it removed (absence is not evidence), and once qBittorrent answers again
    the next search sends nothing twice."""
    name = "downloads: qBittorrent lists no torrent"
    with _world(work) as world:
        if not (world.run("refresh_library").success and world.run("search_and_queue").success):
            return FaultResult(name, survived=False, detail="the world did not send its download")
        before = _live(world)
        real = world.env["QBITTORRENT_URL"]
        with _listing_nothing(real) as proxy:
            world.env["QBITTORRENT_URL"] = proxy
            blind = world.run("import_downloads")
        world.env["QBITTORRENT_URL"] = real
        lost = _lost(before, world)
        again = world.run("search_and_queue").success and world.run("import_downloads").success
        duplicated = _duplicated(world)
        held = world.info_hash in [t["hash"] for t in world.leecher_torrents()]
    return FaultResult(name, survived=not before.is_empty() and lost == 0 and duplicated == 0 and again and held,
                       downloads_lost=lost, downloads_duplicated=duplicated,
                       detail=f"{before.height} live before; import run with the empty list "
                       f"{'succeeded' if blind.success else 'failed'}; {lost} lost; {duplicated} duplicated; "
                       f"later runs {'succeeded' if again else 'failed'}; torrent still in qBittorrent: {held}")


def repeated_sends(work: Path) -> FaultResult:
    """`search_and_queue` three times over and `download_requests` alone twice more (a
    person re-materialising it): one download per book, each torrent once in qBittorrent."""
    from dagster import AssetKey

    name = "downloads: the same send repeated"
    with _world(work) as world:
        ok = world.run("refresh_library").success and world.run("search_and_queue").success
        before = _live(world)
        job = world.defs.resolve_job_def("search_and_queue")
        for _ in range(2):
            ok &= world.run("search_and_queue").success
            ok &= job.execute_in_process(instance=world.instance, raise_on_error=False,
                                         asset_selection=[AssetKey("download_requests")]).success
        duplicated = _duplicated(world)
        lost = _lost(before, world)
        after = _live(world)
        torrents = len(world.leecher_torrents())
    return FaultResult(name, survived=ok and not before.is_empty() and duplicated == 0 and lost == 0,
                       downloads_lost=lost, downloads_duplicated=duplicated,
                       detail=f"runs {'succeeded' if ok else 'failed'}; {before.height} live after the first send, "
                       f"{after.height} after five more; {torrents} torrents in qBittorrent; {duplicated} duplicated")


CASES = [empty_torrent_list, repeated_sends]
