import json
from dataclasses import replace

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from mamcrawler.release_score import (
    RELEASE_CANDIDATE_SCHEMA,
    ReleasePreferences,
    WantedBook,
    candidate_frame,
    choose_release,
    rank_releases,
    release_score,
)
from mamcrawler.releases import Release, parse_size
from resources.replay.recorded import load

GIB = 1024**3
MIB = 1024**2


def _inner(text: str) -> dict:
    return json.loads(text) if text else {}


def mam_releases(name: str) -> list[Release]:
    """The rows of a recorded MAM search, read the plain way (JSON-in-string fields, int flags)."""
    return [
        Release(
            indexer="mam",
            release_id=str(row["id"]),
            title=row["title"],
            authors=tuple(_inner(row["author_info"]).values()),
            narrators=tuple(_inner(row["narrator_info"]).values()),
            series=tuple((name, seq) for name, seq in _inner(row["series_info"]).values()),
            filetype=row["filetype"],
            size_bytes=parse_size(row["size"]),
            num_files=row["numfiles"],
            tags=row["tags"],
            seeders=row["seeders"],
            leechers=row["leechers"],
            language=row["lang_code"],
            free=row["free"] == 1,
            personal_freeleech=row["personal_freeleech"] == 1,
            vip=row["vip"] == 1,
            fl_vip=row["fl_vip"] == 1,
            my_snatched=row["my_snatched"] == 1,
            abridged=bool(row["browseflags"] & 32),
            download_url=f"https://www.myanonamouse.net/t/{row['id']}",
        )
        for row in load("mam", name)["data"]
    ]


def by_id(ranked):
    return {s.release.release_id: s for s in ranked}


WAY_OF_KINGS = WantedBook(
    "m-wok",
    "The Way of Kings",
    "Brandon Sanderson",
    series="The Stormlight Archive",
    position=1.0,
    position_label="1",
    expected_duration_s=45.5 * 3600,
    owned_narrators=("Michael Kramer", "Kate Reading"),
    owned_positions=frozenset({2.0, 3.0}),
    missing_positions=frozenset({1.0}),
)
TITANS_CURSE = WantedBook(
    "m-pj3",
    "The Titan's Curse",
    "Rick Riordan",
    series="Percy Jackson & the Olympians",
    position=3.0,
    position_label="3",
    expected_duration_s=10 * 3600,
    owned_positions=frozenset({1.0, 2.0, 4.0, 5.0}),
    missing_positions=frozenset({3.0}),
)
CIBOLA_BURN = WantedBook(
    "m-exp4",
    "Cibola Burn",
    "James S.A. Corey",
    series="The Expanse",
    position=4.0,
    position_label="4",
    expected_duration_s=20.3 * 3600,
    owned_narrators=("Jefferson Mays",),
    owned_positions=frozenset({1.0, 2.0, 3.0}),
    missing_positions=frozenset({4.0, 5.0}),
)
HOBBIT = WantedBook("m-hob", "The Hobbit", "Tolkien, J.R.R.", line="standalone", expected_duration_s=11 * 3600)


def mistborn(title: str, position: float, owned: set[float], missing: set[float]) -> WantedBook:
    return WantedBook(
        f"m-mb{position:g}",
        title,
        "Brandon Sanderson",
        series="Mistborn",
        position=position,
        position_label=f"{position:g}",
        expected_duration_s=25 * 3600,
        owned_positions=frozenset(owned),
        missing_positions=frozenset(missing),
    )


def hand(release_id: str = "1", indexer: str = "mam", **kw) -> Release:
    """A plain, acceptable release of The Hobbit; tests change one thing at a time."""
    base = {
        "title": "The Hobbit",
        "authors": ("J. R. R. Tolkien",),
        "narrators": ("Andy Serkis",),
        "filetype": "m4b",
        "size_bytes": 300 * MIB,
        "tags": "Unabridged | 64kbps | m4b",
        "seeders": 20,
        "language": "ENG",
    }
    return Release(indexer, release_id, **(base | kw))


# --- the recorded MAM searches ------------------------------------------------------------


def test_way_of_kings_vip_user_takes_the_vip_freeleech_m4b():
    prefs = ReleasePreferences(user_is_vip=True)
    ranked = rank_releases(WAY_OF_KINGS, mam_releases("search_way_of_kings.json"), prefs)
    chosen, why = choose_release(ranked)
    assert chosen is not None and chosen.release.release_id == "1100101"
    assert {"title 100", "author 100", "m4b (1st choice)", "freeleech (VIP)", "212 seeders"} <= set(chosen.reasons)
    assert "narrator Michael Kramer as owned" in chosen.reasons
    assert "series The Stormlight Archive #1" in chosen.reasons
    assert chosen.covers == (1.0,) and 60 < chosen.bitrate_kbps < 70  # 1.26 GiB over 45.5 h
    assert why.startswith("best of 2 acceptable releases: m4b, freeleech") and why.endswith("212 seeders")

    rows = by_id(ranked)
    assert rows["1100103"].rejection == "my_snatched" and not rows["1100103"].accepted
    assert rows["1100104"].rejection == "language GER"  # Der Weg der Könige: same position, other language
    assert rows["1100105"].rejection == "dramatised"  # GraphicAudio part 1 of 6
    assert rows["1100102"].accepted
    # Accepted first, then rejected, each by score.
    assert [s.accepted for s in ranked] == [True, True, False, False, False]
    assert ranked[2].score >= ranked[3].score >= ranked[4].score


def test_way_of_kings_non_vip_freeleech_only_takes_the_global_free_mp3():
    prefs = ReleasePreferences(user_is_vip=False, freeleech_only=True)
    ranked = rank_releases(WAY_OF_KINGS, mam_releases("search_way_of_kings.json"), prefs)
    chosen, why = choose_release(ranked)
    assert chosen is not None and chosen.release.release_id == "1100102"
    assert "freeleech" in chosen.reasons and "mp3 (3rd choice)" in chosen.reasons
    assert by_id(ranked)["1100101"].rejection == "not freeleech"  # VIP-FL only frees VIP users
    assert "VIP torrent (costs ratio)" in by_id(ranked)["1100101"].reasons
    assert why == "best of 1 acceptable release: mp3, freeleech, narrator Michael Kramer as owned, 57 seeders"


def test_a_vip_torrent_is_fine_for_a_non_vip_user_without_freeleech_only():
    rows = by_id(rank_releases(WAY_OF_KINGS, mam_releases("search_way_of_kings.json"), ReleasePreferences()))
    assert rows["1100101"].accepted and "VIP torrent (costs ratio)" in rows["1100101"].reasons
    # It just costs ratio, so the freeleech mp3 now ranks above it.
    assert rows["1100102"].score > rows["1100101"].score


def test_percy_jackson_3_is_the_titans_curse_not_another_series_3_nor_the_5():
    ranked = rank_releases(TITANS_CURSE, mam_releases("search_percy_jackson_book_3.json"), ReleasePreferences())
    chosen, _ = choose_release(ranked)
    assert chosen is not None and chosen.release.release_id == "1100301"
    assert "series Percy Jackson and the Olympians #3" in chosen.reasons
    rows = by_id(ranked)
    assert rows["1100302"].rejection == "sequel number 5 not 3"  # "... Book 5)"
    # #3 of The Heroes of Olympus / The Trials of Apollo: the position agrees, the series and title do not.
    for other in ("1100303", "1100304"):
        assert not rows[other].accepted and rows[other].rejection.startswith("title ")
        assert any(r.startswith("other series ") for r in rows[other].reasons)


def test_a_gap_without_a_title_matches_on_series_and_position_only():
    untitled = replace(TITANS_CURSE, title=None)
    ranked = rank_releases(untitled, mam_releases("search_percy_jackson_book_3.json"), ReleasePreferences())
    rows = by_id(ranked)
    assert ranked[0].release.release_id == "1100301" and ranked[0].accepted
    assert rows["1100303"].rejection == "not Percy Jackson & the Olympians #3"
    assert rows["1100304"].rejection == "not Percy Jackson & the Olympians #3"
    assert rows["1100302"].rejection == "sequel number 5 not 3"


def test_expanse_4_takes_the_book_4_title_and_rejects_book_5():
    releases = mam_releases("search_expanse_page1.json") + mam_releases("search_expanse_page2.json")
    ranked = rank_releases(CIBOLA_BURN, releases, ReleasePreferences())
    chosen, _ = choose_release(ranked)
    assert chosen is not None and chosen.release.release_id == "1100604"  # "Cibola Burn: Book 4 of the Expanse"
    assert "title 100" in chosen.reasons and "narrator Jefferson Mays as owned" in chosen.reasons
    rows = by_id(ranked)
    assert rows["1100605"].rejection == "sequel number 5 not 4"  # "Nemesis Games (The Expanse, Book 5)"
    assert rows["1100607"].rejection == "wrong series position 2.5"  # the novella
    assert [s.release.release_id for s in ranked if s.accepted] == ["1100604"]


def test_mistborn_omnibus_is_rejected_when_it_would_fetch_an_owned_book():
    book = mistborn("The Well of Ascension", 2.0, owned={1.0}, missing={2.0, 3.0})
    ranked = rank_releases(book, mam_releases("search_mistborn_trilogy.json"), ReleasePreferences())
    rows = by_id(ranked)
    assert rows["1100201"].rejection == "omnibus covers owned 1"
    assert rows["1100201"].covers == (1.0, 2.0, 3.0)
    assert rows["1100202"].rejection == "wrong series position 3"
    chosen, why = choose_release(ranked)
    assert chosen is None
    assert why == "no acceptable release among 3: 2 wrong series position, 1 omnibus covers owned"


def test_mistborn_omnibus_is_accepted_when_the_whole_range_is_missing():
    book = mistborn("The Final Empire", 1.0, owned=set(), missing={1.0, 2.0, 3.0})
    ranked = rank_releases(book, mam_releases("search_mistborn_trilogy.json"), ReleasePreferences())
    chosen, why = choose_release(ranked)
    assert chosen is not None and chosen.release.release_id == "1100201"
    assert "omnibus covers 1, 2, 3 (all missing)" in chosen.reasons and chosen.covers == (1.0, 2.0, 3.0)
    # The bitrate of an omnibus is its size over the runtime of all the books it holds.
    assert 100 < chosen.bitrate_kbps < 150
    assert "omnibus covers 1, 2, 3 (all missing)" in why
    # A range reaching beyond what is known to be missing is not taken on trust either.
    partly = mistborn("The Final Empire", 1.0, owned=set(), missing={1.0, 2.0})
    assert by_id(rank_releases(partly, mam_releases("search_mistborn_trilogy.json"), ReleasePreferences()))[
        "1100201"
    ].rejection == "omnibus covers 3 not missing"


def test_a_book_in_two_series_matches_either():
    wax = WantedBook("m-ww1", "The Alloy of Law", "Brandon Sanderson", series="Wax and Wayne", position=1.0)
    scored = by_id(rank_releases(wax, mam_releases("search_mistborn_trilogy.json"), ReleasePreferences()))
    assert scored["1100203"].accepted and "series Wax and Wayne #1" in scored["1100203"].reasons


def test_the_hobbit_standalone_rejects_the_abridged_and_the_bbc_dramatisation():
    prefs = ReleasePreferences(user_is_vip=True)
    ranked = rank_releases(HOBBIT, mam_releases("search_the_hobbit.json"), prefs)
    rows = by_id(ranked)
    assert rows["1100404"].rejection == "abridged"
    assert rows["1100403"].rejection == "dramatised"
    assert rows["1100401"].accepted and rows["1100402"].accepted and rows["1100401"].covers == ()
    chosen, why = choose_release(ranked)
    assert chosen is not None and chosen.release.release_id == "1100401"
    assert why == "best of 2 acceptable releases: m4b, freeleech, 301 seeders"
    # What the user allows is no longer rejected.
    allowing = ReleasePreferences(allow_abridged=True, allow_dramatised=True, min_bitrate_kbps=16)
    rows = by_id(rank_releases(HOBBIT, mam_releases("search_the_hobbit.json"), allowing))
    assert rows["1100403"].accepted and rows["1100404"].accepted


def test_solaris_takes_the_english_reading_not_the_polish():
    solaris = WantedBook("m-sol", "Solaris", "Lem, Stanisław", line="standalone", expected_duration_s=7.5 * 3600)
    ranked = rank_releases(solaris, mam_releases("search_solaris_lem.json"), ReleasePreferences())
    assert ranked[0].release.release_id == "1100501" and ranked[0].accepted
    assert by_id(ranked)["1100502"].rejection == "language POL"
    assert "author 100" in by_id(ranked)["1100502"].reasons  # "Stanis\u0142aw Lem" folds like the library's name
    anything = rank_releases(solaris, mam_releases("search_solaris_lem.json"), ReleasePreferences(languages=()))
    assert all(s.accepted for s in anything)


def test_html_entities_in_series_names_and_reversed_name_order():
    forest = WantedBook(
        "m-df", "The Dark Forest", "Liu Cixin", series="Remembrance of Earth's Past", position=2.0, position_label="2"
    )
    ranked = rank_releases(forest, mam_releases("search_dark_forest_liu.json"), ReleasePreferences())
    chosen, _ = choose_release(ranked)
    assert chosen is not None and chosen.release.release_id == "1100701"
    assert "series Remembrance of Earth's Past #2" in chosen.reasons and "author 100" in chosen.reasons
    assert by_id(ranked)["1100702"].rejection == "wrong series position 3"


# --- Torznab-shaped titles (built by hand from the recorded items) ------------------------


def test_prowlarr_titles_lose_their_suffix_and_tell_the_language():
    releases = [
        Release("prowlarr", "g1", "The Way of Kings by Brandon Sanderson [ENG / M4B] [VIP]", size_bytes=1352914698,
                seeders=212, free=True, vip=True),
        Release("prowlarr", "g4", "Der Weg der Könige by Brandon Sanderson [GER / MP3]", size_bytes=852179558, seeders=8),
        Release("prowlarr", "g5", "The Way of Kings (Part 1 of 6) [Dramatized Adaptation] by Brandon Sanderson [ENG / MP3]",
                size_bytes=373186150, seeders=33),
    ]
    rows = by_id(rank_releases(WAY_OF_KINGS, releases, ReleasePreferences()))
    assert rows["g1"].accepted and {"title 100", "author 100", "m4b (1st choice)"} <= set(rows["g1"].reasons)
    assert rows["g4"].rejection == "language GER"
    assert rows["g5"].rejection == "dramatised"
    # Allowing dramatisations does not make one sixth of one the book.
    allowing = by_id(rank_releases(WAY_OF_KINGS, releases, ReleasePreferences(allow_dramatised=True)))
    assert allowing["g5"].rejection == "multi-part 1 of 6"


def test_jackett_titles_with_series_numbers_and_a_books_range():
    corey = ("James S. A. Corey",)
    releases = [
        Release("jackett", "55501", "Leviathan Wakes - James S. A. Corey (The Expanse 1) [M4B 64kbps]", authors=corey,
                size_bytes=1095216640, seeders=214),
        Release("jackett", "55504", "Nemesis Games - James S. A. Corey (The Expanse Book 5) [M4B]", authors=corey,
                size_bytes=1095216640, seeders=50),
        Release("jackett", "55505", "The Expanse Books 1-3 - James S. A. Corey [M4B Omnibus]", authors=corey,
                size_bytes=3 * 600 * MIB, seeders=30, free=True),
    ]
    leviathan = WantedBook("m-lw", "Leviathan Wakes", "James S. A. Corey", series="The Expanse", position=1.0,
                           expected_duration_s=20 * 3600, missing_positions=frozenset({1.0, 2.0, 3.0}))
    rows = by_id(rank_releases(leviathan, releases, ReleasePreferences()))
    assert rows["55501"].accepted and "title 100" in rows["55501"].reasons
    assert "language unknown" in rows["55501"].reasons  # Jackett says nothing about it: allowed, small penalty
    assert rows["55505"].accepted and rows["55505"].covers == (1.0, 2.0, 3.0)
    assert rows["55504"].rejection == "sequel number 5 not 1" and rows["55504"].covers == (5.0,)
    owned_first = replace(leviathan, position=2.0, title="Caliban's War", owned_positions=frozenset({1.0}))
    assert by_id(rank_releases(owned_first, releases, ReleasePreferences()))["55505"].rejection == "omnibus covers owned 1"
    rows = by_id(rank_releases(CIBOLA_BURN, releases, ReleasePreferences()))
    assert rows["55505"].rejection == "sequel number 1, 3 not 4"


# --- single rules, on hand-built releases --------------------------------------------------

PREFS = ReleasePreferences()



def test_formats_rank_and_unlisted_formats_are_rejected():
    prefs = ReleasePreferences()
    m4b, mp3 = release_score(HOBBIT, hand(), prefs), release_score(HOBBIT, hand(filetype="mp3"), prefs)
    assert m4b.score > mp3.score and "mp3 (3rd choice)" in mp3.reasons
    assert release_score(HOBBIT, hand(filetype="wma"), prefs).rejection == "format wma"
    assert release_score(HOBBIT, hand(filetype="epub"), prefs).rejection == "format epub"
    inferred = release_score(HOBBIT, hand(filetype=None, tags="Unabridged | 64kbps | m4b"), prefs)
    assert inferred.accepted and "m4b (1st choice)" in inferred.reasons


def test_bitrate_from_size_and_runtime_else_from_the_tags():
    prefs = ReleasePreferences()
    starved = release_score(HOBBIT, hand(size_bytes=60 * MIB), prefs)  # 60 MiB over 11 h
    assert starved.rejection == "bitrate 13 kbps" and starved.bitrate_kbps < 24
    implausible = release_score(HOBBIT, hand(size_bytes=8 * GIB), prefs)
    assert implausible.rejection.startswith("bitrate ") and implausible.bitrate_kbps > 1500
    no_runtime = replace(HOBBIT, expected_duration_s=None)
    tagged = release_score(no_runtime, hand(tags="Unabridged | 16kbps | m4b"), prefs)
    assert tagged.bitrate_kbps == 16 and tagged.rejection == "bitrate 16 kbps" and "16 kbps (tagged)" in tagged.reasons
    unknown = release_score(no_runtime, hand(tags="Unabridged"), prefs)
    assert unknown.accepted and unknown.bitrate_kbps is None


def test_seeders_freeleech_and_the_snatched_rule():
    prefs = ReleasePreferences()
    assert release_score(HOBBIT, hand(seeders=0), prefs).rejection == "seeders 0 < 1"
    assert release_score(HOBBIT, hand(seeders=500), prefs).score > release_score(HOBBIT, hand(seeders=5), prefs).score
    free = release_score(HOBBIT, hand(free=True), prefs)
    assert free.score > release_score(HOBBIT, hand(), prefs).score and "freeleech" in free.reasons
    personal = release_score(HOBBIT, hand(personal_freeleech=True), ReleasePreferences(freeleech_only=True))
    assert personal.accepted and "personal freeleech" in personal.reasons
    assert release_score(HOBBIT, hand(), ReleasePreferences(freeleech_only=True)).rejection == "not freeleech"
    snatched = release_score(HOBBIT, hand(my_snatched=True, free=True), ReleasePreferences(allow_abridged=True))
    assert snatched.rejection == "my_snatched" and "already snatched: never grab again" in snatched.reasons


def test_abridged_and_dramatised_are_read_from_tags_titles_and_narrators():
    prefs = ReleasePreferences()
    assert release_score(HOBBIT, hand(tags="Abridged | 64kbps"), prefs).rejection == "abridged"
    assert release_score(HOBBIT, hand(tags="Unabridged | 64kbps"), prefs).accepted
    assert release_score(HOBBIT, hand(title="The Hobbit (GraphicAudio)"), prefs).rejection == "dramatised"
    assert release_score(HOBBIT, hand(narrators=("A Full Cast",)), prefs).rejection == "dramatised"


def test_unknown_language_is_allowed_with_a_small_penalty():
    known, unknown = release_score(HOBBIT, hand(), ReleasePreferences()), release_score(
        HOBBIT, hand(language=None), ReleasePreferences()
    )
    assert unknown.accepted and known.score - unknown.score == 3.0


def test_wrong_author_and_low_score_are_rejections():
    prefs = ReleasePreferences()
    other = release_score(HOBBIT, hand(authors=("Terry Pratchett",)), prefs)
    assert other.rejection.startswith("author ") and not other.accepted
    strict = release_score(HOBBIT, hand(), ReleasePreferences(min_score=99.5))
    assert strict.rejection.startswith("score ") and not strict.accepted


def test_a_standalone_rejects_another_volume_and_any_omnibus():
    prefs = ReleasePreferences()
    assert release_score(HOBBIT, hand(title="The Hobbit 2"), prefs).rejection == "sequel number 2 not none"
    assert release_score(HOBBIT, hand(title="The Hobbit and The Lord of the Rings Box Set"), prefs).rejection == "omnibus"
    assert release_score(HOBBIT, hand(title="Hobbit, The"), prefs).accepted
    box = release_score(HOBBIT, hand(title="The Hobbit Box Set"), prefs)
    assert box.rejection == "omnibus" and box.covers == ()
    trilogy = WantedBook("m-lw", "Leviathan Wakes", "James S. A. Corey", series="The Expanse", position=1.0)
    unknown_range = release_score(trilogy, hand(title="The Expanse Trilogy", authors=("James S. A. Corey",)), prefs)
    assert unknown_range.rejection == "omnibus" and unknown_range.covers == ()


def test_a_subtitled_wanted_title_matches_the_main_title_alone_at_most_90():
    subtitled = replace(HOBBIT, title="The Hobbit, or There and Back Again")
    ranked = rank_releases(subtitled, mam_releases("search_the_hobbit.json"), ReleasePreferences(user_is_vip=True))
    chosen, _ = choose_release(ranked)
    assert chosen is not None and chosen.release.release_id == "1100401"
    assert "title 90 (main title)" in chosen.reasons
    full = release_score(subtitled, hand(title="The Hobbit, or There and Back Again"), PREFS)
    main = release_score(subtitled, hand(title="The Hobbit"), PREFS)
    assert "title 100" in full.reasons and full.score > main.score  # the same copy under the full title ranks first
    hail_mary = WantedBook("m-phm", "Project Hail Mary: A Novel", "Andy Weir")
    scored = release_score(hail_mary, hand(title="Project Hail Mary", authors=("Andy Weir",)), PREFS)
    assert scored.accepted and "title 90 (main title)" in scored.reasons
    spaced = WantedBook("m-ps", "Leviathan Wakes - The Expanse Book One", "James S. A. Corey")
    assert "title 90 (main title)" in release_score(
        spaced, hand(title="Leviathan Wakes", authors=("James S. A. Corey",)), PREFS
    ).reasons


def test_a_main_title_that_is_the_series_name_or_a_near_miss_does_not_count():
    hero = WantedBook("m-hoa", "Mistborn: The Hero of Ages", "Brandon Sanderson", series="Mistborn")
    mistborn_one = hand(title="Mistborn", authors=("Brandon Sanderson",))
    assert release_score(hero, mistborn_one, PREFS).rejection.startswith("title ")
    odyssey = WantedBook("m-2001", "2001: A Space Odyssey", "Arthur C. Clarke")
    sequel = release_score(odyssey, hand(title="2010", authors=("Arthur C. Clarke",)), PREFS)
    assert sequel.rejection.startswith("title ") and not any("main title" in r for r in sequel.reasons)
    # The part after the series prefix was already the title.
    final = WantedBook("m-fe", "Mistborn: The Final Empire", "Brandon Sanderson", series="Mistborn")
    assert "title 100" in release_score(
        final, hand(title="The Final Empire", authors=("Brandon Sanderson",)), PREFS
    ).reasons


def test_one_part_of_a_split_upload_is_rejected_whatever_is_known_of_the_runtime():
    stormlight = (("The Stormlight Archive", "1"),)
    sanderson = ("Brandon Sanderson",)
    titles = [
        "The Way of Kings, Part 1",
        "The Way of Kings Part One",
        "The Way of Kings Pt. 1",
        "The Way of Kings (1 of 2)",
        "The Way of Kings: Book One of the Stormlight Archive, Part 1",
    ]
    for book in (WAY_OF_KINGS, replace(WAY_OF_KINGS, expected_duration_s=None)):
        for title in titles:
            scored = release_score(book, hand(title=title, authors=sanderson, series=stormlight), PREFS)
            assert scored.rejection == "split part 1", title
            assert not any(r.startswith("sequel number") for r in scored.reasons), title
    second = release_score(
        WAY_OF_KINGS, hand(title="The Way of Kings (2 of 2)", authors=sanderson, series=stormlight), PREFS
    )
    assert second.rejection == "split part 2"
    radiance = WantedBook("m-wor", "Words of Radiance", "Brandon Sanderson", "The Stormlight Archive", 2.0, "2")
    halves = [hand(str(i), title=t, authors=sanderson, series=(("The Stormlight Archive", "2"),))
              for i, t in enumerate(["Words of Radiance (1 of 2)", "Words of Radiance, Part 1", "Words of Radiance"])]
    rows = by_id(rank_releases(radiance, halves, PREFS))
    assert rows["0"].rejection == "split part 1" and rows["1"].rejection == "split part 1" and rows["2"].accepted
    # "Part 1 of 6" keeps its own, older rejection.
    assert release_score(WAY_OF_KINGS, hand(title="The Way of Kings, Part 1 of 6", authors=sanderson),
                         PREFS).rejection == "multi-part 1 of 6"


def test_a_wanted_part_is_matched_part_for_part():
    wanted = WantedBook("m-dh1", "The Way of Kings, Part 1", "Brandon Sanderson")
    sanderson = ("Brandon Sanderson",)
    assert release_score(wanted, hand(title="The Way of Kings, Part 1", authors=sanderson), PREFS).accepted
    other = release_score(wanted, hand(title="The Way of Kings, Part 2", authors=sanderson), PREFS)
    assert other.rejection == "sequel number 2 not 1"
    # Words that merely start with "part" are no part marker.
    assert release_score(HOBBIT, hand(title="The Hobbit (Partial Cast Notes)"), PREFS).rejection is None


def test_number_phrases_and_years_are_titles_not_volumes():
    orwell = ("George Orwell",)
    nineteen = WantedBook("m-1984", "1984", "George Orwell")
    for title in ("Nineteen Eighty-Four", "1984", "Nineteen Eighty-Four (Unabridged)"):
        scored = release_score(nineteen, hand(title=title, authors=orwell), PREFS)
        assert scored.accepted and "title 100" in scored.reasons, title
    words = replace(nineteen, title="Nineteen Eighty-Four")
    assert release_score(words, hand(title="1984", authors=orwell), PREFS).accepted
    catch = WantedBook("m-c22", "Catch-22", "Joseph Heller")
    assert release_score(catch, hand(title="Catch Twenty-Two", authors=("Joseph Heller",)), PREFS).accepted
    # A lone number word is still a volume: the traps stay shut.
    corey = ("James S. A. Corey",)
    nemesis = WantedBook("m-ng", "Nemesis Games", "James S. A. Corey", "The Expanse", 5.0, "5")
    book_four = release_score(nemesis, hand(title="Nemesis Games, Book Four", authors=corey), PREFS)
    assert book_four.rejection == "sequel number 4 not 5"
    remnant = WantedBook("m-r2", "Remnant II", "Somebody Else")
    third = release_score(remnant, hand(title="Remnant III", authors=("Somebody Else",)), PREFS)
    assert third.rejection == "sequel number 3 not 2"
    assert release_score(remnant, hand(title="Remnant II", authors=("Somebody Else",)), PREFS).accepted


# --- ranking, choosing, the table ----------------------------------------------------------


def test_rank_dedupes_and_breaks_ties_by_seeders_then_id():
    twin_a, twin_b, twin_c = hand("30", seeders=9), hand("20", seeders=9), hand("10", seeders=9)
    ranked = rank_releases(HOBBIT, [twin_a, twin_b, twin_a, twin_c], ReleasePreferences())
    assert [s.release.release_id for s in ranked] == ["10", "20", "30"]
    assert len({s.score for s in ranked}) == 1
    # The same id on two indexers is two releases.
    assert len(rank_releases(HOBBIT, [hand("1", indexer="prowlarr"), hand("1")], ReleasePreferences())) == 2


def test_choose_release_skips_what_failed_before_and_explains():
    ranked = rank_releases(WAY_OF_KINGS, mam_releases("search_way_of_kings.json"), ReleasePreferences(user_is_vip=True))
    chosen, why = choose_release(ranked, exclude=[("mam", "1100101")])
    assert chosen is not None and chosen.release.release_id == "1100102"
    assert why.startswith("best of 1 acceptable release (1 failed before, skipped): mp3, freeleech")
    chosen, why = choose_release(ranked, exclude={("mam", "1100101"), ("mam", "1100102")})
    assert chosen is None
    assert why == "no acceptable release among 5: 2 failed before, 1 my_snatched, 1 dramatised, 1 language GER"
    # The same id on another indexer is another release.
    assert choose_release(ranked, exclude=[("prowlarr", "1100101")])[0].release.release_id == "1100101"
    assert choose_release([]) == (None, "no release found")


def test_candidate_frame_has_the_schema_one_row_per_release_and_the_choice():
    ranked = rank_releases(
        mistborn("The Final Empire", 1.0, set(), {1.0, 2.0, 3.0}),
        mam_releases("search_mistborn_trilogy.json"),
        ReleasePreferences(),
    )
    chosen, _ = choose_release(ranked)
    frame = candidate_frame(mistborn("The Final Empire", 1.0, set(), {1.0, 2.0, 3.0}), ranked, chosen)
    assert frame.schema == pl.Schema(RELEASE_CANDIDATE_SCHEMA)
    assert frame.height == 3 and frame["rank"].to_list() == [1, 2, 3]
    top = frame.row(0, named=True)
    assert top["release_id"] == "1100201" and top["chosen"] and top["accepted"]
    assert top["covers"] == "1, 2, 3" and top["series"] == "Mistborn #1 - 3" and top["freeleech"]
    assert top["authors"] == "Brandon Sanderson" and top["filetype"] == "m4b" and top["size_bytes"] == int(3.98 * GIB)
    assert "omnibus covers 1, 2, 3 (all missing)" in top["reasons"].split("; ")
    assert frame["chosen"].sum() == 1 and set(frame["missing_id"]) == {"m-mb1"}
    alloy = frame.filter(pl.col("release_id") == "1100203").row(0, named=True)
    assert alloy["series"] == "Mistborn #4; Wax and Wayne #1" and alloy["rejection"] == "wrong series position 4"
    assert candidate_frame(HOBBIT, [], None).schema == pl.Schema(RELEASE_CANDIDATE_SCHEMA)



def test_candidate_frame_stores_magnets_without_trackers():
    xt = "urn:btih:" + "ab12" * 10
    tracker = "http%3A%2F%2Ftracker.example%2Fannounce%3Fpasskey%3DSECRET123"
    magnet = f"magnet:?xt={xt}&dn=The%20Hobbit&tr={tracker}&xs=http%3A%2F%2Fs.example%2Fx%3Fkey%3DSECRET123"
    ranked = rank_releases(
        HOBBIT,
        [hand("1", "jackett", magnet=magnet), hand("2", "jackett", magnet="magnet:?tr=only-a-tracker"), hand("3")],
        ReleasePreferences(),
    )
    frame = candidate_frame(HOBBIT, ranked, None)
    magnets = dict(zip(frame["release_id"], frame["magnet"]))
    assert magnets == {"1": f"magnet:?xt={xt}&dn=The%20Hobbit", "2": None, "3": None}
    assert "SECRET123" not in str(frame.rows())


# --- properties -----------------------------------------------------------------------------

_titles = st.sampled_from(
    ["The Hobbit", "The Hobbit (Unabridged)", "The Hobbit 2", "Hobbit, The", "The Hobbit Box Set", "Solaris", ""]
)


@st.composite
def releases(draw):
    return hand(
        draw(st.sampled_from(["1", "2", "3", "4"])),
        title=draw(_titles),
        filetype=draw(st.sampled_from(["m4b", "mp3", "flac", "wma", None])),
        size_bytes=draw(st.one_of(st.none(), st.integers(0, 20 * GIB))),
        seeders=draw(st.integers(0, 5000)),
        language=draw(st.sampled_from(["ENG", "GER", None])),
        free=draw(st.booleans()),
        personal_freeleech=draw(st.booleans()),
        vip=draw(st.booleans()),
        fl_vip=draw(st.booleans()),
        my_snatched=draw(st.booleans()),
        abridged=draw(st.booleans()),
        indexer=draw(st.sampled_from(["mam", "prowlarr"])),
    )


_prefs = st.builds(
    ReleasePreferences,
    user_is_vip=st.booleans(),
    allow_abridged=st.booleans(),
    allow_dramatised=st.booleans(),
    freeleech_only=st.booleans(),
    min_seeders=st.integers(0, 3),
)


@settings(max_examples=200, deadline=None)
@given(release=releases(), prefs=_prefs)
def test_hard_rules_always_hold(release, prefs):
    scored = release_score(HOBBIT, release, prefs)
    assert 0 <= scored.score <= 100
    assert scored.accepted == (scored.rejection is None)
    if scored.accepted:
        assert scored.score >= prefs.min_score
    if release.my_snatched:
        assert scored.rejection == "my_snatched"
    if release.language == "GER" or release.filetype == "wma" or release.seeders < prefs.min_seeders:
        assert not scored.accepted
    if release.abridged and not prefs.allow_abridged:
        assert not scored.accepted
    if prefs.freeleech_only and not release.is_freeleech(prefs.user_is_vip):
        assert not scored.accepted


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(releases(), max_size=8), prefs=_prefs, data=st.data())
def test_ranking_ignores_input_order_and_choice_is_the_best_accepted(batch, prefs, data):
    ranked = rank_releases(HOBBIT, batch, prefs)
    first_of_each = list({(r.indexer, r.release_id): r for r in reversed(batch)}.values())
    shuffled = data.draw(st.permutations(first_of_each))
    keys = [(s.release.indexer, s.release.release_id) for s in ranked]
    assert keys == [(s.release.indexer, s.release.release_id) for s in rank_releases(HOBBIT, shuffled, prefs)]
    assert len(keys) == len(set(keys))
    chosen, why = choose_release(ranked)
    accepted = [s for s in ranked if s.accepted]
    assert chosen == (accepted[0] if accepted else None)
    assert why.startswith("best of" if accepted else ("no acceptable release" if ranked else "no release found"))
