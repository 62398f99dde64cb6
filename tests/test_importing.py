"""Verifying downloaded audio and placing it into the library folder safely."""

import errno
import os
from pathlib import Path, PurePosixPath

import pytest

from mamcrawler import importing
from mamcrawler.importing import (
    MARKER,
    PlacementError,
    UnsafeName,
    book_folder,
    check_audio,
    place_files,
    safe_component,
    safe_relative,
)
from resources.replay.abs import folder_metadata
from tests.audio import write_test_mp3

# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("The Way of Kings.m4b", "The Way of Kings.m4b"),
        ("AC/DC: Live?", "AC-DC - Live"),
        ('a\\b*c"d<e>f|g', "a-bc'd(e)f-g"),
        ("  ..hidden file. ", "hidden file"),
        ("tab\there\nnew\x00line\x7f", "tab here newline"),
        ("right\u202eto\u200bleft", "righttoleft"),  # bidi override and zero-width space (category Cf)
        ("Stanisl\u0323aw", "Stanisḷaw"),  # NFC
        ("CON", "CON_"),
        ("nul.mp3", "nul_.mp3"),
        ("many    spaces\u00a0here", "many spaces here"),
    ],
)
def test_safe_component(raw, safe):
    assert safe_component(raw) == safe


@pytest.mark.parametrize("raw", ["", ".", "..", "...", " . ", "\x00\x01", "?*"])
def test_names_that_leave_nothing_are_refused(raw):
    with pytest.raises(UnsafeName):
        safe_component(raw)


def test_long_utf8_names_are_cut_on_character_boundaries_and_keep_the_extension():
    name = "Łódź " * 80 + ".m4b"
    safe = safe_component(name)
    assert len(safe.encode()) <= 200 and safe.endswith(".m4b")
    assert safe.startswith("Łódź Łódź") and not safe.removesuffix(".m4b").endswith(" ")
    safe.encode().decode()  # whole characters only

    # q + COMBINING ACUTE has no precomposed form: the accent is never cut off its letter
    assert safe_component("x" * 9 + "q\u0301", max_bytes=11) == "x" * 9
    assert safe_component("é" * 300, max_bytes=11) == "é" * 5


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("Book/CD1/01 - Prelude.mp3", "Book/CD1/01 - Prelude.mp3"),
        ("Title: Part 1.mp3", "Title - Part 1.mp3"),
        (".hidden/file.mp3", "hidden/file.mp3"),
    ],
)
def test_safe_relative(raw, safe):
    assert safe_relative(raw) == PurePosixPath(safe)


@pytest.mark.parametrize(
    "raw",
    ["../etc/passwd", "a/../../b.mp3", "a/..", "..\\windows\\system.ini", "/etc/passwd", "\\\\server\\share",
     "C:\\x.mp3", "c:x.mp3", "a//b.mp3", "a/b/", "", "a/./b.mp3"],
)
def test_unsafe_relative_paths_are_refused(raw):
    with pytest.raises(UnsafeName):
        safe_relative(raw)


def test_book_folder_layouts_abs_reads_back():
    folder = book_folder("James S. A. Corey", "The Expanse", "3", "Abaddon's Gate")
    assert folder == PurePosixPath("James S. A. Corey/The Expanse/Book 3 - Abaddon's Gate")
    parsed = folder_metadata(str(folder))
    assert (parsed["authors"], parsed["series"], parsed["sequence"], parsed["title"]) == (
        ["James S. A. Corey"], "The Expanse", "3", "Abaddon's Gate"
    )
    assert folder_metadata(str(book_folder("Brandon Sanderson", "The Stormlight Archive", "2.5", "Edgedancer")))[
        "sequence"
    ] == "2.5"

    standalone = book_folder("Andy Weir", None, None, "Project Hail Mary")
    assert standalone == PurePosixPath("Andy Weir/Project Hail Mary")
    assert folder_metadata(str(standalone))["series"] is None


def test_book_folder_leaves_out_labels_abs_cannot_read():
    # ABS would take "Book Two - X" as the title; the write-back sets such sequences instead
    assert book_folder("A", "S", "Book Two", "X") == PurePosixPath("A/S/X")
    assert book_folder("A", "S", "1-3", "Omnibus") == PurePosixPath("A/S/Omnibus")
    assert book_folder("A", "S", None, "X") == PurePosixPath("A/S/X")


def test_book_folder_makes_every_part_safe():
    folder = book_folder("../..", "Series: The/One", "1", "Title?")
    assert folder == PurePosixPath("-/Series - The-One/Book 1 - Title")  # "../.." -> "-.-" -> "-" after stripping
    with pytest.raises(UnsafeName):
        book_folder("Author", None, None, "..")


# --- audio checks ------------------------------------------------------------------------


def test_readable_audio_of_the_expected_length(tmp_path):
    files = [write_test_mp3(tmp_path / "Part 01.mp3", 30), write_test_mp3(tmp_path / "Part 02.MP3", 30)]
    (tmp_path / "info.nfo").write_text("release notes")
    check = check_audio([*files, tmp_path / "info.nfo"], expected_duration_s=60)
    assert check.ok and check.reason is None and check.unreadable == []
    assert check.audio_files == files and check.duration_s == pytest.approx(60, abs=0.1)


def test_a_torrent_without_audio_fails(tmp_path):
    txt = tmp_path / "book.txt"
    txt.write_text("not an audiobook")
    check = check_audio([txt], expected_duration_s=None)
    assert not check.ok and check.audio_files == [] and "no audio file" in check.reason and ".txt" in check.reason


def test_a_corrupt_audio_file_fails(tmp_path):
    good = write_test_mp3(tmp_path / "01.mp3", 5)
    bad = tmp_path / "02.mp3"
    bad.write_bytes(b"this is not an mpeg stream " * 200)
    empty = tmp_path / "03.m4b"
    empty.write_bytes(b"")
    check = check_audio([good, bad, empty], expected_duration_s=None)
    assert not check.ok and check.unreadable == ["02.mp3", "03.m4b"]
    assert "02.mp3" in check.reason and "03.m4b" in check.reason


def test_duration_off_by_more_than_the_tolerance_fails(tmp_path):
    mp3 = write_test_mp3(tmp_path / "book.mp3", 600)
    assert check_audio([mp3], expected_duration_s=650).ok  # within the 300 s floor
    assert check_audio([mp3], expected_duration_s=880).ok  # 280 s off
    wrong = check_audio([mp3], expected_duration_s=4 * 3600)  # an abridgement of a 4 h book
    assert not wrong.ok and "0h10m" in wrong.reason and "4h00m" in wrong.reason
    assert wrong.duration_s == pytest.approx(600)
    assert not check_audio([mp3], expected_duration_s=700, tolerance=0.1, min_tolerance_s=0).ok  # 100 s > 70 s
    assert check_audio([mp3], expected_duration_s=None).ok  # unknown length: no duration check


# --- placement ---------------------------------------------------------------------------


def _download(root: Path) -> list[tuple[Path, PurePosixPath]]:
    a = write_test_mp3(root / "torrent" / "Part 1.mp3", 2)
    b = write_test_mp3(root / "torrent" / "CD2" / "Part 2.mp3", 3)
    return [(a, PurePosixPath("Part 1.mp3")), (b, PurePosixPath("CD2/Part 2.mp3"))]


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_hardlinks_on_the_same_file_system_and_keeps_the_source(tmp_path):
    sources = _download(tmp_path)
    dest = tmp_path / "library" / "Author" / "Series" / "Book 1 - Title"
    placement = place_files(sources, dest)
    assert placement.method == "hardlink" and placement.destination == dest
    assert placement.files == [PurePosixPath("Part 1.mp3"), PurePosixPath("CD2/Part 2.mp3")]
    assert placement.bytes == sum(src.stat().st_size for src, _ in sources)
    for src, rel in sources:
        assert src.exists() and (dest / rel).stat().st_ino == src.stat().st_ino
    assert _tree(tmp_path / "library") == [
        "Author", "Author/Series", "Author/Series/Book 1 - Title", f"Author/Series/Book 1 - Title/{MARKER}",
        "Author/Series/Book 1 - Title/CD2", "Author/Series/Book 1 - Title/CD2/Part 2.mp3",
        "Author/Series/Book 1 - Title/Part 1.mp3",
    ]


def test_copies_across_file_systems(tmp_path, monkeypatch):
    monkeypatch.setattr(importing, "_same_filesystem", lambda sources, destination: False)
    sources = _download(tmp_path)
    dest = tmp_path / "library" / "Author" / "Title"
    placement = place_files(sources, dest)
    assert placement.method == "copy"
    for src, rel in sources:
        copied = dest / rel
        assert copied.read_bytes() == src.read_bytes() and copied.stat().st_ino != src.stat().st_ino
    assert not (tmp_path / "library" / "Author" / ".Title.partial").exists()


def test_copies_when_the_file_system_refuses_a_hardlink(tmp_path, monkeypatch):
    def refuse(src, dst, **_):
        raise OSError(errno.EPERM, "Operation not permitted")  # fs.protected_hardlinks on a foreign file

    monkeypatch.setattr(importing.os, "link", refuse)
    sources = _download(tmp_path)
    placement = place_files(sources, tmp_path / "library" / "Author" / "Title")
    assert placement.method == "copy" and (tmp_path / "library" / "Author" / "Title" / "CD2" / "Part 2.mp3").exists()


def test_the_book_appears_only_when_complete(tmp_path, monkeypatch):
    """While copying, the files sit under a dot-named folder ABS ignores."""
    monkeypatch.setattr(importing, "_same_filesystem", lambda sources, destination: False)
    seen = []
    real_copy = importing._copy_file

    def watch(src, dst):
        seen.append((str(dst.relative_to(tmp_path / "library")), (tmp_path / "library" / "Author" / "Title").exists()))
        real_copy(src, dst)

    monkeypatch.setattr(importing, "_copy_file", watch)
    place_files(_download(tmp_path), tmp_path / "library" / "Author" / "Title")
    assert seen == [("Author/.Title.partial/Part 1.mp3", False), ("Author/.Title.partial/CD2/Part 2.mp3", False)]


@pytest.mark.parametrize("cross_device", [False, True])
def test_placing_again_is_a_no_op(tmp_path, monkeypatch, cross_device):
    if cross_device:
        monkeypatch.setattr(importing, "_same_filesystem", lambda sources, destination: False)
    sources = _download(tmp_path)
    dest = tmp_path / "library" / "Author" / "Title"
    first = place_files(sources, dest)
    before = {p: p.stat().st_mtime_ns for p in dest.rglob("*")}
    again = place_files(sources, dest)
    assert again == first
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*")} == before


def test_a_half_placed_book_is_completed(tmp_path):
    sources = _download(tmp_path)
    dest = tmp_path / "library" / "Author" / "Title"
    place_files(sources[:1], dest, owner="ih")
    placement = place_files(sources, dest, owner="ih")
    assert placement.method == "hardlink" and (dest / "CD2" / "Part 2.mp3").samefile(sources[1][0])


def test_different_existing_content_is_never_overwritten(tmp_path):
    sources = _download(tmp_path)
    dest = tmp_path / "library" / "Author" / "Title"
    dest.mkdir(parents=True)
    (dest / "Part 1.mp3").write_bytes(b"someone else's book")
    with pytest.raises(PlacementError, match="already exists and was not placed by this import; not merging"):
        place_files(sources, dest)
    assert (dest / "Part 1.mp3").read_bytes() == b"someone else's book"
    assert _tree(dest) == ["Part 1.mp3"]

    a_file = tmp_path / "library" / "Author" / "Not a folder"
    a_file.write_text("x")
    with pytest.raises(PlacementError, match="not a folder"):
        place_files(sources, a_file)


def test_disk_full_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(importing, "_same_filesystem", lambda sources, destination: False)
    calls = []

    def fill_disk(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            dst.write_bytes(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        dst.write_bytes(src.read_bytes())

    monkeypatch.setattr(importing, "_copy_file", fill_disk)
    sources = _download(tmp_path)
    (tmp_path / "library").mkdir()
    dest = tmp_path / "library" / "Author" / "Series" / "Book 1 - Title"
    with pytest.raises(PlacementError) as err:
        place_files(sources, dest)
    assert str(err.value) == f"disk full while copying 'Part 2.mp3' into {dest}: nothing was left behind"
    assert _tree(tmp_path / "library") == []
    assert all(src.exists() for src, _ in sources)


def test_permission_denied_in_an_existing_folder_removes_only_what_it_added(tmp_path, monkeypatch):
    sources = _download(tmp_path)
    dest = tmp_path / "library" / "Author" / "Title"
    place_files(sources[:1], dest, owner="ih")
    real_link = os.link

    def deny_second(src, dst, **kw):
        if "Part 2" in str(dst):
            raise OSError(errno.EACCES, "Permission denied")
        real_link(src, dst, **kw)

    monkeypatch.setattr(importing.os, "link", deny_second)
    with pytest.raises(PlacementError, match=r"^permission denied while linking 'Part 2\.mp3'.*nothing was left behind"):
        place_files(sources, dest, owner="ih")
    assert _tree(dest) == [MARKER, "Part 1.mp3"]


def test_bad_inputs(tmp_path):
    sources = _download(tmp_path)
    with pytest.raises(UnsafeName):
        place_files([(sources[0][0], PurePosixPath("../escape.mp3"))], tmp_path / "library" / "A" / "T")
    with pytest.raises(PlacementError, match="same path"):
        place_files([(sources[0][0], PurePosixPath("x.mp3")), (sources[1][0], PurePosixPath("x.mp3"))], tmp_path / "l")
    with pytest.raises(PlacementError, match="gone"):
        place_files([(tmp_path / "nope.mp3", PurePosixPath("x.mp3"))], tmp_path / "l")
    assert not (tmp_path / "library").exists() and not (tmp_path / "l").exists()


def test_a_half_copied_book_is_completed_where_there_are_no_hardlinks(tmp_path, monkeypatch):
    def no_links(src, dst, **_):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(importing.os, "link", no_links)
    sources = _download(tmp_path)
    dest = tmp_path / "library" / "Author" / "Title"
    place_files(sources[:1], dest, owner="ih")
    placement = place_files(sources, dest, owner="ih")
    assert placement.method == "copy" and placement.bytes == sum(s.stat().st_size for s, _ in sources)
    assert _tree(dest) == [MARKER, "CD2", "CD2/Part 2.mp3", "Part 1.mp3"]
    assert (dest / "CD2" / "Part 2.mp3").read_bytes() == sources[1][0].read_bytes()
