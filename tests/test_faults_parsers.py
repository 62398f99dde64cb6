"""Every parser of outside data is total: only its module's documented errors escape.

The named cases are the ones reproduced against main (issue 11); the hypothesis tests cover
the classes around them: any JSON value where a field is expected, numbers past every limit,
lone surrogates, deep nesting, any bytes as a .torrent, any text as a name or a feed.
"""

import contextlib
import io
import json
from types import SimpleNamespace
from xml.sax.saxutils import escape, quoteattr

import httpx
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamcrawler.candidates import BookQuery
from mamcrawler.importing import UnsafeName, safe_component
from mamcrawler.library import MAX_DESCRIPTION_CHARS, Skipped, normalise_library, snapshot_rows
from mamcrawler.mam_rows import release_from_mam_row
from mamcrawler.positions import format_position
from mamcrawler.release_score import release_filetype
from mamcrawler.releases import Release
from mamcrawler.torrents import InvalidTorrent, info_hash, torrent_files
from mamcrawler.torznab_items import FeedError, releases_from_feed
from resources.audible import ReplayAudibleProvider
from resources.audiobookshelf import AbsError, AudiobookshelfResource
from resources.audnexus import ReplayAudnexusProvider
from resources.custom_provider import ReplayCustomProviderServer
from resources.google_books import ReplayGoogleBooksProvider
from resources.hardcover import ReplayHardcoverProvider
from resources.openlibrary import ReplayOpenLibraryProvider
from resources.replay.abs import AbsReplay
from tests.bencode import bencode
from tests.servers import serve

HOSTILE_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["\ud800", "a\udfffb", "  ", "", "\x00", "9" * 400, "Infinity", "NaN", "-1", "1e400", "../.."]),
)
HOSTILE_NUMBER = st.one_of(
    st.integers(), st.integers(min_value=10**30, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
)
JSON = st.recursive(
    st.none() | HOSTILE_NUMBER | HOSTILE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(HOSTILE_TEXT, inner, max_size=4),
    max_leaves=12,
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _book(**meta):
    return {"id": "li_1", "mediaType": "book", "libraryId": "lib", "media": {"metadata": {"title": "Dune", **meta}}}


def normalised(items):
    skipped = Skipped()
    return normalise_library(snapshot_rows(items, skipped), skipped), skipped


# --- ABS items ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "item, repaired",
    [
        (_book(series=[{"name": 5, "sequence": "1"}]), None),  # a series name that is a number
        ({**_book(), "media": {"duration": "abc", "metadata": {"title": "Dune"}}}, "duration_not_a_number"),
        (_book(title="Du\ud800ne"), "invalid_unicode_replaced"),
        ({**_book(), "size": "big", "addedAt": 1e30}, "size_not_a_number"),
    ],
    ids=["numeric_series_name", "duration_abc", "lone_surrogate", "size_and_timestamp"],
)
def test_a_malformed_item_is_repaired_with_a_counted_reason_and_the_rest_kept(abs_items, item, repaired):
    books, skipped = normalised([*abs_items, item])
    assert books.height == len(abs_items) + 1 and skipped.total == 0
    if repaired:
        assert skipped.repaired[repaired] == 1
    books.write_parquet(io.BytesIO())  # what is kept can be stored


def test_a_50mb_description_is_cut_to_size():
    books_frame = snapshot_rows([_book(description="x" * 50_000_000)], skipped := Skipped())
    assert len(books_frame["description"][0]) == MAX_DESCRIPTION_CHARS
    assert skipped.repaired["field_cut_to_size"] == 1


@FUZZ
@given(st.lists(JSON | st.dictionaries(st.sampled_from(["id", "media", "mediaType", "size", "addedAt"]), JSON), max_size=4),
       st.dictionaries(st.sampled_from(["title", "series", "authors", "narrators", "publishedYear", "description",
                                        "genres", "isbn", "asin", "abridged"]), JSON))
def test_any_item_shape_is_kept_or_skipped_never_raises(items, meta):
    items = [*items, _book(**meta), {"id": "li_2", "media": {"duration": meta.get("title"), "metadata": meta}}]
    books, skipped = normalised(items)
    assert books.height + skipped.total >= 1
    assert books.schema["item_id"] == pl.Utf8


# --- ABS paging -------------------------------------------------------------------------------


class SamePageForever(AbsReplay):
    def _items(self, library_id, params):
        return super()._items(library_id, httpx.QueryParams({**dict(params), "page": "0"}))


class EndlessFreshIds(AbsReplay):
    """Every page has new ids and a `total` of 25: a listing that never ends on its own."""

    def _items(self, library_id, params):
        page = int(params.get("page", 0))
        rows = [{"id": f"li_{page}_{i}", "libraryId": library_id} for i in range(int(params.get("limit", 1)))]
        return httpx.Response(200, json={"results": rows, "total": 25})


@pytest.mark.parametrize("replay, warning", [(SamePageForever, "same page again"), (EndlessFreshIds, "past the 25 items")])
def test_paging_is_bounded(replay, warning):
    handler = replay(token="k")
    with serve(handler) as url:
        fetch = AudiobookshelfResource(base_url=url, api_key="k", page_size=10).fetch_items()
    pages = sum(1 for r in handler.requests if r.endswith("/items"))
    assert pages <= 5, pages
    assert any(warning in w for w in fetch.warnings)


@pytest.mark.parametrize("body", [[1, 2], "text", 7, {"libraries": "x"}, {"libraries": [{"id": 3}, "x"]}])
def test_an_abs_answer_of_the_wrong_shape_is_an_abs_error_or_no_library(body):
    def handler(request):
        return httpx.Response(200, json=body)

    with serve(handler) as url:
        try:
            fetch = AudiobookshelfResource(base_url=url, api_key="k").fetch_items()
        except AbsError:
            return
    assert fetch.libraries == []


# --- MAM rows -------------------------------------------------------------------------------


BASE_ROW = {"id": 7, "title": "Dune"}


@pytest.mark.parametrize(
    "change",
    [{"size": [1]}, {"size": float("inf")}, {"size": "9" * 400}, {"size": "9" * 400 + " MiB"},
     {"author_info": "[" * 100_000 + "]" * 100_000}, {"series_info": '{"a":' * 5000 + "1" + "}" * 5000},
     {"id": "9" * 5000}, {"seeders": float("nan")}, {"title": float("inf")}],
    ids=["size_list", "size_inf", "size_400_digits", "size_400_digits_unit", "nested_author", "nested_series",
         "id_5000_digits", "seeders_nan", "title_inf"],
)
def test_a_malformed_mam_row_is_a_value_error_or_a_release(change):
    try:
        release = release_from_mam_row({**BASE_ROW, **change})
    except ValueError as exc:
        assert len(str(exc)) < 60  # a short counted reason, not a traceback
        return
    assert release.size_bytes is None or 0 <= release.size_bytes < 2**63


@FUZZ
@given(st.dictionaries(st.sampled_from(["id", "title", "size", "author_info", "narrator_info", "series_info",
                                         "filetype", "seeders", "numfiles", "free", "browseflags", "isbn", "added",
                                         "lang_code", "tags"]), JSON))
def test_any_mam_row_is_a_release_or_a_value_error(row):
    with contextlib.suppress(ValueError):
        release_from_mam_row({**BASE_ROW, **row})


# --- Torznab feeds ----------------------------------------------------------------------------


def _feed(items: str) -> str:
    return f'<rss xmlns:torznab="http://torznab.com/schemas/2015/feed"><channel>{items}</channel></rss>'


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["title", "link", "size", "guid", "pubDate", "torznab:attr", "enclosure"]),
                          HOSTILE_TEXT.filter(lambda t: "\ud800" not in t and "\udfff" not in t)), max_size=6),
       st.sampled_from(["seeders", "peers", "size", "downloadvolumefactor", "infohash", "magneturl", "minimumseedtime"]))
def test_any_torznab_feed_is_releases_or_a_feed_error(fields, attr_name):
    parts = []
    for tag, text in fields:
        if tag == "torznab:attr":
            parts.append(f"<torznab:attr name={quoteattr(attr_name)} value={quoteattr(text)}/>")
        elif tag == "enclosure":
            parts.append(f"<enclosure url={quoteattr(text)} length={quoteattr(text)}/>")
        else:
            parts.append(f"<{tag}>{escape(text)}</{tag}>")
    try:
        releases, skipped = releases_from_feed(_feed("<item>" + "".join(parts) + "</item>"), "x")
    except FeedError:
        return
    assert len(releases) + sum(skipped.values()) == 1


@pytest.mark.parametrize("body", ["\ud800", "<rss>" + "<a>" * 100_000, b"\xff\xfe", "<!DOCTYPE x [<!ENTITY a 'b'>]><rss/>"])
def test_a_hostile_feed_body_is_a_feed_error_or_empty(body):
    with contextlib.suppress(FeedError):
        assert releases_from_feed(body, "x")[0] == []


# --- bencode, names, small helpers --------------------------------------------------------------


def test_a_huge_bencode_integer_is_an_invalid_torrent():
    torrent = b"d4:infod6:lengthi" + b"9" * 5000 + b"e4:name1:a12:piece lengthi16384e6:pieces20:" + b"a" * 20 + b"ee"
    with pytest.raises(InvalidTorrent):
        torrent_files(torrent)


BENCODE = st.recursive(
    st.integers(min_value=-(10**30), max_value=10**30) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.binary(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@FUZZ
@given(st.one_of(st.binary(max_size=200), BENCODE.map(bencode),
                 st.dictionaries(st.sampled_from([b"name", b"length", b"files", b"pieces", b"path"]), BENCODE)
                 .map(lambda info: bencode({b"info": {b"pieces": b"a" * 20, **info}}))))
def test_any_bytes_are_a_torrent_or_invalid_torrent(data):
    for parse in (info_hash, torrent_files):
        with contextlib.suppress(InvalidTorrent):
            parse(data)


@FUZZ
@given(HOSTILE_TEXT | st.text(alphabet=st.characters(), max_size=300))
def test_any_text_is_a_safe_name_or_unsafe_name(name):
    try:
        safe = safe_component(name)
    except UnsafeName:
        return
    assert safe and "/" not in safe and len(safe.encode()) <= 200


def test_named_helpers_are_total():
    with pytest.raises(UnsafeName):
        safe_component("ab\ud800c")
    assert release_filetype(Release(indexer="mam", release_id="1", title="x", filetype="  ")) is None
    assert format_position(float("inf")) == "inf" and format_position(float("nan")) == "nan"


# --- provider answers -------------------------------------------------------------------------

# Not a threading.local: `enrich` asks from its pool's threads, where a local has no `body`
# (every answer was an AttributeError, counted as an error, and these tests could not fail).
_ANSWER = SimpleNamespace(body=b"")


def _hostile_transport(self):
    def handler(request):
        return httpx.Response(200, content=_ANSWER.body, headers={"Content-Type": "application/json"})

    return httpx.MockTransport(handler)


PROVIDERS = [ReplayAudibleProvider, ReplayAudnexusProvider, ReplayGoogleBooksProvider, ReplayHardcoverProvider,
             ReplayOpenLibraryProvider]
HOSTILE_PROVIDERS = [type(f"Hostile{p.__name__}", (p,), {"_transport": _hostile_transport}) for p in PROVIDERS]
HOSTILE_PROVIDERS.append(type("HostileCustom", (ReplayCustomProviderServer,), {"_transport": _hostile_transport}))
QUERY = BookQuery("item-1", "Dune", "Frank Herbert", isbn="9780441013593", asin="B002V1OF70", duration_s=3600.0)


@pytest.mark.parametrize("provider_class", HOSTILE_PROVIDERS, ids=lambda c: c.__name__)
@FUZZ
@given(answer=JSON | st.dictionaries(st.sampled_from(["items", "products", "docs", "matches", "data", "books",
                                                       "title", "asin", "series", "authors"]), JSON))
def test_any_provider_answer_is_candidates_or_a_counted_error(provider_class, answer):
    try:
        _ANSWER.body = json.dumps(answer).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        return
    provider = provider_class(**({"server_name": "fuzz"} if "Custom" in provider_class.__name__ else {}))
    found, stats, errors = provider.enrich([QUERY])
    assert "item-1" in found or (stats.errors == 1 and len(errors) == 1)


def test_a_deeply_nested_provider_answer_is_a_counted_error():
    _ANSWER.body = b"[" * 100_000 + b"]" * 100_000
    found, stats, errors = HOSTILE_PROVIDERS[2]().enrich([QUERY])
    assert found == {} and stats.errors == 1 and errors


@pytest.mark.parametrize("title", [b"NaN", b"5", b"[1]", b'{"a": 1}'])
def test_a_provider_title_that_is_not_text_costs_that_candidate_only(title):
    """Found by `bench faults` (parsers.provider_bad_bytes): Google's `"title": NaN` raised
    AttributeError out of `enrich`, failing the whole provider step."""
    _ANSWER.body = b'{"items": [{"volumeInfo": {"title": ' + title + b'}}, {"volumeInfo": {"title": "Dune"}}]}'
    found, _, errors = HOSTILE_PROVIDERS[2]().enrich([QUERY])
    assert [c.title for c in found["item-1"]] == ["Dune"] and not errors


def test_an_integer_past_pythons_limit_costs_its_row_not_the_search():
    """Found by `bench faults` (parsers.mam_id_5000_digits): valid JSON with a 5,000-digit
    number failed `json.loads`, so one row lost the whole MAM search."""
    from resources.secrets import scrubbed_json

    body = scrubbed_json(httpx.Response(200, content=b'{"data": [{"id": ' + b"9" * 5000 + b'}, {"id": 7}]}'))
    assert body["data"][0]["id"] == "9" * 5000 and body["data"][1]["id"] == 7


@pytest.mark.parametrize("size", ["-1", "1e30", str(2**63)])
def test_a_torznab_size_no_file_has_is_no_size(size):
    """Found by `bench faults` (parsers.torznab_bad_items_among_good): `<size>-1</size>` was
    kept as -1 bytes, and 1e30 as a number no Int64 column holds."""
    item = f"<item><title>Dune</title><guid>g</guid><link>http://x/g.torrent</link><size>{size}</size></item>"
    [release], _ = releases_from_feed(_feed(item), "x")
    assert release.size_bytes is None
