import copy

from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context

from pipelines.definitions import build_definitions
from pipelines.profiles import Profile
from resources.audiobookshelf import AudiobookshelfResource
from resources.qbittorrent import QBittorrentResource
from resources.replay.abs import AbsReplay
from resources.settings import AcquisitionOptions
from tests.servers import free_port, serve

TOKEN = "sensor-test-token"


def evaluate(sensor, url, cursor, token=TOKEN):
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(
            instance=instance, cursor=cursor,
            resources={"abs_client": AudiobookshelfResource(base_url=url, api_key=token, max_retries=0)},
        )
        result = sensor(context)
        return result, context.cursor


def test_abs_change_sensor_requests_a_refresh_only_when_books_change(abs_items):
    sensor = build_definitions(Profile("demo", "t")).resolve_sensor_def("abs_library_changes")
    with serve(AbsReplay(token=TOKEN)) as url:
        first, cursor = evaluate(sensor, url, None)
        assert isinstance(first, RunRequest) and first.run_key
        again, same_cursor = evaluate(sensor, url, cursor)
        assert isinstance(again, SkipReason) and same_cursor == cursor
    added = copy.deepcopy(abs_items[0])
    added.update(id="new-book", addedAt=abs_items[0]["addedAt"] + 1)
    with serve(AbsReplay(token=TOKEN, items=[*abs_items, added])) as url:
        changed, new_cursor = evaluate(sensor, url, cursor)
        assert isinstance(changed, RunRequest) and changed.run_key != first.run_key and new_cursor != cursor
        skipped, _ = evaluate(sensor, url, cursor, token="wrong")
        assert isinstance(skipped, SkipReason) and "ABS not readable" in skipped.skip_message
        assert "wrong" not in skipped.skip_message


def _download_sensor_tick(acquisition, qbittorrent):
    sensor = build_definitions(Profile("demo", "t")).resolve_sensor_def("qbittorrent_downloads")
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(instance=instance, resources={"qbittorrent": qbittorrent, "acquisition": acquisition})
        return sensor.evaluate_tick(context)


def test_download_sensor_waits_quietly_in_a_dry_run_and_when_qbittorrent_is_away():
    away = QBittorrentResource(url=f"http://127.0.0.1:{free_port()}", password="sensor-secret-pw", timeout_s=2)
    dry = _download_sensor_tick(AcquisitionOptions(dry_run=True), away)
    assert not dry.run_requests and "dry run" in dry.skip_message
    live = _download_sensor_tick(AcquisitionOptions(dry_run=False), away)
    assert not live.run_requests and "qBittorrent not readable" in live.skip_message
    assert "sensor-secret-pw" not in live.skip_message
