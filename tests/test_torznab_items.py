"""Torznab XML -> caps and releases, on the fixture files and on hand-made edge cases."""

import html
import re

import pytest

from mamcrawler.torznab_items import (
    MAX_FEED_BYTES,
    FeedError,
    error_from_feed,
    is_auth_error,
    parse_caps,
    public_magnet,
    public_release_id,
    redact,
    releases_from_feed,
    split_mam_title,
    strip_secrets,
)
from resources.replay.recorded import REPLAY_DIR
from resources.replay.torznab import JACKETT_KEY, PROWLARR_KEY

FIXTURES = REPLAY_DIR / "torznab"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def feed(*items: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:torznab="http://torznab.com/schemas/2015/feed" '
        'xmlns:newznab="http://www.newznab.com/DTD/2010/feeds/attributes/"><channel><title>t</title>'
        + "".join(items)
        + "</channel></rss>"
    )


def test_caps_of_mam_through_prowlarr_offer_only_q():
    caps = parse_caps(fixture("caps_mam_via_prowlarr.xml"))
    assert caps.book_search_params == {"q"} and caps.book_search
    assert caps.search_params == {"q"}
    assert caps.limit_max == 100
    assert caps.categories[3030] == "Audio/Audiobook" and caps.categories[3000] == "Audio"
    assert caps.categories[100041] == "Audiobooks - Fantasy" and caps.categories[100063] == "Ebooks - Fantasy"


def test_caps_of_a_book_indexer_offer_title_and_author():
    caps = parse_caps(fixture("caps_book_indexer.xml"))
    assert caps.book_search_params == {"q", "title", "author"}
    assert set(caps.categories) == {3000, 3030, 7000, 7020, 7030, 100013, 100041, 100047}


def test_caps_without_book_search_or_limits():
    caps = parse_caps(
        '<caps><searching><search available="yes" supportedparams="q, imdbid"/>'
        '<book-search available="no" supportedParams="q,title,author"/></searching></caps>'
    )
    assert caps.book_search_params == frozenset() and not caps.book_search
    assert caps.search_params == {"q", "imdbid"}  # attribute names are read case-insensitively
    assert caps.limit_max == 100 and caps.categories == {}


def test_caps_refuse_other_documents():
    with pytest.raises(FeedError):
        parse_caps(fixture("error_100_invalid_api_key.xml"))
    with pytest.raises(FeedError):
        parse_caps("<html><body>Prowlarr login</body>")


def test_prowlarr_mam_titles_lose_their_suffix():
    releases, skipped = releases_from_feed(fixture("search_book_prowlarr_mam_way_of_kings.xml"), "prowlarr-mam")
    assert skipped == {}
    assert [r.release_id for r in releases] == [f"https://www.myanonamouse.net/t/110010{n}" for n in range(1, 6)]
    vip = releases[0]
    assert vip.indexer == "prowlarr-mam"
    assert vip.title == "The Way of Kings" and vip.authors == ("Brandon Sanderson",)
    assert (vip.language, vip.filetype, vip.vip, vip.free) == ("ENG", "m4b", True, True)
    assert vip.size_bytes == 1352914688 and vip.num_files == 1
    assert (vip.seeders, vip.leechers) == (212, 3)
    assert vip.min_ratio == 1.0 and vip.min_seed_time_s == 259200
    assert vip.added == "2021-04-02 17:21:09"
    assert vip.info_hash is None and vip.magnet is None  # MAM gives no hash, Prowlarr invents none
    recorded_link = re.search(r"<link>(.*?)</link>", fixture("search_book_prowlarr_mam_way_of_kings.xml")).group(1)
    assert vip.download_url == html.unescape(recorded_link).replace(f"apikey={PROWLARR_KEY}&", "")
    assert vip.download_url.startswith("http://127.0.0.1:9696/5/download?link=FAKEENCRYPTEDLINK")
    assert "freeleech" in vip.tags and "Unabridged retail m4b, 64kbps" in vip.tags and not vip.abridged
    mp3, _, german, dramatized = releases[1:]
    assert (mp3.filetype, mp3.vip, mp3.free, mp3.num_files) == ("mp3", False, True, 48)
    assert (german.title, german.language, german.free) == ("Der Weg der Könige", "GER", False)
    assert dramatized.title == "The Way of Kings (Part 1 of 6) [Dramatized Adaptation]"
    assert all(PROWLARR_KEY not in repr(r) for r in releases)


def test_jackett_items_carry_hash_magnet_and_files():
    releases, skipped = releases_from_feed(fixture("search_book_jackett_expanse.xml"), "jackett")
    assert skipped == {} and len(releases) == 5
    first = releases[0]
    assert first.title == "Leviathan Wakes" and first.authors == ("James S. A. Corey",)
    assert first.release_id == "http://127.0.0.1:9117/fake-tracker/details/55501"
    assert first.info_hash == "8c5b71d209386b53fad5" + "9877bd55702c25893b61"  # split for the secret scanner
    assert first.magnet.startswith("magnet:?xt=urn:btih:8C5B71D2") and "&dn=Leviathan" in first.magnet
    assert (first.seeders, first.leechers, first.num_files, first.size_bytes) == (214, 9, 2, 1095216640)
    assert first.filetype == "m4b"  # from the title words: Jackett has no MAM suffix
    assert first.language is None and not first.vip and not first.free
    assert first.min_seed_time_s == 172800 and first.added == "2024-03-01 08:30:00"
    assert "M4B 64kbps" in first.tags
    assert first.download_url == (
        "http://127.0.0.1:9117/dl/exampleaudiotracker/?path=FAKEPATH55501"
        "&file=Leviathan%20Wakes%20-%20James%20S.%20A.%20Corey%20%28The%20Expanse%201%29%20%5BM4B%2064kbps%5D"
    )
    assert [r.free for r in releases] == [False, True, True, False, True]
    omnibus = releases[-1]
    assert omnibus.title == "The Expanse Books 1-3" and omnibus.num_files == 3
    assert all(JACKETT_KEY not in repr(r) for r in releases)


def test_empty_answer_has_no_releases():
    assert releases_from_feed(fixture("search_book_empty.xml"), "x") == ([], {})


def test_error_documents():
    assert error_from_feed(fixture("error_100_invalid_api_key.xml")) == (100, "Invalid API Key")
    assert error_from_feed(fixture("error_100_incorrect_user_credentials.xml")) == (100, "Incorrect user credentials")
    assert error_from_feed(fixture("error_200_missing_parameter_t.xml")) == (200, "Missing parameter (t)")
    assert error_from_feed(fixture("search_book_empty.xml")) is None
    assert error_from_feed("not xml at all") is None
    assert is_auth_error(100) and is_auth_error(199) and not is_auth_error(200)
    with pytest.raises(FeedError, match="error document"):
        releases_from_feed(fixture("error_200_missing_parameter_t.xml"), "x")


def test_not_xml_and_huge_bodies_are_refused():
    with pytest.raises(FeedError, match="not XML"):
        releases_from_feed("<rss><channel><item>", "x")
    with pytest.raises(FeedError, match="over the"):
        releases_from_feed(" " * (MAX_FEED_BYTES + 1), "x")


def test_malformed_items_are_counted_not_parsed():
    releases, skipped = releases_from_feed(
        feed(
            "<item><guid>a</guid><link>http://h/dl?x=1</link></item>",
            "<item><title>  </title><link>http://h/dl?x=2</link></item>",
            "<item><title>No link at all</title><guid>c</guid></item>",
            "<item><title>Fine [MP3]</title><guid>d</guid><link>http://h/dl?x=3</link></item>",
        ),
        "x",
    )
    assert [r.release_id for r in releases] == ["d"] and releases[0].filetype == "mp3"
    assert skipped == {"no_title": 2, "no_link": 1}


def test_magnet_links_and_tolerated_shapes():
    releases, _ = releases_from_feed(
        feed(
            # a link that is itself a magnet: no download URL, the hash comes from the magnet
            "<item><title>A Book - Abridged [m4a]</title><guid>m1</guid>"
            f"<link>magnet:?xt=urn:btih:{'AB12' * 10}&amp;dn=x</link>"
            '<newznab:attr name="size" value="1234" /><newznab:attr name="seeders" value="4" /></item>',
            # Prowlarr's proxied magnet is an http link with the key: a download link, stripped
            "<item><title>B Book (Unabridged)</title><guid>m2</guid><pubDate>Tue, 05 Mar 2024 07:30:00 -0500</pubDate>"
            '<enclosure url="http://h:9696/5/download?apikey=SECRET-1&amp;link=L" length="99" />'
            '<torznab:attr name="magneturl" value="http://h:9696/5/download?apikey=SECRET-1&amp;link=M" />'
            '<torznab:attr name="infohash" value="not-a-hash" /></item>',
        ),
        "x",
    )
    magnet, proxied = releases
    assert magnet.download_url is None and magnet.magnet.startswith("magnet:?xt=urn:btih:AB12AB12")
    assert magnet.info_hash == "ab12" * 10
    assert (magnet.size_bytes, magnet.seeders, magnet.filetype, magnet.abridged) == (1234, 4, "m4a", True)
    assert proxied.download_url == "http://h:9696/5/download?link=L" and proxied.magnet is None
    assert proxied.size_bytes == 99 and proxied.info_hash is None and not proxied.abridged
    assert proxied.added == "2024-03-05 12:30:00"  # pubDate offsets become UTC
    assert "SECRET-1" not in repr(releases)


def test_mam_suffix_forms():
    assert split_mam_title("The Way of Kings by Brandon Sanderson [ENG / M4B] [VIP]") == (
        "The Way of Kings", ("Brandon Sanderson",), "ENG", "m4b", True,
    )
    assert split_mam_title("Good Omens by Terry Pratchett, Neil Gaiman [ENG / MP3]")[:2] == (
        "Good Omens", ("Terry Pratchett", "Neil Gaiman"),
    )
    assert split_mam_title("Killed by Death by Some Author [M4B]") == ("Killed by Death", ("Some Author",), None, "m4b", False)
    assert split_mam_title("Solaris by Stanisław Lem [POL]") == ("Solaris", ("Stanisław Lem",), "POL", None, False)
    assert split_mam_title("Multi by A [ENG / M4B MP3]")[3] == "m4b"
    # Not Prowlarr's suffix: left alone.
    assert split_mam_title("Stand by Me") == ("Stand by Me", (), None, None, False)
    assert split_mam_title("Stand by Me [Remastered Edition]") == ("Stand by Me [Remastered Edition]", (), None, None, False)


def test_authors_come_from_suffix_and_attr_without_repeats():
    releases, _ = releases_from_feed(
        feed(
            "<item><title>Good Omens by Terry Pratchett [ENG / M4B]</title><guid>g</guid><link>http://h/x</link>"
            '<torznab:attr name="author" value="Terry Pratchett, Neil Gaiman" /></item>'
        ),
        "x",
    )
    assert releases[0].title == "Good Omens" and releases[0].authors == ("Terry Pratchett", "Neil Gaiman")


def test_strip_secrets_keeps_the_rest_byte_for_byte():
    assert strip_secrets("http://h/5/download?apikey=K&link=a%2Fb&file=A+B") == "http://h/5/download?link=a%2Fb&file=A+B"
    assert strip_secrets("http://h/dl/x/?jackett_apikey=K&path=P") == "http://h/dl/x/?path=P"
    assert strip_secrets("http://h/t?APIKEY=K&passkey=P") == "http://h/t"
    assert strip_secrets("http://h/t?myapikey=1#frag") == "http://h/t?myapikey=1#frag"
    assert strip_secrets("http://h/t") == "http://h/t"


def test_strip_secrets_knows_the_tracker_key_names_but_not_ids():
    for name in ("torrent_pass", "authkey", "rsskey", "pk", "passkey", "apikey", "jackett_apikey", "api_key",
                 "key", "token", "access_token", "auth", "sid"):
        assert strip_secrets(f"http://h/dl.php?id=7&{name}=SECRET123&uid=42") == "http://h/dl.php?id=7&uid=42", name
    assert strip_secrets("http://h/dl.php?id=7&amp;passkey=SECRET123") == "http://h/dl.php?id=7"  # escaped twice
    assert strip_secrets("http://h/dl.php?keyword=a&monkey=b") == "http://h/dl.php?keyword=a&monkey=b"


PASSKEY_IN_PATH = "SECRET123" * 3  # 27 letters and digits: looks like a key


def test_public_release_id_keeps_plain_guids():
    for guid in (
        "1100101", "m1", "https://www.myanonamouse.net/t/1100101", "http://127.0.0.1:9117/fake-tracker/details/55502",
        "8c5b71d209386b53fad5" + "9877bd55702c25893b61",  # a bare info-hash is no link
    ):
        assert public_release_id(guid) == guid


@pytest.mark.parametrize(
    "guid",
    [
        "https://tracker.example/download.php?id=7&passkey=SECRET123",
        "https://tracker.example/details.php?id=7",  # any query string
        f"https://tracker.example/rss/download/7/{PASSKEY_IN_PATH}/book.torrent",
        "https://user:SECRET123@tracker.example/t/7",
        "magnet:?xt=urn:btih:" + "ab12" * 10 + "&dn=Book&tr=https%3A%2F%2Ftracker.example%2Fa%3Fpasskey%3DSECRET123",
    ],
)
def test_public_release_id_hashes_guids_that_may_hold_a_key(guid):
    release_id = public_release_id(guid)
    assert re.fullmatch(r"g[0-9a-f]{16}", release_id) and public_release_id(guid) == release_id
    assert "SECRET123" not in release_id


def test_public_release_id_survives_a_new_key_and_other_trackers():
    assert public_release_id("http://h/dl?id=7&passkey=OLD1") == public_release_id("http://h/dl?id=7&passkey=NEW2")
    assert public_release_id("http://h/dl?id=7&passkey=OLD1") != public_release_id("http://h/dl?id=8&passkey=OLD1")
    magnet = "magnet:?xt=urn:btih:" + "ab12" * 10 + "&dn=Book"
    assert public_release_id(magnet + "&tr=udp%3A%2F%2Fa%3A80") == public_release_id(magnet + "&tr=udp%3A%2F%2Fb%3A80")


def test_guids_with_keys_become_short_ids_in_releases():
    tracker = "http%3A%2F%2Ft.example%2Fannounce%3Fpasskey%3DSECRET123"
    magnet = "magnet:?xt=urn:btih:" + "CD34" * 10 + f"&amp;dn=C&amp;tr={tracker}"
    releases, _ = releases_from_feed(
        feed(
            # Cardigann without a details link: the guid is the tracker's download link
            "<item><title>A [MP3]</title><guid>https://t.example/download.php?id=7&amp;passkey=SECRET123</guid>"
            "<link>https://t.example/download.php?id=7&amp;passkey=SECRET123</link></item>",
            f"<item><title>B [MP3]</title><guid>https://t.example/rss/7/{PASSKEY_IN_PATH}/b.torrent</guid>"
            "<link>https://t.example/b.torrent</link></item>",
            f"<item><title>C [MP3]</title><link>{magnet}</link></item>",  # no guid: the magnet would be the id
            "<item><title>D [MP3]</title><guid>https://www.myanonamouse.net/t/1100101</guid>"
            "<link>http://h/x</link></item>",
        ),
        "x",
    )
    by_link, by_path, by_magnet, plain = releases
    assert by_link.download_url == "https://t.example/download.php?id=7"
    assert by_link.release_id == public_release_id("https://t.example/download.php?id=7")
    assert by_path.release_id.startswith("g") and by_magnet.release_id.startswith("g")
    assert plain.release_id == "https://www.myanonamouse.net/t/1100101"
    assert all("SECRET123" not in r.release_id for r in releases)
    assert "SECRET123" not in repr([by_link, by_path])
    assert "passkey%3DSECRET123" in by_magnet.magnet  # kept in memory: it is what adds a magnet-only release


def test_public_magnet_keeps_only_the_hash_and_the_name():
    xt = "urn:btih:" + "AB12" * 10
    magnet = (
        f"magnet:?xt={xt}&dn=The%20Book&tr=http%3A%2F%2Ft.example%2Fannounce%3Fpasskey%3DSECRET123"
        "&tr.1=udp%3A%2F%2Fo.example%3A80&xs=http%3A%2F%2Fs.example%2Fx.torrent%3Fkey%3DSECRET123"
        "&as=http%3A%2F%2Fa.example%2Ff&ws=http%3A%2F%2Fw.example%2Ff&x.pe=1.2.3.4%3A6881&kt=book"
    )
    assert public_magnet(magnet) == f"magnet:?xt={xt}&dn=The%20Book"
    numbered = f"xt.1={xt}&xt.2=urn:btmh:1220aa&dn.1=A"
    assert public_magnet(f"  MAGNET:?tr=x&{numbered}  ") == f"magnet:?{numbered}"
    assert public_magnet("magnet:?dn=only-a-name&tr=x") == ""
    assert public_magnet("http://h/dl?xt=urn:btih:x") == "" and public_magnet("") == ""


def test_redact_leaves_no_key_in_server_text():
    text = (
        "Exception (tracker): GET https://t.example/rss.php?id=1&passkey=SECRET123 failed; "
        f"retry https://u:SECRET123@t.example/rss/{PASSKEY_IN_PATH}/feed, apikey=FAKE-KEY-9 torrent_pass=SECRET123 "
        "magnet:?xt=urn:btih:" + "AB12" * 10 + "&tr=http%3A%2F%2Ft%2Fa%3Fpk%3DSECRET123 and FAKE-KEY-9 again"
    )
    clean = redact(text, ("FAKE-KEY-9",))
    assert "SECRET123" not in clean and "FAKE-KEY-9" not in clean
    assert "GET https://t.example/rss.php?*** failed" in clean and "https://t.example/rss/***/feed" in clean
    assert "magnet:?xt=urn:btih:AB12" in clean and "torrent_pass=***" in clean
    assert redact("Invalid API Key") == "Invalid API Key"
    assert redact("Missing parameter (t)", ("",)) == "Missing parameter (t)"
