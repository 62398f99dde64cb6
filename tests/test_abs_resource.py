"""The ABS client against a loopback server replaying recorded ABS 2.36.0 responses."""

import copy

import pytest

from resources.audiobookshelf import (
    AbsAuthError,
    AbsLibraryNotFoundError,
    AbsUnreachableError,
    AudiobookshelfResource,
)
from resources.replay.abs import AbsReplay
from tests.servers import free_port, serve

TOKEN = "fake-abs-token-17"
LIBRARY = "92048683-a190-4e69-8125-f23ef2d96b9d"


def client(url, **kw):
    kw.setdefault("api_key", TOKEN)
    return AudiobookshelfResource(base_url=url, backoff_s=0.01, **kw)


def test_pages_through_every_item_and_fetches_full_items():
    replay = AbsReplay(token=TOKEN)
    with serve(replay) as url:
        fetch = client(url, page_size=7, batch_size=10).fetch_items()
    assert len(fetch.items) == 25 and len({i["id"] for i in fetch.items}) == 25
    assert all("authors" in i["media"]["metadata"] for i in fetch.items)  # expanded, not minified
    assert fetch.pages == 5  # 4 pages of 7 + the empty page that ends paging
    assert fetch.reported_total == fetch.listed == 25 and not fetch.warnings
    assert replay.requests.count("POST /api/items/batch/get") == 3
    assert fetch.libraries == [{"id": LIBRARY, "name": "Audiobooks"}]


def test_sort_is_explicit_and_page_is_zero_based():
    seen = []
    replay = AbsReplay(token=TOKEN)

    def spy(request):
        if request.url.path.endswith("/items"):
            seen.append(dict(request.url.params))
        return replay(request)

    with serve(spy) as url:
        client(url, page_size=10).fetch_items()
    assert [p["page"] for p in seen] == ["0", "1", "2", "3"]
    assert all(p["sort"] == "addedAt" and p["limit"] == "10" and "offset" not in p for p in seen)


def test_rejected_token_says_how_to_fix_it_and_never_shows_the_token():
    with serve(AbsReplay(token=TOKEN)) as url, pytest.raises(AbsAuthError) as err:
        client(url, api_key="wrong-" + TOKEN).fetch_items()
    text = str(err.value)
    assert "isActive" in text and "ABS_API_KEY" in text and TOKEN not in text
    assert err.value.__cause__ is None or TOKEN not in repr(err.value.__cause__)


def test_unreachable_host():
    port = free_port()  # nothing listens there
    with pytest.raises(AbsUnreachableError) as err:
        client(f"http://127.0.0.1:{port}", max_retries=1).fetch_items()
    assert "cannot reach ABS" in str(err.value) and TOKEN not in str(err.value)


def test_unknown_library_id_lists_the_real_ones():
    with serve(AbsReplay(token=TOKEN)) as url, pytest.raises(AbsLibraryNotFoundError) as err:
        client(url, library_ids=["does-not-exist"]).fetch_items()
    assert "does-not-exist" in str(err.value) and "Audiobooks" in str(err.value)


def test_server_errors_are_retried_client_errors_are_not():
    replay = AbsReplay(token=TOKEN, fail_first=2)
    with serve(replay) as url:
        assert len(client(url).fetch_items().items) == 25
    assert replay.requests[:3] == ["GET /api/libraries"] * 3

    replay = AbsReplay(token=TOKEN)
    with serve(replay) as url, pytest.raises(AbsAuthError):
        client(url, api_key="bad").fetch_items()
    assert len(replay.requests) == 1


def test_missing_total_and_short_listing_are_reported_not_fatal():
    with serve(AbsReplay(token=TOKEN, omit_total=True)) as url:
        fetch = client(url, page_size=10).fetch_items()
    assert len(fetch.items) == 25 and "no total" in fetch.warnings[0]

    with serve(AbsReplay(token=TOKEN, lose_items=3)) as url:
        fetch = client(url, page_size=10).fetch_items()
    assert len(fetch.items) == 22 and fetch.warnings == ["Audiobooks: ABS reported 25 items but listed 22"]


def test_fingerprint_changes_when_a_book_is_added(abs_items):
    with serve(AbsReplay(token=TOKEN)) as url:
        before = client(url).library_fingerprint()
        assert client(url).library_fingerprint() == before
    new = copy.deepcopy(abs_items[0])
    new.update(id="new-book", addedAt=abs_items[0]["addedAt"] + 10**9)
    with serve(AbsReplay(token=TOKEN, items=[*abs_items, new])) as url:
        after = client(url).library_fingerprint()
    assert after != before and ":26:new-book:" in after
