"""The MAM client against a loopback server replaying the MAM fixtures."""

import io
import itertools
import json
import stat
from datetime import UTC, datetime

import httpx
import pytest
import torf

from resources.mam import (
    MamAuthError,
    MamResource,
    MamResponseError,
    MamUnreachableError,
    ReplayMamResource,
    main_title,
    search_text_for,
)
from resources.replay.mam import REPLAY_MAM_ID, SEARCH_PATH, MamReplay
from resources.replay.recorded import load
from tests.servers import serve

ROTATED = "FAKE-ROTATED-MAM-ID-0002"


def mam(url, **kw):
    kw.setdefault("mam_id", REPLAY_MAM_ID)
    kw.setdefault("min_interval_s", 0.0)
    kw.setdefault("languages", [])
    return MamResource(base_url=url, backoff_s=0.01, **kw)


def search(replay, title, author=None, **kw):
    with serve(replay) as url, mam(url, **kw).session() as session:
        return session.search(title, author)


class FakeClock:
    """Time that only moves when someone sleeps."""

    def __init__(self):
        self.now = 1e9  # far from time.monotonic(), which a port's earlier pacing may have used
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def cookie_spy(replay, seen):
    def handler(request):
        seen.append(request.headers.get("cookie"))
        return replay(request)

    return handler


@pytest.mark.parametrize(
    ("title", "author", "ids"),
    [
        ("The Way of Kings", "Brandon Sanderson", [1100101, 1100102, 1100103, 1100104, 1100105]),
        ("Mistborn Trilogy", "Brandon Sanderson", [1100201, 1100202, 1100203]),
        ("Percy Jackson Book 3", None, [1100301, 1100302, 1100303, 1100304]),
        ("The Hobbit", None, [1100401, 1100402, 1100403, 1100404]),
        ("Solaris", "Lem", [1100501, 1100502]),
        ("The Dark Forest", "Cixin Liu", [1100701, 1100702]),
    ],
)
def test_each_fixture_search_parses(title, author, ids):
    found = search(MamReplay(), title, author)
    assert [int(r.release_id) for r in found.releases] == ids
    assert found.found == len(ids) and not found.skipped and not found.truncated and found.requests == 1


def test_expanse_is_paged_by_start_number():
    replay = MamReplay()
    found = search(replay, "The Expanse", "James S. A. Corey", per_page=5)
    assert found.query == "The Expanse James S A Corey"
    assert [r.release_id for r in found.releases] == [str(i) for i in range(1100601, 1100608)]
    assert found.requests == 2 and replay.requests == [f"POST {SEARCH_PATH}"] * 2
    assert found.found == 7 and not found.truncated


def test_languages_and_categories_are_sent_and_filter():
    english = search(MamReplay(), "The Way of Kings", "Brandon Sanderson", languages=[1])
    assert "1100104" not in {r.release_id for r in english.releases} and len(english.releases) == 4
    assert not search(MamReplay(), "The Way of Kings", "Brandon Sanderson", categories=[47]).releases


def test_nothing_returned_is_an_empty_search():
    found = search(MamReplay(), "zzzz no such audiobook")
    assert found.releases == [] and found.found == 0 and found.requests == 1 and not found.truncated


def test_falls_back_to_the_title_alone():
    replay = MamReplay()
    found = search(replay, "The Way of Kings", "Brandon Sandersonn")  # a typo ANDed in finds nothing
    assert found.query == "The Way of Kings" and found.requests == 2
    assert {r.release_id for r in found.releases} == {"1100101", "1100102", "1100103", "1100105"}


def test_search_text_strips_punctuation():
    assert search_text_for("Caliban's War: Book 2", "James S. A. Corey") == "Caliban s War Book 2 James S A Corey"
    assert search_text_for("  Solaris ", None) == "Solaris"


def test_rejected_cookie_says_how_to_fix_it_and_never_shows_it():
    secret = "FAKE-WRONG-MAM-ID-77"
    with serve(MamReplay()) as url, mam(url, mam_id=secret).session() as session, pytest.raises(MamAuthError) as err:
        session.search("The Hobbit")
    text = str(err.value)
    assert "MAM_ID" in text and "Preferences -> Security" in text and "expired" in text and "IP" in text
    assert secret not in text and err.value.__cause__ is None


def test_cookie_rotation_is_kept_and_persisted_private(tmp_path):
    replay = MamReplay(keep_old_cookie=False)
    cookies = []
    path = tmp_path / "state" / "mam_cookie.json"
    with serve(cookie_spy(replay, cookies)) as url:
        with mam(url, cookie_path=str(path)).session() as session:
            session.search("The Hobbit")
            session.account_status()  # the old cookie is no longer accepted: only works with the rotated one
        assert session.cookie_rotated and session.cookie == ROTATED
        assert cookies == [f"mam_id={REPLAY_MAM_ID}", f"mam_id={ROTATED}"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text())["mam_id"] == ROTATED

        with mam(url, cookie_path=str(path)).session() as session:  # next run starts from the saved cookie
            session.account_status()
        assert cookies[-1] == f"mam_id={ROTATED}" and not session.cookie_rotated

        with mam(url, mam_id="FAKE-NEW-MAM-ID-0003", cookie_path=str(path)).session() as session:
            assert session.cookie == "FAKE-NEW-MAM-ID-0003"  # a new MAM_ID wins over the saved cookie


def test_replay_accepts_old_and_rotated_cookie_by_default():
    with serve(MamReplay()) as url:
        for _ in range(2):
            with mam(url).session() as session:
                session.account_status()
            assert session.cookie == ROTATED
        with mam(url, mam_id=ROTATED).session() as session:
            assert session.account_status().username == "fixture_reader"


def test_cookie_expiring_mid_run():
    with serve(MamReplay(expire_after=2)) as url, mam(url, per_page=5).session() as session:
        assert len(session.search("The Expanse", "James S. A. Corey").releases) == 7
        with pytest.raises(MamAuthError):
            session.search("The Hobbit")
        assert session.requests == 3


def test_ten_thousand_rows_stop_at_max_results():
    replay = MamReplay(rows_for_any_query=10_000)
    found = search(replay, "Anything", "Anyone", max_results=200, per_page=100)
    assert len(found.releases) == 200 and found.found == 10_000 and found.truncated
    assert found.requests == 2 and len({r.release_id for r in found.releases}) == 200


def test_malformed_rows_are_counted_not_fatal():
    broken = [
        {"title": "No id at all"},
        {"id": 5550001, "title": ""},
        {"id": 5550002, "title": "Bad authors", "author_info": "{not json"},
        {"id": 1100101, "title": "The Way of Kings"},  # the same torrent again, as when pages shift
    ]
    found = search(MamReplay(extra_rows=broken), "The Way of Kings", "Brandon Sanderson")
    assert len(found.releases) == 5 and found.found == 9
    assert found.skipped == {"missing_id": 1, "missing_title": 1, "bad_author_info": 1, "duplicate_id": 1}


def test_503_is_retried():
    clock = FakeClock()
    replay = MamReplay(fail_first=2)
    with serve(replay) as url, mam(url, max_retries=3).session(clock=clock, sleep=clock.sleep) as session:
        assert len(session.search("The Hobbit").releases) == 4
    assert session.requests == 3 and len(replay.requests) == 3 and clock.sleeps == [0.01, 0.02]


def always(status):
    def handler(request):
        return httpx.Response(status, headers={"Content-Type": "text/html", "Retry-After": "0"}, text="busy")

    return handler


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
@pytest.mark.parametrize("call", ["search", "download"])
def test_mam_still_failing_after_the_retries_is_unreachable_not_a_bad_release(status, call):
    clock = FakeClock()
    calls = []

    def handler(request):
        calls.append(request.url.path)
        return always(status)(request)

    with (
        serve(handler) as url,
        mam(url, max_retries=2).session(clock=clock, sleep=clock.sleep) as session,
        pytest.raises(MamUnreachableError, match=f"HTTP {status} after 2 retries") as err,
    ):
        if call == "search":
            session.search("The Hobbit")
        else:
            session.download_torrent("1100101")
    assert len(calls) == 3 and session.requests == 3  # the first try and two retries, then it gives up
    assert "mam_id" not in str(err.value) and "tid=" not in str(err.value)


def test_503_from_the_replay_after_the_retries_is_unreachable():
    clock = FakeClock()
    with (
        serve(MamReplay(fail_first=10)) as url,
        mam(url, max_retries=2).session(clock=clock, sleep=clock.sleep) as session,
        pytest.raises(MamUnreachableError, match="HTTP 503 after 2 retries"),
    ):
        session.download_torrent("1100101")


def test_a_4xx_is_a_response_error_at_once():
    calls = []

    def handler(request):
        calls.append(request.url.path)
        return always(404)(request)

    with serve(handler) as url, mam(url).session() as session, pytest.raises(MamResponseError, match="HTTP 404"):
        session.search("The Hobbit")
    assert len(calls) == 1


def test_an_untitled_series_gap_is_found_through_the_series_field():
    bodies = []
    replay = MamReplay()

    def spy(request):
        bodies.append(json.loads(request.content))
        return replay(request)

    # No row's title or author holds "Percy Jackson and the Olympians" for The Titan's Curse: only its series does.
    found = search(spy, "Percy Jackson and the Olympians", "Rick Riordan")
    assert found.query == "Percy Jackson and the Olympians Rick Riordan" and found.requests == 1
    assert [r.release_id for r in found.releases] == ["1100301", "1100302"]
    assert bodies[0]["tor"]["srchIn"] == ["title", "author", "narrator", "series"]


def test_a_subtitled_title_falls_back_to_its_main_title_with_the_author():
    replay = MamReplay()
    found = search(replay, "The Hobbit, or There and Back Again", "J. R. R. Tolkien")
    assert found.query == "The Hobbit J R R Tolkien" and found.requests == 3
    assert [r.release_id for r in found.releases] == ["1100401", "1100402", "1100403", "1100404"]
    assert replay.requests == [f"POST {SEARCH_PATH}"] * 3


def test_main_title_needs_a_separator_and_two_words():
    assert main_title("The Hobbit, or There and Back Again") == "The Hobbit"
    assert main_title("Project Hail Mary: A Novel") == "Project Hail Mary"
    assert main_title("Sapiens: A Brief History of Humankind") is None  # one word would match too much
    assert main_title("The Way of Kings") is None
    assert main_title("Leviathan Wakes, Book 1") is None  # a comma alone is not a subtitle


def test_requests_are_spaced_by_min_interval():
    clock = FakeClock()
    replay = MamReplay()
    stamps = []

    def stamped(request):
        stamps.append(clock.now)
        return replay(request)

    with serve(stamped) as url:
        with mam(url, per_page=5, min_interval_s=2.0).session(clock=clock, sleep=clock.sleep) as session:
            session.search("The Expanse", "James S. A. Corey")
        with mam(url, min_interval_s=2.0).session(clock=clock, sleep=clock.sleep) as other:
            other.account_status()  # pacing is per MAM URL, shared by every session
    assert len(stamps) == 3 and [b - a for a, b in itertools.pairwise(stamps)] == [2.0, 2.0]
    assert clock.sleeps == [2.0, 2.0] and session.waited_s == 2.0


def test_download_torrent_is_a_private_torrent():
    with serve(MamReplay()) as url, mam(url).session() as session:
        body = session.download_torrent("1100101")
        assert session.download_torrent("1100101") == body  # deterministic
        with pytest.raises(MamResponseError):
            session.download_torrent("1199999")
    torrent = torf.Torrent.read_stream(io.BytesIO(body))
    assert torrent.private is True and torrent.name == "The Way of Kings.m4b"
    assert torrent.size == 1352914698 and len(torrent.infohash) == 40


def test_user_status():
    with serve(MamReplay(user="power_user")) as url, mam(url).session() as session:
        user = session.account_status()
    assert user.username == "fixture_newbie" and user.classname == "Power User" and not user.is_vip
    assert user.vip_until is None and user.seedbonus == 12877 and user.wedges == 2 and user.ratio == 1.18
    with serve(MamReplay()) as url, mam(url).session() as session:
        vip = session.account_status()
    assert vip.is_vip and vip.vip_until == datetime(2027, 1, 31, 18, 22, 5, tzinfo=UTC) and vip.uploaded_bytes == 5245817257984


def test_replay_answers_prowlarr_get_style_and_row_flags():
    replay = MamReplay()
    params = {
        "tor[text]": "The Expanse James S A Corey", "tor[srchIn][title]": "true", "tor[perpage]": "5",
        "tor[startNumber]": "5", "tor[cat][]": "0", "description": "1",
    }
    with serve(replay) as url, httpx.Client(base_url=url) as client:
        answer = client.get(SEARCH_PATH, params=params, headers={"Cookie": f"mam_id={REPLAY_MAM_ID}"})
    body = answer.json()
    assert answer.headers["content-type"].startswith("application/json")
    assert ROTATED in answer.headers["set-cookie"]
    assert [row["id"] for row in body["data"]] == [1100606, 1100607] and body["found"] == 7 and body["start"] == 5
    assert "description" in body["data"][0] and "dl" not in body["data"][0] and "isbn" not in body["data"][0]
    assert body["perpage"] == 5 and body["total"] == 7


def test_replay_serves_a_recorded_search_body_verbatim():
    entry = next(e for e in load("mam", "_index.json") if e["file"] == "search_dark_forest_liu.json")
    with serve(MamReplay()) as url, httpx.Client(base_url=url) as client:
        answer = client.post(SEARCH_PATH, json=entry["request_body"], headers={"Cookie": f"mam_id={REPLAY_MAM_ID}"})
    assert answer.json() == load("mam", "search_dark_forest_liu.json")


def test_demo_resource_runs_in_process():
    with ReplayMamResource().session() as session:
        found = session.search("Solaris", "Stanisław Lem")
    assert [r.release_id for r in found.releases] == ["1100501"]  # English only by default
