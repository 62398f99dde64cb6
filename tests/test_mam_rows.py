"""Parsing MAM search rows into releases: pure functions, fixture rows plus hand-made breakage."""

import pytest

from mamcrawler.mam_rows import MIN_SEED_TIME_S, release_from_mam_row
from mamcrawler.releases import parse_size
from resources.replay.recorded import load


def rows(name):
    return {row["id"]: row for row in load("mam", name)["data"]}


WAY_OF_KINGS = rows("search_way_of_kings.json")


def test_a_full_row():
    release = release_from_mam_row(WAY_OF_KINGS[1100101])
    assert release.indexer == "mam" and release.release_id == "1100101"
    assert release.title == "The Way of Kings"
    assert release.authors == ("Brandon Sanderson",)
    assert release.narrators == ("Michael Kramer", "Kate Reading")
    assert release.series == (("The Stormlight Archive", "1"),)
    assert release.size_bytes == parse_size("1.26 GiB") and release.num_files == 1
    assert release.filetype == "m4b" and release.language == "ENG"
    assert release.vip and release.fl_vip and not release.free and not release.personal_freeleech
    assert release.is_freeleech(user_is_vip=True) and not release.is_freeleech(user_is_vip=False)
    assert release.seeders == 212 and release.leechers == 3 and release.added == "2021-04-02 17:21:09"
    assert release.download_url == "/tor/download.php?tid=1100101" and release.magnet is None
    assert release.min_ratio == 1.0 and release.min_seed_time_s == MIN_SEED_TIME_S
    assert not release.abridged and release.isbn is None


def test_isbn_number_asin_and_personal_flags():
    assert release_from_mam_row(WAY_OF_KINGS[1100102]).isbn == "9780765326355"
    personal = release_from_mam_row(WAY_OF_KINGS[1100103])
    assert personal.isbn == "B0TEST0001" and personal.personal_freeleech and personal.my_snatched


def test_empty_narrators_language_and_non_ascii():
    german = release_from_mam_row(WAY_OF_KINGS[1100104])
    assert german.narrators == () and german.language == "GER" and german.title == "Der Weg der Könige"
    polish = release_from_mam_row(rows("search_solaris_lem.json")[1100502])
    assert polish.authors == ("Stanisław Lem",) and polish.language == "POL" and polish.series == ()


def test_series_entities_ranges_and_several_series():
    assert release_from_mam_row(rows("search_dark_forest_liu.json")[1100701]).series == (
        ("Remembrance of Earth's Past", "2"),
    )
    mistborn = rows("search_mistborn_trilogy.json")
    assert release_from_mam_row(mistborn[1100201]).series == (("Mistborn", "1 - 3"),)
    assert release_from_mam_row(mistborn[1100203]).series == (("Mistborn", "4"), ("Wax and Wayne", "1"))


def test_abridged_from_browseflags_or_tags_but_not_unabridged():
    hobbit = rows("search_the_hobbit.json")
    assert [release_from_mam_row(r).abridged for r in hobbit.values()] == [False, False, False, True]
    tagged_only = {**hobbit[1100404], "browseflags": 0}
    assert release_from_mam_row(tagged_only).abridged
    assert not release_from_mam_row({**hobbit[1100402], "tags": "Unabridged | mp3"}).abridged


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, True), ("1", True), ("yes", True), (True, True), (0, False), ("0", False), (None, False)],
)
def test_flags_tolerate_strings_and_bools(value, expected):
    assert release_from_mam_row({**WAY_OF_KINGS[1100101], "free": value}).free is expected


def test_loose_values():
    row = {"id": "42", "title": 1984, "filetype": "MP3 m4b", "size": "", "seeders": "7", "isbn": 12.0}
    release = release_from_mam_row(row)
    assert release.release_id == "42" and release.title == "1984" and release.filetype == "mp3"
    assert release.size_bytes is None and release.seeders == 7 and release.isbn == "12"
    assert release.authors == release.narrators == release.series == () and release.language is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": None}, "missing_id"),
        ({"id": "abc"}, "missing_id"),
        ({"title": ""}, "missing_title"),
        ({"title": None}, "missing_title"),
        ({"author_info": "{not json"}, "bad_author_info"),
        ({"narrator_info": '["A Narrator"]'}, "bad_narrator_info"),
        ({"series_info": '{"1": "no sequence list"}'}, "bad_series_info"),
    ],
)
def test_malformed_rows_name_the_reason(change, reason):
    with pytest.raises(ValueError, match=f"^{reason}$"):
        release_from_mam_row({**WAY_OF_KINGS[1100101], **change})


def test_every_fixture_row_parses():
    for name in [e["file"] for e in load("mam", "_index.json") if e["file"].startswith("search_")]:
        for row in load("mam", name).get("data") or []:
            assert release_from_mam_row(row).release_id == str(row["id"])
