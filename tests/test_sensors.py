import copy

from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context

from pipelines.definitions import build_definitions
from pipelines.profiles import Profile
from resources.audiobookshelf import AudiobookshelfResource
from resources.replay.abs import AbsReplay
from tests.servers import serve

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
