"""Importing a finished download: verify the audio, then place it into the ABS library folder.

Torrent file names and indexer titles are untrusted, so every path component goes through
`safe_component`; a torrent path with `..` or an absolute path is refused outright.
Placement never overwrites, keeps the torrent's files in place (they keep seeding), and
never lets ABS see a half-built book: the folder is built under a dot-named sibling (ABS
ignores every path with a component starting with ".") and renamed into place at the end.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

import mutagen


class UnsafeName(ValueError):
    """A name or path that cannot become a safe path inside the library."""


class PlacementError(Exception):
    """The files could not be placed; the message says why and what was left behind."""


class UnsafeDownload(PlacementError):
    """A download holds something that must never be placed: a symbolic link, a file with
    other hard links, something that is not a regular file. Trying again cannot help."""


# Characters Windows/SMB (and shells) choke on, with readable stand-ins.
_SUBSTITUTES = str.maketrans({"/": "-", "\\": "-", ":": " - ", "*": "", "?": "", '"': "'", "<": "(", ">": ")", "|": "-"})
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}$")
# ABS reads a folder sequence only from 1-3 digits with up to 2 decimals ("Book 2.5 - Title").
_ABS_SEQUENCE = re.compile(r"^\d{1,3}(?:\.\d{1,2})?$")


def safe_component(name: str, max_bytes: int = 200) -> str:
    """One safe file or folder name from an untrusted string, at most `max_bytes` UTF-8 bytes."""
    if not isinstance(name, str):
        raise UnsafeName(f"{type(name).__name__} is not a name")
    try:
        name.encode()
    except UnicodeEncodeError:  # a lone surrogate cannot be a file name on any file system
        raise UnsafeName(f"{name!r} is not valid Unicode") from None
    text = unicodedata.normalize("NFC", name)
    # control and format characters go; a tab or newline still separates words
    text = "".join(
        " " if ch.isspace() else ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf")
    )
    text = " ".join(text.translate(_SUBSTITUTES).split())
    text = text.strip(" .")
    if text in ("", ".", ".."):
        raise UnsafeName(f"{name!r} leaves no usable name")
    stem, ext = text, ""
    if (match := _EXTENSION.search(text)) and match.start() > 0:
        stem, ext = text[: match.start()], match.group()
    if stem.upper() in _WINDOWS_RESERVED:
        stem += "_"
    if len((stem + ext).encode()) > max_bytes:
        if len(ext.encode()) >= max_bytes:
            stem, ext = stem + ext, ""
        stem = _cut_utf8(stem, max_bytes - len(ext.encode())).rstrip(" .")
        if not stem:
            raise UnsafeName(f"{name!r} leaves no usable name within {max_bytes} bytes")
    return stem + ext


def _cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix within `max_bytes`, never ending inside a character or before its accents."""
    cut = text.encode()[:max_bytes].decode(errors="ignore")
    while cut and len(cut) < len(text) and unicodedata.combining(text[len(cut)]):
        cut = cut[:-1]
    return cut


def safe_relative(path: str) -> PurePosixPath:
    """A torrent's relative file path, each component made safe; traversal is refused, not repaired."""
    if not path or path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        raise UnsafeName(f"{path!r} is not a relative path")
    parts = re.split(r"[/\\]", path)
    if any(part.strip() == ".." for part in parts):
        raise UnsafeName(f"{path!r} climbs out of its folder")
    if any(part == "" for part in parts):
        raise UnsafeName(f"{path!r} has an empty path component")
    return PurePosixPath(*(safe_component(part) for part in parts))


def book_folder(author: str, series: str | None, position_label: str | None, title: str) -> PurePosixPath:
    """`Author/Series/Book N - Title`, or `Author/Title` without a series.

    ABS reads series and sequence from the folders only when there is a series level, and
    only a 1-3 digit number ("2", "2.5") as the sequence; any other label is left out of
    the folder name (the metadata write-back sets it), so ABS never misreads it as title.
    """
    author_part = safe_component(author)
    title_part = safe_component(title)
    if not series or not series.strip():
        return PurePosixPath(author_part, title_part)
    label = (position_label or "").strip()
    book = safe_component(f"Book {label} - {title_part}") if _ABS_SEQUENCE.match(label) else title_part
    return PurePosixPath(author_part, safe_component(series), book)


# What mutagen reads a duration from (MP4, MP3, FLAC, Ogg Vorbis/Opus, ADTS AAC, ASF, WAVE, AIFF).
AUDIO_EXTENSIONS = frozenset({"m4b", "m4a", "mp3", "flac", "ogg", "oga", "opus", "aac", "wma", "wav", "aiff"})


@dataclass
class AudioCheck:
    ok: bool
    audio_files: list[Path]
    duration_s: float
    reason: str | None = None
    unreadable: list[str] = field(default_factory=list)


def _hms(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def check_audio(
    files: list[Path], expected_duration_s: float | None, tolerance: float = 0.15, min_tolerance_s: float = 300
) -> AudioCheck:
    """Does a download hold readable audio of about the expected length?

    A torrent of only .txt/.pdf, a corrupt or truncated file, or a release of a different
    edition (a 1 h abridgement for a 10 h book) all fail here, before anything reaches ABS.
    """
    audio = sorted((f for f in files if f.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS), key=str)
    if not audio:
        kinds = ", ".join(sorted({f.suffix.lower() or "(no extension)" for f in files})) or "nothing"
        return AudioCheck(False, [], 0.0, f"no audio file among {len(files)} files ({kinds})")
    total = 0.0
    unreadable = []
    for path in audio:
        try:
            length = getattr(getattr(mutagen.File(path), "info", None), "length", None)
        except (mutagen.MutagenError, OSError):
            length = None
        if not length or length <= 0:
            unreadable.append(path.name)
        else:
            total += length
    if unreadable:
        return AudioCheck(
            False, audio, total, f"{len(unreadable)} of {len(audio)} audio files unreadable: {', '.join(unreadable)}", unreadable
        )
    if expected_duration_s and expected_duration_s > 0:
        allowed = max(tolerance * expected_duration_s, min_tolerance_s)
        if abs(total - expected_duration_s) > allowed:
            return AudioCheck(
                False,
                audio,
                total,
                f"audio lasts {_hms(total)}, expected {_hms(expected_duration_s)} (allowed difference {_hms(allowed)})",
            )
    return AudioCheck(True, audio, total)


@dataclass
class Placement:
    method: Literal["hardlink", "copy"]
    files: list[PurePosixPath]
    bytes: int
    destination: Path


# errno values after which a hardlink cannot work but a copy can.
_NO_HARDLINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}
_WHAT_WENT_WRONG = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
}


def _copy_file(source: Path, target: Path) -> None:
    """Copy content and times; O_NOFOLLOW: a source swapped for a link since the check fails."""
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as src, open(target, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    shutil.copystat(source, target, follow_symlinks=False)


def _same_filesystem(sources: list[Path], destination: Path) -> bool:
    """True when every source sits on the device of the destination's nearest existing parent."""
    existing = destination
    while not existing.exists():
        existing = existing.parent
    device = existing.stat().st_dev
    return all(source.stat().st_dev == device for source in sources)


def _digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.digest()


def _identical(source: Path, target: Path) -> bool:
    """The same file, or a regular file of the same content (a hash, never just the size)."""
    a, b = source.lstat(), target.lstat()
    if not stat.S_ISREG(b.st_mode):
        return False
    return os.path.samestat(a, b) or (a.st_size == b.st_size and _digest(source) == _digest(target))


# Every book folder we build holds this (ABS ignores dot-names): an existing folder without
# it, or with another owner's, is never merged into.
MARKER = ".mamcrawler-import.json"


def is_file(path: Path) -> bool:
    """`Path.is_file` that answers False instead of raising (a name over the length limit)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _check_source(src: Path, rel: PurePosixPath, root: Path | None) -> os.stat_result:
    """The source's own status; refuses links (never followed) and anything but a regular file."""
    if root is not None:
        try:
            inner = src.relative_to(root)
        except ValueError:
            raise UnsafeDownload(f"'{rel}' is not inside the download folder {root}") from None
        for depth in range(1, len(inner.parts)):
            if (root / PurePosixPath(*inner.parts[:depth])).is_symlink():
                raise UnsafeDownload(f"'{rel}' lies in a folder that is a symbolic link; links in a download are never followed")
    try:
        info = src.lstat()
    except FileNotFoundError:
        raise PlacementError(f"source files are gone: {src}") from None
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeDownload(f"'{rel}' is a symbolic link; links in a download are never followed")
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeDownload(f"'{rel}' is not a regular file")
    return info


def check_download(sources: list[tuple[Path, PurePosixPath]], root: Path | None = None) -> list[os.stat_result]:
    """Refuse a download holding links or special files before anything reads it (a link to
    /dev/zero would keep an audio check busy forever); the status of each source."""
    try:
        return [_check_source(src, rel, root) for src, rel in sources]
    except OSError as exc:
        raise PlacementError(f"{_reason(exc)} while reading the download") from None


def place_files(
    sources: list[tuple[Path, PurePosixPath]], destination: Path, owner: str = "", root: Path | None = None
) -> Placement:
    """Put each source file at `destination/<relative path>`: hardlinked on the same file
    system (the torrent keeps its files and keeps seeding), copied otherwise.

    `owner` names the import (its info-hash; default: the sources themselves); `root` is the
    download folder, every folder below which is checked not to be a link. Placing the same
    files again for the same owner is a no-op or completes them; a folder that exists without
    our marker or with another owner's is never merged into; a symbolic link, a file with
    other hard links or anything but a regular file is refused (`UnsafeDownload`); every OS
    error is a `PlacementError` with its reason; after a failure nothing this call created is
    left behind.
    """
    try:
        return _place_files(sources, destination, owner, root)
    except OSError as exc:
        raise PlacementError(f"{_reason(exc)} while placing into {destination}: nothing was placed") from None


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "a file name or the path is over the file system's length limit"
    return _WHAT_WENT_WRONG.get(exc.errno or 0, exc.strerror or type(exc).__name__)


def _place_files(
    sources: list[tuple[Path, PurePosixPath]], destination: Path, owner: str, root: Path | None
) -> Placement:
    if destination.exists() and not destination.is_dir():
        raise PlacementError(f"{destination} exists and is not a folder; not overwriting it")
    if not sources:
        raise PlacementError(f"no files to place into {destination}")
    rels = [rel for _, rel in sources]
    for rel in rels:
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise UnsafeName(f"{str(rel)!r} is not a safe relative path")
    if len(set(rels)) != len(rels):
        raise PlacementError(f"two files would both land at the same path in {destination}")
    if PurePosixPath(MARKER) in rels:
        raise UnsafeName(f"{MARKER!r} is this program's own marker, not a book file")
    infos = check_download(sources, root)
    total = sum(info.st_size for info in infos)
    owner = owner or hashlib.sha256(json.dumps(sorted([str(s), str(r)] for s, r in sources)).encode()).hexdigest()
    if destination.exists() and _owner_of(destination) != owner:
        raise PlacementError(
            f"{destination} already exists and was not placed by this import; not merging into it "
            "(move or rename that folder, or mark the book owned)"
        )

    todo: list[tuple[Path, PurePosixPath]] = []
    for (src, rel), info in zip(sources, infos, strict=True):
        target = destination / rel
        if target.exists() or target.is_symlink():
            if not _identical(src, target):
                raise PlacementError(f"{destination} already holds a different '{rel}'; not overwriting it")
        else:
            if info.st_nlink > 1:
                raise UnsafeDownload(
                    f"'{rel}' has {info.st_nlink} hard links: it is also a file elsewhere, so it is not placed"
                )
            todo.append((src, rel))
    if not todo:
        linked = all(os.path.samefile(src, destination / rel) for src, rel in sources)
        return Placement("hardlink" if linked else "copy", rels, total, destination)

    method: Literal["hardlink", "copy"] = "hardlink" if _same_filesystem([s for s, _ in todo], destination) else "copy"
    if method == "hardlink":
        try:
            _place(todo, destination, "hardlink", owner)
        except _LinkRefused:
            method = "copy"
        else:
            return Placement(method, rels, total, destination)
    _place(todo, destination, "copy", owner)
    return Placement(method, rels, total, destination)


def _owner_of(folder: Path) -> str | None:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("owner") if isinstance(data, dict) else None


class _LinkRefused(Exception):
    """The file system refused a hardlink (cross-device, protected_hardlinks); copy instead."""


def _place(todo: list[tuple[Path, PurePosixPath]], destination: Path, method: str, owner: str) -> None:
    """Build a new book folder under `.<name>.partial` and rename it into place, or add the
    missing files to an existing folder one by one (each appears whole via link(2))."""
    created_dirs: list[Path] = []
    created_files: list[Path] = []
    staging = destination.parent / f".{destination.name}.partial"
    fresh = not destination.exists()
    current = ""
    try:
        parent = destination.parent
        while not parent.exists():
            created_dirs.insert(0, parent)
            parent = parent.parent
        for d in created_dirs:
            d.mkdir()
        if fresh:
            shutil.rmtree(staging, ignore_errors=True)  # left by a crash; the dot-name is ours
            staging.mkdir()
            (staging / MARKER).write_text(json.dumps({"owner": owner}), encoding="utf-8")
        for src, rel in todo:
            current = rel.name
            root = staging if fresh else destination
            target = root / rel
            for folder in reversed(target.parents):
                if folder not in (root, *root.parents) and not folder.exists():
                    folder.mkdir()
                    if not fresh:
                        created_dirs.append(folder)
            if method == "hardlink":
                try:
                    os.link(src, target, follow_symlinks=False)
                except OSError as exc:
                    if exc.errno in _NO_HARDLINK:
                        raise _LinkRefused from exc
                    raise
                created_files.append(target)
            elif fresh:
                _copy_file(src, target)
            else:
                partial = target.parent / f".{target.name}.partial"
                created_files.append(partial)
                _copy_file(src, partial)
                _publish(partial, target)
                created_files.append(target)
                created_files.remove(partial)
        if fresh:
            current = ""
            staging.rename(destination)
    except (OSError, _LinkRefused) as exc:
        leftovers = _undo(staging if fresh else None, created_files, created_dirs)
        if isinstance(exc, _LinkRefused):
            raise
        what = _reason(exc)
        if current:
            doing = f"{'linking' if method == 'hardlink' else 'copying'} '{current}' into {destination}"
        else:
            doing = f"creating {destination}"
        left = f"could not remove {', '.join(leftovers)}" if leftovers else "nothing was left behind"
        raise PlacementError(f"{what} while {doing}: {left}") from None


def _publish(partial: Path, target: Path) -> None:
    """Give a finished copy its name without overwriting: link(2) fails if the name is taken;
    where the file system has no hardlinks, a rename after a last look has to do."""
    try:
        os.link(partial, target)
    except OSError as exc:
        if exc.errno not in _NO_HARDLINK:
            raise
        if target.exists():
            raise FileExistsError(errno.EEXIST, "a file appeared at the destination", str(target)) from None
        partial.rename(target)
    else:
        partial.unlink()


def _undo(staging: Path | None, files: list[Path], dirs: list[Path]) -> list[str]:
    """Remove what a failed placement created; the paths that could not be removed."""
    leftovers = []
    if staging is not None and staging.exists():
        shutil.rmtree(staging, ignore_errors=True)
        if staging.exists():
            leftovers.append(str(staging))
    for path in reversed(files):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            leftovers.append(str(path))
    for d in reversed(dirs):
        try:
            d.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            if d.exists() and not any(d.iterdir()):
                leftovers.append(str(d))
    return leftovers
