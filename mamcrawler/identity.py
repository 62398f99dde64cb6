"""Identity from evidence: whether two records are the same book, series or author.

Every consumer asks these functions (gaps, completeness, following authors, the catalogue
link, the acquisition guard), so "owned" and "the same series" mean one thing everywhere.

- A work is owned when any evidence says so: an identifier ABS holds; an identifier, work
  id or title that enrichment matched to an owned book at or above the ownership level
  (default MEDIUM); its series and position (completeness); or its folded title by the same
  author, with the sequel-number guard ("Remnant II" never owns "Remnant III").
- A series is one series when its books share a name and an author, a provider series id
  (Audible series ASIN, Hardcover series id), or a catalogue that lists them: a series
  continued by another author stays one series, while two unrelated series with the same
  name (disjoint authors, disjoint catalogues) stay apart.
- Authors are one author when they fold to the same key (`names.author_key`: initials,
  accents, "Last, First"), or when one is ABS's misreading of Audible's "Pen Name, Real Name".

Absence is never evidence: a record missing from one answer proves nothing.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from functools import lru_cache

import polars as pl
from rapidfuzz import fuzz

from mamcrawler.candidates import isbn13
from mamcrawler.enrichment import RANK, sequel_numbers
from mamcrawler.names import author_key, clean_title, series_key, split_authors, title_key
from mamcrawler.positions import parse_position
from mamcrawler.series_recovery import strip_series_note

DEFAULT_MIN_CONFIDENCE = "MEDIUM"

# --- authors ---------------------------------------------------------------------------


def author_aliases(keys: Iterable[str]) -> dict[str, str]:
    """{misread key: author key} for ABS's reading of "Pen Name, Real Name".

    ABS takes a comma after a one-word name for "Last, First", so Audible's credit
    "Shirtaloon, Travis Deverell" becomes one author "Travis Deverell Shirtaloon" (and
    "Richard Bachman, Stephen King" becomes "Stephen King Richard Bachman"). Such a key
    (three or more words) is the pen name when the library knows it as an author of its
    own, else the real name when the library knows that.
    """
    keys = {k for k in keys if k}
    aliases = {}
    for key in keys:
        if (target := _misread_as(key, keys)) is not None:
            aliases[key] = target
    return aliases


def _misread_as(key: str, known: set[str]) -> str | None:
    words = key.split()
    if len(words) < 3:
        return None
    if words[-1] in known:
        return words[-1]
    prefix = " ".join(words[:-1])
    if prefix in known:
        return prefix
    # A pen name of two words or more: "Robert Galbraith, J.K. Rowling" read as "J.K. Rowling
    # Robert Galbraith", "Richard Bachman, Stephen King" as "Stephen King Richard Bachman".
    splits = [(" ".join(words[:i]), " ".join(words[i:])) for i in range(2, len(words) - 1)]
    return next((pen for _, pen in splits if pen in known), None) or next((real for real, _ in splits if real in known), None)


def same_author(ours: str, theirs: str) -> bool:
    """Two author keys for one person: equal, or one is the other's pen-name misreading."""
    if not ours or not theirs:
        return False
    return ours == theirs or _misread_as(ours, {theirs}) == theirs or _misread_as(theirs, {ours}) == ours


def works_per_author(books: pl.DataFrame) -> Counter:
    """Owned works per author key: the same book in two folders (or under one ASIN/ISBN)
    counts once, and co-author order does not matter."""
    work = distinct_works(books)
    seen = {(work[item_id], k) for item_id, keys in books.select("item_id", "author_keys").iter_rows() for k in keys or ()}
    return Counter(k for _, k in seen)


def distinct_works(books: pl.DataFrame) -> dict[str, str]:
    """item_id -> a work id shared by every item of the same book (folded title and
    authors, or a shared ASIN or ISBN)."""
    uf = UnionFind()
    columns = books.select("item_id", "dedup_key", "asin", "isbn").iter_rows()
    for item_id, dedup, asin, isbn in columns:
        uf.union(f"i\x1f{item_id}", f"d\x1f{dedup}")
        if asin:
            uf.union(f"i\x1f{item_id}", f"a\x1f{asin.upper()}")
        if (isbn := isbn13(isbn)) is not None:
            uf.union(f"i\x1f{item_id}", f"b\x1f{isbn}")
    return {item_id: uf.find(f"i\x1f{item_id}") for item_id in books["item_id"].to_list()}


# --- works ------------------------------------------------------------------------------


def work_title(title: str | None) -> str:
    """A title as a work: release noise and a series note removed
    ("The Well of Ascension (Mistborn, Book 2) (Unabridged)" -> "The Well of Ascension")."""
    return _work_title(title) if title else ""


@lru_cache(maxsize=262_144)  # catalogue and library titles are compared many times each
def _work_title(title: str) -> str:
    return strip_series_note(clean_title(title))


@lru_cache(maxsize=262_144)
def work_key(title: str | None) -> str:
    return title_key(work_title(title))


_POSSESSIVE = re.compile(r"^(?P<who>[^'’:]+?)['’]s\s+(?P<rest>.+)$")


def uncredited(title: str | None, known_authors: Collection[str]) -> str:
    """The work title without a leading author credit: "Robert Ludlum's The Bourne Sanction"
    is "The Bourne Sanction" when Robert Ludlum is a known author ("Ender's Game" stays)."""
    text = work_title(title)
    match = _POSSESSIVE.match(text)
    if match and len(match["who"].split()) >= 2 and author_key(match["who"]) in known_authors:
        return match["rest"]
    return text


def match_keys(title: str | None, known_authors: Collection[str]) -> frozenset[str]:
    """Every key a title is known by: the work key, the part after a colon ("Mistborn: The
    Final Empire" is "The Final Empire") and the title without an author credit."""
    keys = _facts(title)[0]
    plain = uncredited(title, known_authors)
    return keys | _facts(plain)[0] if plain != work_title(title) else keys


def _subtitle_key(title: str) -> str | None:
    """ "Mistborn: The Final Empire" -> "final empire": the part after a colon, when it is a title itself."""
    _, sep, rest = title.partition(":")
    key = title_key(rest) if sep else ""
    return key if len(key.split()) >= 2 else None


# A tag line after the title is no part of the work: "Memorial Day: A Mitch Rapp Novel",
# "Bury Your Dead - A Chief Inspector Gamache Novel", "Redshirts: A Novel with Three Codas".
_TAGLINE = re.compile(
    r"^(?P<title>.+?)\s*(?::|\s-|\s–)\s+an?\s+(?:[^:]*?\s)?(?:novel|novella|thriller|mystery)"
    r"(?:\s+(?:with|of|in|about|from)\s+[^:]+)?\s*$",
    re.IGNORECASE,
)


# An alternative title after "or" (OpenLibrary keeps them): "The Hobbit, or, There and Back
# Again", "Frankenstein; or, The Modern Prometheus" are "The Hobbit" and "Frankenstein".
_ALTERNATIVE = re.compile(r"^(?P<title>.*?[^\W\d_].*?)\s*[,;:]\s*or\s*,?\s+\S.*$", re.IGNORECASE)


def _before_alternative(title: str) -> str | None:
    match = _ALTERNATIVE.match(title)
    return match["title"] if match else None


def _before_tagline(title: str) -> str | None:
    """ "Memorial Day: A Mitch Rapp Novel" -> "Memorial Day": the title before a tag line."""
    match = _TAGLINE.match(title)
    return match["title"] if match else None


@lru_cache(maxsize=262_144)
def _facts(title: str | None) -> tuple[frozenset[str], frozenset[float], str]:
    """(match keys: the whole title, the part after a colon and the part before a tag line,
    sequel numbers, main key)."""
    text = work_title(title)
    if not text:
        return frozenset(), frozenset(), ""
    key = title_key(text)
    # A number in the tag line ("A Novel with Three Codas") is not the work's sequel number.
    plain = _before_tagline(text)
    alternative = _before_alternative(text)
    keys = {key, _subtitle_key(text), plain and title_key(plain), alternative and title_key(alternative)} - {None, ""}
    return frozenset(keys), frozenset(sequel_numbers(plain or text)), key


def same_work(a: str | None, b: str | None) -> bool:
    """Whether two titles name the same work, by title alone (callers check the authors)."""
    keys_a, numbers_a, _ = _facts(a)
    keys_b, numbers_b, _ = _facts(b)
    return numbers_a == numbers_b and bool(keys_a & keys_b)


def matched_candidates(candidates: pl.DataFrame | None, min_confidence: str = DEFAULT_MIN_CONFIDENCE) -> pl.DataFrame | None:
    """The provider candidates (`book_metadata` rows) matched to an owned book at or above
    `min_confidence`: what enrichment may say about ownership and series."""
    if candidates is None or candidates.is_empty() or "match_level" not in candidates.columns:
        return None
    if min_confidence not in RANK:
        raise ValueError(f"ownership confidence must be one of {', '.join(RANK)}, not {min_confidence!r}")
    levels = pl.col("match_level").replace_strict(RANK, default=0, return_dtype=pl.Int64)
    matched = candidates.filter(levels >= max(1, RANK[min_confidence]))
    return matched if not matched.is_empty() else None


class OwnedIndex:
    """Everything that says "this work is owned": identifiers, provider work ids and folded
    titles per author, from the library and from what enrichment matched to it."""

    def __init__(self, books: pl.DataFrame, matched: pl.DataFrame | None = None) -> None:
        self.asins = {a.upper() for a in books["asin"].drop_nulls().to_list()}
        self.isbns = {i for i in (isbn13(x) for x in books["isbn"].drop_nulls().to_list()) if i}
        self.works: set[tuple[str, str]] = set()  # (provider, provider's work id)
        self.titles: dict[str, list[tuple[frozenset[str], frozenset[float]]]] = defaultdict(list)
        self.by_author: dict[str, list[tuple[str, frozenset[float]]]] = defaultdict(list)
        authors_of: dict[str, frozenset[str]] = {}
        for item_id, keys in books.select("item_id", "author_keys").iter_rows():
            authors_of[item_id] = frozenset(keys or ())
        self.known_authors = frozenset(k for keys in authors_of.values() for k in keys)
        for item_id, title in books.select("item_id", "title").iter_rows():
            self._add_title(title, authors_of[item_id])
        if matched is not None:
            self._add_matches(matched, authors_of)

    def _facts(self, title: str | None) -> tuple[frozenset[str], frozenset[float], str]:
        _, numbers, key = _facts(title)
        return match_keys(title, self.known_authors), numbers, key

    def _add_title(self, title: str | None, authors: frozenset[str]) -> None:
        keys, numbers, _ = self._facts(title)
        for key in keys:
            self.titles[key].append((authors, numbers))
            for author in authors:
                self.by_author[author].append((key, numbers))

    def _add_matches(self, matched: pl.DataFrame, authors_of: dict[str, frozenset[str]]) -> None:
        columns = [c for c in ("item_id", "provider", "provider_id", "title", "asin", "isbn", "isbns", "alt_titles") if c in matched.columns]
        for row in matched.select(columns).iter_rows(named=True):
            if row.get("asin"):
                self.asins.add(row["asin"].upper())
            for isbn in [row.get("isbn"), *(row.get("isbns") or ())]:
                if (isbn := isbn13(isbn)) is not None:
                    self.isbns.add(isbn)
            if row.get("provider_id"):
                self.works.add((row["provider"], str(row["provider_id"])))
            authors = authors_of.get(row["item_id"], frozenset())
            for title in [row.get("title"), *(row.get("alt_titles") or ())]:
                self._add_title(title, authors)

    def owns(
        self,
        title: str | None,
        authors: set[str] | frozenset[str],
        asin: str | None = None,
        isbn: str | None = None,
        work: tuple[str, str | None] | None = None,
    ) -> str | None:
        """The evidence that a work is owned ("asin", "isbn", "work id", "title"), or None."""
        if asin and asin.upper() in self.asins:
            return "asin"
        if isbn and isbn13(isbn) in self.isbns:
            return "isbn"
        if work and work[1] and (work[0], str(work[1])) in self.works:
            return "work id"
        keys, numbers, key = self._facts(title)
        for key_ in keys:
            for owned_authors, owned_numbers in self.titles.get(key_, ()):
                if owned_numbers == numbers and (not authors or not owned_authors or authors & owned_authors):
                    return "title"
        if not key:
            return None
        # Near-identical titles by the same author ("The Final Empire" / "Final Empire, The").
        for author in authors:
            for owned_key, owned_numbers in self.by_author.get(author, ()):
                if owned_numbers == numbers and fuzz.token_sort_ratio(key, owned_key) >= 95:
                    return "title"
        return None


def owned_matches(missing: pl.DataFrame, books: pl.DataFrame, matched: pl.DataFrame | None = None) -> pl.DataFrame:
    """The rows of `missing` (missing_books shape) an owned item stands for, by identifier or
    by folded title and author, with the evidence: what must never be downloaded."""
    index = OwnedIndex(books, matched)
    hits = []
    for missing_id, title, author, asin in missing.select("missing_id", "title", "author", "asin").iter_rows():
        keys = {k for k in (author_key(a) for a in split_authors(author)) if k}
        if (why := index.owns(title, keys, asin=asin)) is not None:
            hits.append({"missing_id": missing_id, "title": title, "author": author, "evidence": why})
    return pl.DataFrame(hits, schema={"missing_id": pl.Utf8, "title": pl.Utf8, "author": pl.Utf8, "evidence": pl.Utf8})


# --- series -----------------------------------------------------------------------------


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _series_refs(matched: pl.DataFrame | None) -> dict[tuple[str, str], list[str]]:
    """(item_id, series key) -> provider series ids a matched candidate names for it."""
    refs: dict[tuple[str, str], list[str]] = defaultdict(list)
    if matched is None or "series_refs" not in matched.columns:
        return refs
    for item_id, provider, entries in matched.select("item_id", "provider", "series_refs").iter_rows():
        for entry in entries or ():
            if entry and entry.get("name") and entry.get("ref"):
                refs[(item_id, series_key(entry["name"]))].append(f"{provider}\x1f{entry['ref']}")
    return refs


def _refs_by_position(refs: dict[tuple[str, str], list[str]], flat: pl.DataFrame, matched: pl.DataFrame | None) -> None:
    """A provider series a book's candidate names under another name than any of the book's
    memberships ("A Court of Thorns and Roses" for the tag "ACOTAR", "Hercule Poirot" for
    "Poirot") stands for the membership at the same position: one provider series, one series."""
    if matched is None or not refs or "series" not in matched.columns:
        return
    positions: dict[tuple[str, str], float] = {}
    for item_id, entries in matched.select("item_id", "series").iter_rows():
        for entry in entries or ():
            if entry and entry.get("name") and (pos := parse_position(entry.get("sequence"))) is not None and pos.sort_key is not None:
                positions.setdefault((item_id, series_key(entry["name"])), pos.sort_key)
    own: dict[str, list[tuple[str, float | None]]] = defaultdict(list)
    for item_id, key, position in flat.select("item_id", "series_key", "sort_key").iter_rows():
        own[item_id].append((key, position))
    for (item_id, key), found in list(refs.items()):
        if any(k == key for k, _ in own.get(item_id, ())) or (position := positions.get((item_id, key))) is None:
            continue
        for other, at in own.get(item_id, ()):
            if at == position and not refs.get((item_id, other)):
                refs[(item_id, other)] = list(found)


def _with_matched_positions(flat: pl.DataFrame, books: pl.DataFrame, matched: pl.DataFrame | None) -> pl.DataFrame:
    """A book ABS knows in no series gains the first series and position its matched candidate
    names (source "enrichment"): that position is owned, although it makes no holes of its own."""
    if matched is None or "series" not in matched.columns:
        return flat
    placed = set(flat["item_id"].to_list())
    book_rows = {r[0]: r for r in books.select("item_id", "author", "author_keys").iter_rows()}
    extra = []
    for item_id, series in matched.select("item_id", "series").iter_rows():
        if item_id in placed or item_id not in book_rows:
            continue
        for entry in series or ():
            pos = parse_position((entry or {}).get("sequence"))
            if pos is None or pos.sort_key is None or not series_key(entry.get("name")):
                continue
            _, author, author_keys = book_rows[item_id]
            extra.append({
                "item_id": item_id, "author": author, "author_keys": author_keys, "series": entry["name"],
                "series_key": series_key(entry["name"]), "position_raw": pos.raw, "sort_key": pos.sort_key,
                "range_lo": pos.lo, "range_hi": pos.hi, "part": pos.part, "kind": pos.kind, "source": "enrichment",
            })
            placed.add(item_id)
            break
    return pl.concat([flat, pl.DataFrame(extra, schema=flat.schema)]) if extra else flat


def series_memberships(books: pl.DataFrame, matched: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per (book, series membership), with the series identity `series_id`.

    Memberships are one series when they share a folded name and an author, or (from
    `matched`, see `matched_candidates`) a provider's series id: a continuation by another
    author joins its series, two unrelated series of the same name stay apart.
    """
    flat = (
        books.select("item_id", "author", "author_keys", "series")
        .explode("series")
        .drop_nulls("series")
        .unnest("series")
        .filter(pl.col("series_key") != "")
    )
    flat = _with_matched_positions(flat, books, matched)
    items, keys, authors_per_row = flat["item_id"].to_list(), flat["series_key"].to_list(), flat["author_keys"].to_list()
    refs = _series_refs(matched)
    _refs_by_position(refs, flat, matched)
    uf = UnionFind()
    for item_id, key, authors in zip(items, keys, authors_per_row):
        nodes = [f"{key}\x1f{a}" for a in authors]
        for node in nodes:
            uf.union(nodes[0], node)
        for ref in refs.get((item_id, key), ()) if nodes else ():
            uf.union(nodes[0], f"\x00ref\x1f{ref}")
    # Each group is named after its author with the most books in it (ties: alphabetical), so
    # a co-author joining later does not rename the series: its missing books keep their ids.
    books_per_node = Counter(f"{key}\x1f{a}" for key, authors in zip(keys, authors_per_row) for a in authors)
    name: dict[str, tuple[int, str]] = {}
    for node, count in books_per_node.items():
        root = uf.find(node)
        if root not in name or (-count, node) < name[root]:
            name[root] = (-count, node)
    # Books without an author join the series' largest author group.
    rows_per_root = Counter(uf.find(f"{k}\x1f{a[0]}") for k, a in zip(keys, authors_per_row) if a)
    largest: dict[str, str] = {}
    for root, _ in sorted(rows_per_root.items(), key=lambda kv: (-kv[1], kv[0])):
        largest.setdefault(name[root][1].split("\x1f", 1)[0], root)

    def series_id(key: str, authors: list[str]) -> str:
        root = uf.find(f"{key}\x1f{authors[0]}") if authors else largest.get(key)
        return f"{key}|" if root is None else name[root][1].replace("\x1f", "|")

    ids = [series_id(key, authors) for key, authors in zip(keys, authors_per_row)]
    return flat.with_columns(pl.Series("series_id", ids, dtype=pl.Utf8))


def merge_by_catalogue(memberships: pl.DataFrame, books: pl.DataFrame, series_catalog: pl.DataFrame | None) -> pl.DataFrame:
    """A series of the same name whose owned book a catalogue lists at its position in
    another of our series is that series (Brian Herbert's "Dune" #7 in the catalogue of
    Frank Herbert's "Dune"): its memberships take that series' id. Series whose owned books
    no other catalogue lists stay apart."""
    if series_catalog is None or series_catalog.is_empty() or memberships.is_empty():
        return memberships
    memberships = reposition_by_catalogue(memberships, books, series_catalog)
    listed: dict[tuple[str, str, float], set[str]] = defaultdict(set)  # (series key, work key, position) -> ids
    for sid, title, position in series_catalog.select("series_id", "title", "sort_key").drop_nulls().iter_rows():
        listed[(sid.split("|", 1)[0], work_key(title), position)].add(sid)
    titles = dict(books.select("item_id", "title").iter_rows())
    uf = UnionFind()
    rows = memberships.select("series_id", "series_key", "item_id", "sort_key").drop_nulls().iter_rows()
    for sid, key, item_id, position in rows:
        for other in listed.get((key, work_key(titles.get(item_id)), position), ()):
            uf.union(sid, other)
    # Each merged group keeps the id of its member with the most owned books (ties: alphabetical).
    size = Counter(memberships["series_id"].to_list())
    best: dict[str, str] = {}
    for sid in sorted(size, key=lambda s: (-size[s], s)):
        best.setdefault(uf.find(sid), sid)
    mapping = {sid: best[uf.find(sid)] for sid in size if sid in uf.parent and best[uf.find(sid)] != sid}
    if not mapping:
        return memberships
    return memberships.with_columns(pl.col("series_id").replace(mapping))


def reposition_by_catalogue(memberships: pl.DataFrame, books: pl.DataFrame, series_catalog: pl.DataFrame) -> pl.DataFrame:
    """An owned book its series' catalogue lists at one other position stands there: the
    library numbered it in another order (a folder "Mitch Rapp 01 - Transfer of Power" in
    publication order, which Audible lists as #3 after the prequels written later), and its
    own number would own another book. A title the catalogue lists at the library's number,
    or at several numbers, keeps the library's number."""
    placed: dict[tuple[str, str], set[float]] = defaultdict(set)  # (series id, work key) -> positions
    rows = series_catalog.select("series_id", "title", "sort_key", "kind", "compilation").drop_nulls(["title", "sort_key"])
    for sid, title, position, kind, compilation in rows.iter_rows():
        if kind in ("main", "novella", "prequel") and not compilation:
            placed[(sid, work_key(title))].add(position)
    if not placed:
        return memberships
    titles = dict(books.select("item_id", "title").iter_rows())
    keys, kinds, moved = [], [], False
    for sid, item_id, position, kind in memberships.select("series_id", "item_id", "sort_key", "kind").iter_rows():
        at = placed.get((sid, work_key(titles.get(item_id))), set())
        if kind == "main" and position is not None and len(at) == 1 and position not in at:
            position = next(iter(at))
            kind, moved = parse_position(position).kind, True
        keys.append(position)
        kinds.append(kind)
    if not moved:
        return memberships
    return memberships.with_columns(pl.Series("sort_key", keys, dtype=memberships.schema["sort_key"]),
                                    pl.Series("kind", kinds, dtype=memberships.schema["kind"]))
