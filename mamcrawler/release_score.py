"""Release scoring: is this indexer result the missing book, and is it the copy to grab?

Indexers answer a search with every book that shares a word with it: other series' #3,
the #5 whose title says "Book 5", the German translation at the same series position, one
sixth of a GraphicAudio dramatisation, an omnibus that would re-download owned books. A
wrong grab costs ratio on a private tracker, so hard rules reject and only then do
preferences rank.

Score (0..100) = 0.8 x relevance + bonuses, clamped:
  relevance = 0.60 title + 0.25 author + 0.15 series evidence (each 0..100)
  bonuses   = format 6 x (n - rank) / n, freeleech 5, narrator as owned 4,
              log10(seeders + 1) up to 3, bitrate 48-320 kbps 2; unknown language -3
Accepted = no rejection and score >= min_score. Rejections, in the order checked (the first
one is reported): my_snatched, language, abridged, dramatised, multi-part, format, split
part, sequel number, series position / omnibus, title (< 60) or unconfirmed series position,
author (< 60), bitrate, seeders, not freeleech, score.

A wanted title with a subtitle ("The Hobbit, or There and Back Again") also matches its main
title alone, scored at most MAIN_TITLE_MAX. Number phrases read as digits in titles
("Nineteen Eighty-Four" is "1984") and are never volume numbers.
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import polars as pl
from rapidfuzz import fuzz

from mamcrawler.enrichment import sequel_numbers
from mamcrawler.frames import frame_from_rows
from mamcrawler.names import author_key, fold, series_key, split_authors, title_key
from mamcrawler.positions import Position, format_position, number_value, parse_position
from mamcrawler.releases import Release, tagged_bitrate_kbps
from mamcrawler.torznab_items import public_magnet

TITLE_MIN = 60.0
AUTHOR_MIN = 60.0
SERIES_SAME = 90.0  # fuzz.ratio of series keys at or above which two series names are one series
NARRATOR_SAME = 92.0
SANE_KBPS = (48.0, 320.0)

W_TITLE, W_AUTHOR, W_SERIES = 0.60, 0.25, 0.15
RELEVANCE_SHARE = 0.8
FORMAT_BONUS = 6.0
FREELEECH_BONUS = 5.0
NARRATOR_BONUS = 4.0
SEEDERS_BONUS_MAX = 3.0
BITRATE_BONUS = 2.0
UNKNOWN_LANGUAGE_PENALTY = 3.0
OMNIBUS_TITLE = 90.0  # an omnibus never carries the wanted title; its series range stands in for it
MAIN_TITLE_MAX = 90.0  # only the wanted title's part before its subtitle matched (and at least this well)

_FREELEECH_REASONS = ("freeleech", "personal freeleech", "freeleech (VIP)")
_AUDIO_FORMATS = ("m4b", "m4a", "mp3", "flac", "ogg", "opus", "aac", "wma", "wav")
_OTHER_FORMATS = ("epub", "pdf", "mobi", "azw3", "cbz", "cbr")

# Prowlarr titles MAM rows "<title> by <authors> [<LANG> / <FILETYPE>]" plus " [VIP]".
_PROWLARR_SUFFIX = re.compile(r"\s+by\s+[^\[\]]*?\s*\[([A-Za-z]{2,4})\s*/\s*([^\]]+)\](?:\s*\[VIP\])?\s*$")
_PART_OF = re.compile(r"\b(?:part|pt\.?|disc|cd)\s*(\d{1,2})\s*(?:of|/)\s*(\d{1,2})\b", re.IGNORECASE)
_DRAMATISED = re.compile(
    r"graphic\s*audio|dramati[sz](?:ed|ation)|full[\s-]*cast|bbc\s+radio|radio\s+(?:drama|play)", re.IGNORECASE
)
_ABRIDGED = re.compile(r"\babridged\b|\bgek(?:ü|ue|u)rzt\b", re.IGNORECASE)  # "Unabridged"/"Ungekürzt" have no \b there
_OMNIBUS_WORDS = re.compile(
    r"\b(?:omnibus|trilogy|duology|tetralogy|quartet|box(?:ed)?[\s-]*set|complete\s+series)\b", re.IGNORECASE
)
_TITLE_RANGE = re.compile(
    r"\b(?:books?|bks?|vols?\.?|volumes?|#)\s*(\d{1,3})\s*(?:-|–|—|to|thru|through|&)\s*(\d{1,3})\b", re.IGNORECASE
)
_BITRATE_TEXT = re.compile(r"\b\d{2,4}\s*k(?:bps|b/s|bit/s)?\b", re.IGNORECASE)
_DECIMAL = re.compile(r"(?<![\d.])\d{1,3}\.\d{1,2}(?![\d.])")
_BRACKETS = re.compile(r"\s*(?:\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\})")
_SEGMENTS = re.compile(r"\s*(?::|\s-\s|\s–\s|\s—\s|;)\s*")
_VOLUME_WORDS = re.compile(
    r"\b(?:books?|bks?|vol|volumes?|part|no|number|episode|tome)\s+\w+(?:\s+(?:of|to|and)(?:\s+\w+)?)?"
)
_EDGE_WORDS = re.compile(r"^(?:(?:of|the|and|a|an|by)\s+)+|(?:\s+(?:of|the|and|a|an|by))+$")
_BARE_NUMBER = re.compile(r"\b\d+\b")
# One part of a split upload: "Part 1", "Pt. 2", "Part One", "Part II", "(1 of 2)", "[2/3]".
_SPLIT_PART = re.compile(
    r"\b(?:part|pt\.?)\s*(\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|[ivx]{1,4})\b"
    r"|[(\[]\s*(\d{1,2})\s*(?:of|/)\s*(\d{1,2})\s*[)\]]",
    re.IGNORECASE,
)
_WANTS_A_PART = re.compile(r"\b(?:part|pt)\b")
_MAIN_TITLE_END = re.compile(r"\s*(?::|,\s+or\s+|\s[-–—]\s)\s*", re.IGNORECASE)
_UNITS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
]
_TENS = {
    w: 10 * i
    for i, w in enumerate(["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], start=2)
}
_NUMBER_WORD = {**{w: i for i, w in enumerate(_UNITS)}, **_TENS, "hundred": 100, "thousand": 1000}
_NUMBER_PHRASE = re.compile(rf"\b(?:{'|'.join(_NUMBER_WORD)})(?:\s+(?:{'|'.join(_NUMBER_WORD)}))+\b")
_ORDINAL = {1: "1st", 2: "2nd", 3: "3rd"}


@dataclass(frozen=True)
class WantedBook:
    """One missing_books row plus what the library tells about its series."""

    missing_id: str
    title: str | None  # None: a series gap whose title no provider knew
    author: str
    series: str | None = None
    position: float | None = None
    position_label: str | None = None  # "3", "2.5"
    line: str = "main"  # main / novella / prequel / standalone
    expected_duration_s: float | None = None
    owned_narrators: tuple[str, ...] = ()  # narrators of the owned books of the series
    owned_positions: frozenset[float] = frozenset()  # positions owned in this series
    missing_positions: frozenset[float] = frozenset()  # positions missing in this series (incl. this one)


@dataclass(frozen=True)
class ReleasePreferences:
    formats: tuple[str, ...] = ("m4b", "m4a", "mp3", "flac")  # best first; others rejected
    languages: tuple[str, ...] = ("ENG",)  # empty = any
    min_seeders: int = 1
    user_is_vip: bool = False
    allow_abridged: bool = False
    allow_dramatised: bool = False  # GraphicAudio / BBC full-cast dramatisations
    freeleech_only: bool = False
    min_bitrate_kbps: float = 24.0  # below: rejected
    max_bitrate_kbps: float = 1500.0  # above: the size/runtime estimate is implausible (flac ~ 700-1000)
    min_score: float = 60.0


@dataclass(frozen=True)
class ScoredRelease:
    release: Release
    score: float  # 0..100; rejected releases keep their relevance score
    accepted: bool
    rejection: str | None  # short machine-ish reason: "my_snatched", "language GER", "sequel number 5 not 3"
    reasons: tuple[str, ...]  # the evidence a person reads: "title 100", "m4b (1st choice)", "212 seeders"
    covers: tuple[float, ...]  # series positions the release covers
    bitrate_kbps: float | None  # size*8/expected runtime, or the tagged bitrate when the runtime is unknown


RELEASE_CANDIDATE_SCHEMA: dict[str, pl.DataType] = {
    "missing_id": pl.Utf8,
    "indexer": pl.Utf8,
    "release_id": pl.Utf8,
    "title": pl.Utf8,
    "authors": pl.Utf8,  # ", "-joined
    "narrators": pl.Utf8,
    "series": pl.Utf8,  # "Name #seq; ..."
    "filetype": pl.Utf8,
    "size_bytes": pl.Int64,
    "bitrate_kbps": pl.Float64,
    "seeders": pl.Int64,
    "leechers": pl.Int64,
    "language": pl.Utf8,
    "freeleech": pl.Boolean,  # free for this user
    "vip": pl.Boolean,
    "my_snatched": pl.Boolean,
    "abridged": pl.Boolean,
    "covers": pl.Utf8,  # "1, 2, 3"
    "score": pl.Float64,
    "accepted": pl.Boolean,
    "rejection": pl.Utf8,
    "reasons": pl.Utf8,  # "; "-joined
    "rank": pl.Int64,  # 1 = best
    "chosen": pl.Boolean,
    "info_hash": pl.Utf8,
    "download_url": pl.Utf8,
    "magnet": pl.Utf8,
}


# --- what a release says about itself ------------------------------------------------------


def _prowlarr_suffix(release: Release) -> tuple[str, str | None, str | None]:
    """(title without the Prowlarr suffix, language code, filetype) of a release title."""
    title = html.unescape(release.title or "")
    match = _PROWLARR_SUFFIX.search(title)
    if not match:
        return title, None, None
    filetype = match.group(2).split()
    return title[: match.start()], match.group(1).upper(), filetype[0].lower() if filetype else None


def release_language(release: Release) -> str | None:
    """The release's language code; Prowlarr's "[GER / MP3]" suffix when the indexer gave none."""
    return (release.language or "").upper() or _prowlarr_suffix(release)[1]


def release_filetype(release: Release) -> str | None:
    """The file type; inferred from the Prowlarr suffix, the tags or the title when missing."""
    if release.filetype and release.filetype.split():
        return release.filetype.lower().split()[0]
    suffix = _prowlarr_suffix(release)[2]
    if suffix:
        return suffix
    words = f"{fold(release.tags)} {fold(release.title)}".split()
    return next((w for w in words if w in _AUDIO_FORMATS or w in _OTHER_FORMATS), None)


def is_abridged(release: Release) -> bool:
    return release.abridged or bool(_ABRIDGED.search(f"{release.title} | {release.tags}"))


def is_dramatised(release: Release) -> bool:
    return bool(_DRAMATISED.search(" | ".join((release.title, release.tags, *release.narrators))))


def _remove_words(text: str, phrases: Iterable[str]) -> str:
    for phrase in sorted({p for p in phrases if p}, key=len, reverse=True):
        text = re.sub(rf"\b{re.escape(phrase)}\b", " ", text)
    return " ".join(text.split())


def _name_phrases(book: WantedBook, release: Release) -> tuple[set[str], set[str]]:
    """Folded author and series names that are not part of a title."""
    authors = {fold(a) for a in (*release.authors, *split_authors(book.author))}
    authors |= {author_key(a) for a in (*release.authors, *split_authors(book.author))}
    names = [html.unescape(name) for name, _ in release.series] + ([book.series] if book.series else [])
    series = {fold(n) for n in names} | {series_key(n) for n in names}
    return authors - {""}, series - {""}


def _phrase_number(words: list[str]) -> int | None:
    """ "eighty four" -> 84, "nineteen eighty four" -> 1984, "two thousand one" -> 2001; None when unsure."""
    values = [_NUMBER_WORD[w] for w in words]
    if any(v >= 100 for v in values):
        total = current = 0
        for v in values:
            if v == 1000:
                total, current = total + max(current, 1) * 1000, 0
            elif v == 100:
                current = max(current, 1) * 100
            else:
                current += v
        return total + current
    chunks: list[list[int]] = []
    for v in values:
        if chunks and len(chunks[-1]) == 1 and chunks[-1][0] in _TENS.values() and 0 < v < 10:
            chunks[-1].append(v)
        else:
            chunks.append([v])
    sums = [sum(c) for c in chunks]
    if len(sums) == 1:
        return sums[0]
    if len(sums) == 2 and sums[0] > 0 and sums[1] >= 10:  # read like a year: "nineteen eighty four"
        return int(f"{sums[0]}{sums[1]:02d}")
    return None


def _number_phrases_as_digits(folded: str) -> str:
    """ "nineteen eighty four" -> "1984" in a folded title, so "1984" and its words compare equal."""

    def digits(match: re.Match[str]) -> str:
        value = _phrase_number(match.group(0).split())
        return match.group(0) if value is None else str(value)

    return _NUMBER_PHRASE.sub(digits, folded)


def _wants_a_part(book: WantedBook) -> bool:
    return bool(_WANTS_A_PART.search(f"{fold(book.title)} {fold(book.position_label)}"))


def _split_part(release: Release) -> int | None:
    """The part number when the title says it is one part of a split upload."""
    for match in _SPLIT_PART.finditer(_prowlarr_suffix(release)[0]):
        if match.group(1):
            value = number_value(match.group(1))
            if value is not None and value >= 1:
                return int(value)
        elif 1 <= int(match.group(2)) <= int(match.group(3)) and int(match.group(3)) > 1:
            return int(match.group(2))
    return None


def _title_numbers(text: str, authors: set[str], series: set[str], *, without_parts: bool = False) -> set[float]:
    """Volume numbers a title carries, without author initials, series names, bitrates, number
    phrases ("Eighty-Four" is not volume 4) or, when asked, split-part markers."""
    text = _BITRATE_TEXT.sub(" ", _PART_OF.sub(" ", text))
    if without_parts:
        text = _SPLIT_PART.sub(" ", text)
    decimals = {float(d) for d in _DECIMAL.findall(text)}
    folded = _remove_words(fold(_DECIMAL.sub(" ", text)), authors | {f"by {a}" for a in authors} | series)
    return sequel_numbers(_NUMBER_PHRASE.sub(" ", folded)) | decimals


def _strip_volume_noise(key: str, authors: set[str], series: set[str]) -> str:
    key = _remove_words(key, authors | series)
    key = _BARE_NUMBER.sub(" ", _VOLUME_WORDS.sub(" ", key))
    return _EDGE_WORDS.sub("", " ".join(key.split()))


def _title_keys(title: str, authors: set[str], series: set[str]) -> set[str]:
    key = title_key(title)
    return {_number_phrases_as_digits(k) for k in (key, _strip_volume_noise(key, authors, series))} - {""}


def _title_score(book: WantedBook, release: Release, authors: set[str], series: set[str]) -> tuple[float, bool]:
    """Best fuzz.ratio between the wanted title and the readings of the release title, and
    whether only the wanted title's main part (before its subtitle) matched that well."""
    base, _, _ = _prowlarr_suffix(release)
    without_brackets = _BRACKETS.sub(" ", base)
    keys = {title_key(base), title_key(without_brackets)}
    for segment in _SEGMENTS.split(without_brackets):
        key = title_key(segment)
        if key and key not in series and key not in authors:
            keys.add(key)
    keys |= {_strip_volume_noise(k, authors, series) for k in list(keys)}
    keys = {_number_phrases_as_digits(k) for k in keys} - {""}
    wanted = _title_keys(book.title or "", authors, series)
    if not wanted or not keys:
        return 0.0, False
    full = max(fuzz.ratio(w, k) for w in wanted for k in keys)
    main_part = _MAIN_TITLE_END.split(book.title or "", maxsplit=1)
    main = _title_keys(main_part[0], authors, series) - series - authors if len(main_part) == 2 else set()
    if full >= MAIN_TITLE_MAX or not main:
        return full, False
    # The main part alone is short ("2001" vs "2010" is 75), so only a near-exact match counts.
    if max(fuzz.ratio(m, k) for m in main for k in keys) >= MAIN_TITLE_MAX:
        return MAIN_TITLE_MAX, True
    return full, False


def _name_similarity(a: str, b: str) -> float:
    """Name keys compared in either word order: "Liu Cixin" is "Cixin Liu"."""
    return max(fuzz.ratio(a, b), fuzz.token_sort_ratio(a, b))


def _author_score(book: WantedBook, release: Release) -> float | None:
    """Best fuzz.ratio of author keys; None when one side names nobody."""
    wanted = {author_key(a) for a in split_authors(book.author)} - {""}
    if not wanted:
        return None
    offered = {author_key(a) for a in release.authors} - {""}
    if offered:
        return max(_name_similarity(w, o) for w in wanted for o in offered)
    # Torznab titles often carry the author ("... by Brandon Sanderson") when no attribute does.
    title = f" {fold(release.title)} "
    names = wanted | {fold(a) for a in split_authors(book.author)}
    return 100.0 if any(f" {name} " in title for name in names) else None


def _series_entry(book: WantedBook, release: Release) -> tuple[str, Position | None] | None:
    """The release's entry for the wanted series (name, parsed sequence); the one at the wanted position first."""
    wanted = series_key(book.series)
    if not wanted:
        return None
    found: list[tuple[str, Position | None]] = []
    for name, sequence in release.series:
        name = html.unescape(name)
        if fuzz.ratio(series_key(name), wanted) >= SERIES_SAME:
            found.append((name, parse_position(sequence)))
    if not found:
        return None
    return next((e for e in found if _covers_position(e[1], book.position)), found[0])


def _covers_position(position: Position | None, wanted: float | None) -> bool:
    if position is None or wanted is None:
        return False
    if position.kind == "omnibus" and position.lo is not None and position.hi is not None:
        return position.lo <= wanted <= position.hi
    return position.sort_key is not None and math.isclose(position.sort_key, wanted)


def _title_mentions_series(book: WantedBook, release: Release) -> bool:
    key = series_key(book.series)
    return bool(key) and f" {key} " in f" {fold(release.title)} "


def _label(book: WantedBook) -> str:
    return book.position_label or format_position(book.position)


def _positions_text(values: Iterable[float]) -> str:
    return ", ".join(format_position(v) for v in sorted(values))


def _bitrate(book: WantedBook, release: Release, parts: int) -> tuple[float | None, bool]:
    """(kbps, estimated): size over the expected runtime, else the uploader's tag."""
    if release.size_bytes and book.expected_duration_s and book.expected_duration_s > 0:
        return release.size_bytes * 8 / (book.expected_duration_s * max(parts, 1)) / 1000, True
    tagged = tagged_bitrate_kbps(release.tags) or tagged_bitrate_kbps(release.title)
    return (float(tagged), False) if tagged is not None else (None, False)


# --- scoring -------------------------------------------------------------------------------


@dataclass
class _Verdict:
    """What the checks found so far: rejections in the order checked, evidence, bonus points."""

    rejections: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # title, author: shown first
    reasons: list[str] = field(default_factory=list)
    bonus: float = 0.0

    def reject(self, rejection: str) -> None:
        self.rejections.append(rejection)


@dataclass(frozen=True)
class _Coverage:
    """Which series positions a release holds, as far as its series entry or title tell."""

    entry: tuple[str, Position | None] | None  # the release's entry for the wanted series
    omnibus: bool
    covers: tuple[float, ...]
    contains_wanted: bool


def _check_kind(release: Release, prefs: ReleasePreferences, verdict: _Verdict) -> None:
    """The rules about what kind of copy it is: snatched, language, abridged, dramatised, parts, format."""
    if release.my_snatched:
        verdict.reject("my_snatched")
        verdict.reasons.append("already snatched: never grab again")

    language = release_language(release)
    if language is None:
        verdict.reasons.append("language unknown")
        verdict.bonus -= UNKNOWN_LANGUAGE_PENALTY
    elif prefs.languages and language not in {code.upper() for code in prefs.languages}:
        verdict.reject(f"language {language}")

    if is_abridged(release) and not prefs.allow_abridged:
        verdict.reject("abridged")
    if is_dramatised(release) and not prefs.allow_dramatised:
        verdict.reject("dramatised")
    part_of = _PART_OF.search(release.title)
    if part_of and int(part_of.group(2)) > 1:
        # One part of a split upload is not the book, whatever else is allowed.
        verdict.reject(f"multi-part {part_of.group(1)} of {part_of.group(2)}")

    filetype = release_filetype(release)
    formats = tuple(f.lower() for f in prefs.formats)
    if filetype in formats:
        rank = formats.index(filetype)
        verdict.bonus += FORMAT_BONUS * (len(formats) - rank) / len(formats)
        verdict.reasons.append(f"{filetype} ({_ORDINAL.get(rank + 1, f'{rank + 1}th')} choice)")
    elif filetype is None:
        verdict.reasons.append("format unknown")
    else:
        verdict.reject(f"format {filetype}")


def _coverage(book: WantedBook, release: Release, verdict: _Verdict) -> _Coverage:
    entry = _series_entry(book, release)
    position = entry[1] if entry else None
    omnibus, covers = False, ()
    if position is not None and position.kind == "omnibus" and position.lo is not None and position.hi is not None:
        omnibus, covers = True, tuple(float(p) for p in range(int(position.lo), int(position.hi) + 1))
    elif position is not None and position.sort_key is not None:
        covers = (position.sort_key,)
        if position.part is not None and "part" not in (book.position_label or "").lower():
            verdict.reject(f"multi-part {position.raw}")
    elif title_range := _TITLE_RANGE.search(release.title):
        lo, hi = int(title_range.group(1)), int(title_range.group(2))
        if 1 <= lo < hi <= lo + 50:
            omnibus, covers = True, tuple(float(p) for p in range(lo, hi + 1))
    elif _OMNIBUS_WORDS.search(release.title) or re.search(r"\bomnibus\b", release.tags, re.IGNORECASE):
        omnibus = True
    contains = book.position is not None and any(math.isclose(c, book.position) for c in covers)
    return _Coverage(entry, omnibus, covers, contains)


def _check_split(book: WantedBook, release: Release, verdict: _Verdict) -> None:
    """"Part 1" or "(1 of 2)" of a book that has no parts is half a download, whatever its size."""
    if _wants_a_part(book) or _PART_OF.search(release.title):  # "Part 1 of 6" is rejected as multi-part
        return
    part = _split_part(release)
    if part is not None:
        verdict.reject(f"split part {part}")


def _check_sequel_numbers(
    book: WantedBook, release: Release, coverage: _Coverage, names: tuple[set[str], set[str]], verdict: _Verdict
) -> set[float]:
    """A number in the title that the wanted book does not carry is another volume; returns the extras."""
    authors, series_names = names
    without_parts = not _wants_a_part(book)  # a part marker is reported as a split part, not a volume
    offered = _title_numbers(_prowlarr_suffix(release)[0], authors, series_names, without_parts=without_parts)
    wanted = _title_numbers(book.title or "", authors, series_names)
    if book.position is not None:
        wanted.add(book.position)
    allowed = wanted | {n for name in series_names for n in sequel_numbers(name)}
    if coverage.contains_wanted:
        allowed |= set(coverage.covers)
    extra = {n for n in offered if not any(math.isclose(n, a) for a in allowed)}
    if not wanted:
        extra.discard(1.0)  # "Book 1" on a standalone is noise, not a sequel
    if extra:
        shown = _label(book) or _positions_text(wanted) or "none"
        verdict.reject(f"sequel number {_positions_text(extra)} not {shown}")
    return offered if extra else set()


def _check_series(book: WantedBook, release: Release, coverage: _Coverage, verdict: _Verdict) -> float:
    """Series position and omnibus coverage; returns the series evidence (0..100)."""
    series_score = 100.0
    position = coverage.entry[1] if coverage.entry else None
    if book.series and book.position is not None:
        if coverage.entry is not None and position is not None and position.kind != "unknown":
            if coverage.contains_wanted:
                verdict.evidence.append(f"series {coverage.entry[0]} #{position.raw.strip()}")
            else:
                verdict.reject(f"wrong series position {position.raw.strip()}")
                series_score = 0.0
        elif release.series:
            series_score = 20.0  # listed in other series only; a book may sit in several, so no rejection
            others = ", ".join(f"{html.unescape(n)} #{s}" for n, s in release.series)
            verdict.evidence.append(f"other series {others}")
        else:
            series_score = 90.0 if _title_mentions_series(book, release) else 50.0
    if not coverage.omnibus:
        return series_score
    covers = coverage.covers
    if not covers or book.position is None:
        verdict.reject("omnibus")
    elif not coverage.contains_wanted:
        if not any(r.startswith(("wrong series position", "sequel number")) for r in verdict.rejections):
            verdict.reject(f"wrong series position {_positions_text(covers)}")
    else:
        owned = [c for c in covers if c in book.owned_positions]
        not_missing = [c for c in covers if c not in book.missing_positions and c not in book.owned_positions]
        if owned:
            verdict.reject(f"omnibus covers owned {_positions_text(owned)}")
        elif not_missing:
            verdict.reject(f"omnibus covers {_positions_text(not_missing)} not missing")
        else:
            verdict.evidence.append(f"omnibus covers {_positions_text(covers)} (all missing)")
    return series_score


def _check_title(
    book: WantedBook, release: Release, coverage: _Coverage, names: tuple[set[str], set[str]], verdict: _Verdict
) -> float:
    if book.title:
        title, main_only = _title_score(book, release, *names)
        if coverage.omnibus and coverage.contains_wanted and (
            coverage.entry is not None or _title_mentions_series(book, release)
        ):
            title = max(title, OMNIBUS_TITLE)
        verdict.evidence.insert(0, f"title {title:.0f} (main title)" if main_only else f"title {title:.0f}")
        if title < TITLE_MIN:
            verdict.reject(f"title {title:.0f} < {TITLE_MIN:.0f}")
        return title
    # No title known: only the series entry (or the series name and number in the title) can say it.
    if coverage.entry is not None and coverage.contains_wanted:
        title = OMNIBUS_TITLE if coverage.omnibus else 100.0
    elif _title_mentions_series(book, release) and book.position is not None and any(
        math.isclose(n, book.position) for n in _title_numbers(release.title, *names)
    ):
        title = 85.0
    else:
        title = 0.0
    verdict.evidence.insert(0, f"title unknown: series match {title:.0f}")
    if title < TITLE_MIN:
        verdict.reject(f"not {book.series or 'the series'} #{_label(book)}")
    return title


def _check_author(book: WantedBook, release: Release, verdict: _Verdict) -> float:
    author = _author_score(book, release)
    if author is None:
        verdict.evidence.insert(1, "author unknown")
        return 50.0
    verdict.evidence.insert(1, f"author {author:.0f}")
    if author < AUTHOR_MIN:
        verdict.reject(f"author {author:.0f} < {AUTHOR_MIN:.0f}")
    return author


def _check_copy(
    book: WantedBook, release: Release, prefs: ReleasePreferences, coverage: _Coverage, verdict: _Verdict
) -> float | None:
    """Narrator, bitrate, seeders, freeleech; returns the bitrate."""
    owned_narrators = {author_key(n) for n in book.owned_narrators} - {""}
    for narrator in release.narrators:
        key = author_key(narrator)
        if key and any(_name_similarity(key, owned) >= NARRATOR_SAME for owned in owned_narrators):
            verdict.bonus += NARRATOR_BONUS
            verdict.reasons.append(f"narrator {narrator} as owned")
            break

    kbps, estimated = _bitrate(book, release, len(coverage.covers) if coverage.omnibus else 1)
    if kbps is not None:
        verdict.reasons.append(f"~{kbps:.0f} kbps" if estimated else f"{kbps:.0f} kbps (tagged)")
        if not prefs.min_bitrate_kbps <= kbps <= prefs.max_bitrate_kbps:
            verdict.reject(f"bitrate {kbps:.0f} kbps")
        elif SANE_KBPS[0] <= kbps <= SANE_KBPS[1]:
            verdict.bonus += BITRATE_BONUS

    if release.seeders < prefs.min_seeders:
        verdict.reject(f"seeders {release.seeders} < {prefs.min_seeders}")
    verdict.bonus += min(SEEDERS_BONUS_MAX, math.log10(max(release.seeders, 0) + 1))
    verdict.reasons.append(f"{release.seeders} seeders")

    if release.is_freeleech(prefs.user_is_vip):
        verdict.bonus += FREELEECH_BONUS
        if release.free:
            verdict.reasons.append("freeleech")
        elif release.personal_freeleech:
            verdict.reasons.append("personal freeleech")
        else:
            verdict.reasons.append("freeleech (VIP)")
    else:
        if release.vip:
            verdict.reasons.append("VIP torrent (costs ratio)")
        if prefs.freeleech_only:
            verdict.reject("not freeleech")
    return kbps


def release_score(book: WantedBook, release: Release, prefs: ReleasePreferences) -> ScoredRelease:
    """Score one release for one wanted book; the first hard rule it breaks is its rejection."""
    verdict = _Verdict()
    names = _name_phrases(book, release)
    _check_kind(release, prefs, verdict)
    _check_split(book, release, verdict)
    coverage = _coverage(book, release, verdict)
    sequel_extra = _check_sequel_numbers(book, release, coverage, names, verdict)
    series = _check_series(book, release, coverage, verdict)
    title = _check_title(book, release, coverage, names, verdict)
    author = _check_author(book, release, verdict)
    kbps = _check_copy(book, release, prefs, coverage, verdict)

    covers = coverage.covers
    if not covers and not coverage.omnibus:
        # Without a series entry or range, the title's own volume number says what it is.
        covers = tuple(sorted(sequel_extra)) if sequel_extra else (book.position,) if book.position is not None else ()
    relevance = W_TITLE * title + W_AUTHOR * author + W_SERIES * series
    score = round(min(100.0, max(0.0, RELEVANCE_SHARE * relevance + verdict.bonus)), 2)
    if not verdict.rejections and score < prefs.min_score:
        verdict.reject(f"score {score:.0f} < {prefs.min_score:.0f}")
    return ScoredRelease(
        release=release,
        score=score,
        accepted=not verdict.rejections,
        rejection=verdict.rejections[0] if verdict.rejections else None,
        reasons=(*verdict.evidence, *verdict.reasons),
        covers=covers,
        bitrate_kbps=round(kbps, 1) if kbps is not None else None,
    )


def rank_releases(book: WantedBook, releases: Iterable[Release], prefs: ReleasePreferences) -> list[ScoredRelease]:
    """Every release scored once (deduped by indexer + id): accepted first, best first, ties stable."""
    seen: dict[tuple[str, str], Release] = {}
    for release in releases:
        seen.setdefault((release.indexer, release.release_id), release)
    scored = [release_score(book, release, prefs) for release in seen.values()]
    return sorted(
        scored,
        key=lambda s: (not s.accepted, -s.score, -s.release.seeders, s.release.release_id, s.release.indexer),
    )


def _rejection_kind(rejection: str) -> str:
    """The kind of a rejection: "sequel number 5 not 3" -> "sequel number"; "language GER" stays."""
    words = []
    for word in rejection.split():
        if any(ch.isdigit() for ch in word):
            break
        words.append(word)
    return " ".join(words) or rejection


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def choose_release(
    ranked: list[ScoredRelease], exclude: Collection[tuple[str, str]] = ()
) -> tuple[ScoredRelease | None, str]:
    """The best accepted release not in `exclude` (ones that failed before), and why."""
    excluded = set(exclude)
    usable = [s for s in ranked if s.accepted and (s.release.indexer, s.release.release_id) not in excluded]
    skipped = sum(1 for s in ranked if s.accepted and (s.release.indexer, s.release.release_id) in excluded)
    if not ranked:
        return None, "no release found"
    if not usable:
        kinds = Counter(_rejection_kind(s.rejection) for s in ranked if s.rejection)
        if skipped:
            kinds["failed before"] += skipped
        counts = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
        return None, f"no acceptable release among {len(ranked)}: {counts}"
    best = usable[0]
    traits = [release_filetype(best.release) or "format unknown"]
    if any(r in _FREELEECH_REASONS for r in best.reasons):
        traits.append("freeleech")
    traits.extend(r for r in best.reasons if r.startswith("narrator ") or r.startswith("omnibus covers"))
    traits.append(_plural(best.release.seeders, "seeder"))
    note = f" ({skipped} failed before, skipped)" if skipped else ""
    return best, f"best of {_plural(len(usable), 'acceptable release')}{note}: {', '.join(traits)}"


def candidate_frame(book: WantedBook, ranked: list[ScoredRelease], chosen: ScoredRelease | None) -> pl.DataFrame:
    """The release_candidates rows of one wanted book (the caller adds searched_at)."""
    chosen_key = (chosen.release.indexer, chosen.release.release_id) if chosen else None
    rows = []
    for rank, scored in enumerate(ranked, start=1):
        r = scored.release
        rows.append(
            {
                "missing_id": book.missing_id,
                "indexer": r.indexer,
                "release_id": r.release_id,
                "title": r.title,
                "authors": ", ".join(r.authors),
                "narrators": ", ".join(r.narrators),
                "series": "; ".join(f"{html.unescape(name)} #{seq}" for name, seq in r.series),
                "filetype": release_filetype(r),
                "size_bytes": r.size_bytes,
                "bitrate_kbps": scored.bitrate_kbps,
                "seeders": r.seeders,
                "leechers": r.leechers,
                "language": release_language(r),
                "freeleech": any(reason in _FREELEECH_REASONS for reason in scored.reasons),
                "vip": r.vip,
                "my_snatched": r.my_snatched,
                "abridged": is_abridged(r),
                "covers": _positions_text(scored.covers),
                "score": scored.score,
                "accepted": scored.accepted,
                "rejection": scored.rejection,
                "reasons": "; ".join(scored.reasons),
                "rank": rank,
                "chosen": (r.indexer, r.release_id) == chosen_key,
                "info_hash": r.info_hash,
                "download_url": r.download_url,
                "magnet": (public_magnet(r.magnet) or None) if r.magnet else None,  # no trackers: they carry passkeys
            }
        )
    return frame_from_rows(rows, RELEASE_CANDIDATE_SCHEMA)
