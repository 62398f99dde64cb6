"""Watch this project's torrents in qBittorrent and request the import when one finishes.

The sensor never opens the warehouse. Its cursor is small: the newest completion time
seen. Each completion is requested under the run key `import-<info-hash>` and each stall
under `stall-<info-hash>-<added_on>`, so seeing a torrent twice (a reset cursor, a
qBittorrent restart that reports old completions again) launches nothing twice.
"""

import json
import time

from dagster import (
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from mamcrawler.acquisition import PROJECT_TAG, Observed, missing_id_of, stalled_reason
from resources.qbittorrent import QBittorrentError, QBittorrentResource
from resources.settings import AcquisitionOptions

# Completions are re-read a little before the watermark: two torrents finishing in the same
# second, or a clock step, must not hide one of them. Run keys make the overlap harmless.
OVERLAP_S = 300


def build_download_sensor(import_job: JobDefinition, interval_s: int = 60) -> SensorDefinition:
    @sensor(job=import_job, minimum_interval_seconds=interval_s, default_status=DefaultSensorStatus.STOPPED)
    def qbittorrent_downloads(
        context: SensorEvaluationContext, qbittorrent: QBittorrentResource, acquisition: AcquisitionOptions
    ):
        """Requests `import_downloads` for each finished or stalled download of this project."""
        if acquisition.dry_run:
            return SkipReason("dry run: nothing is sent to qBittorrent, so there is nothing to watch")
        try:
            torrents = qbittorrent.torrents(tag=PROJECT_TAG)
        except QBittorrentError as exc:
            return SkipReason(f"qBittorrent not readable: {exc}")
        watermark = json.loads(context.cursor)["completed_after"] if context.cursor else 0
        now = time.time()
        requests, newest = [], watermark
        for torrent in torrents:
            book = missing_id_of(torrent.tags)
            tags = {"mamcrawler/trigger": "qbittorrent_downloads", "mamcrawler/info_hash": torrent.info_hash}
            if book:
                tags["mamcrawler/missing_id"] = book
            if torrent.completion_on is not None:
                newest = max(newest, torrent.completion_on)
                if torrent.completion_on >= watermark - OVERLAP_S:
                    requests.append(RunRequest(run_key=f"import-{torrent.info_hash}", tags=tags))
                continue
            seen = Observed(torrent.info_hash, torrent.progress, torrent.state, torrent.added_on, None, torrent.last_activity)
            if stalled_reason(seen, now, acquisition.stall_after_s):
                requests.append(RunRequest(run_key=f"stall-{torrent.info_hash}-{torrent.added_on}", tags=tags))
        cursor = json.dumps({"completed_after": newest})
        if not requests:
            return SensorResult(skip_reason=f"{len(torrents)} download(s) in progress, none finished or stalled", cursor=cursor)
        return SensorResult(run_requests=requests, cursor=cursor)

    return qbittorrent_downloads
