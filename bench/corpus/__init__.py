"""The accuracy corpus: a library in the naming and tagging patterns real users have, the
providers' answers about its series and authors, and the truth a collector would write.

`library.yaml` holds one line per ABS item as ABS 2.36.0 reads it (title, authors, series
and sequence, ids, folder) plus two annotations that never reach the pipeline: `owns`
(which works the item is, written from intent) and `match` (which provider records
enrichment finds for it). `catalogue.yaml` holds the providers' records; `truth.yaml` the
missing and upcoming books and the author gaps. `load()` expands the lines into full items
as `POST /api/items/batch/get` returns them and serves the provider records over
`httpx.MockTransport` in the providers' real answer shapes, so the real clients of
`resources/` parse them.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

HERE = Path(__file__).resolve().parent
_NS = uuid.UUID("6f1c2a9e-3c1b-4e0f-9a57-1d2b3c4d5e6f")
LIBRARY_ID = str(uuid.uuid5(_NS, "library:Audiobooks"))
FOLDER_ID = str(uuid.uuid5(_NS, "folder:/audiobooks"))
JSON_HEADERS = {"Content-Type": "application/json"}


def _id(kind: str, text: str) -> str:
    return str(uuid.uuid5(_NS, f"{kind}:{text}"))


def _authors(raw: Any) -> list[str]:
    if raw is None:
        return []
    return list(raw) if isinstance(raw, list) else [raw]


def _article_last(title: str) -> str:
    m = re.match(r"^(the|a|an)\s+(.+)$", title, re.IGNORECASE)
    return f"{m.group(2)}, {m.group(1)}" if m else title


def _last_first(name: str) -> str:
    parts = name.split()
    return name if len(parts) < 2 else f"{parts[-1]}, {' '.join(parts[:-1])}"


def abs_item(spec: dict[str, Any], index: int) -> dict[str, Any]:
    """One library line -> an expanded item in the shape of ABS 2.36.0's batch/get answer."""
    rel = spec["path"]
    item_id = _id("item", rel)
    media_id = _id("media", rel)
    authors = _authors(spec.get("authors"))
    narrators = _authors(spec.get("narrators"))
    series = [{"id": _id("series", s[0].casefold()), "name": s[0], "sequence": None if s[1] is None else str(s[1])}
              for s in spec.get("series") or []]
    ext = spec.get("ext", ".m4b")
    filename = spec.get("file") or f"{spec['title'].split(':')[0].strip()}{ext}"
    duration = float(spec.get("hours", 10.0)) * 3600
    size = int(duration * 8000)
    stamp = 1795466398108 + index * 1000
    ino = str(6000000 + index * 2)
    audio_meta = {"filename": filename, "ext": ext, "path": f"/audiobooks/{rel}/{filename}", "relPath": filename,
                  "size": size, "mtimeMs": stamp, "ctimeMs": stamp, "birthtimeMs": stamp}
    audio = {
        "index": 1, "ino": ino, "metadata": audio_meta, "addedAt": stamp, "updatedAt": stamp,
        "trackNumFromMeta": None, "discNumFromMeta": None, "trackNumFromFilename": None, "discNumFromFilename": None,
        "manuallyVerified": False, "exclude": False, "error": None,
        "format": "MP2/3 (MPEG audio layer 2/3)" if ext == ".mp3" else "QuickTime / MOV",
        "duration": duration, "bitRate": 64000, "language": None, "codec": "mp3" if ext == ".mp3" else "aac",
        "timeBase": "1/44100", "channels": 2, "channelLayout": "stereo", "chapters": [], "embeddedCoverArt": None,
        "metaTags": {}, "mimeType": "audio/mpeg" if ext == ".mp3" else "audio/mp4",
    }
    year = spec.get("year")
    metadata = {
        "title": spec["title"], "subtitle": spec.get("subtitle"),
        "authors": [{"id": _id("author", a), "name": a} for a in authors],
        "narrators": narrators, "series": series, "genres": list(spec.get("genres") or []),
        "publishedYear": None if year is None else str(year), "publishedDate": None,
        "publisher": spec.get("publisher"), "description": spec.get("description"),
        "isbn": spec.get("isbn"), "asin": spec.get("asin"), "language": spec.get("language"),
        "explicit": False, "abridged": False,
        "titleIgnorePrefix": _article_last(spec["title"]),
        "authorName": ", ".join(authors), "authorNameLF": ", ".join(_last_first(a) for a in authors),
        "narratorName": ", ".join(narrators),
        "seriesName": ", ".join(s["name"] + (f" #{s['sequence']}" if s["sequence"] else "") for s in series),
        "descriptionPlain": spec.get("description"),
    }
    return {
        "id": item_id, "ino": str(5000000 + index), "oldLibraryItemId": None, "libraryId": LIBRARY_ID,
        "folderId": FOLDER_ID, "path": f"/audiobooks/{rel}", "relPath": rel, "isFile": False,
        "mtimeMs": stamp, "ctimeMs": stamp, "birthtimeMs": stamp, "addedAt": stamp, "updatedAt": stamp,
        "isMissing": False, "isInvalid": False, "mediaType": "book",
        "media": {
            "id": media_id, "metadata": metadata, "coverPath": None, "tags": list(spec.get("tags") or []),
            "numTracks": 1, "numAudioFiles": 1, "numChapters": 0, "duration": duration, "size": size,
            "libraryItemId": item_id, "audioFiles": [audio], "chapters": [], "ebookFile": None,
            "tracks": [{**audio, "title": filename, "startOffset": 0, "contentUrl": f"/api/items/{item_id}/file/{ino}"}],
        },
        "numFiles": 1, "size": size, "lastScan": stamp, "scanVersion": "2.36.0",
        "libraryFiles": [{"ino": ino, "metadata": audio_meta, "isSupplementary": None, "addedAt": stamp,
                          "updatedAt": stamp, "fileType": "audio"}],
    }


# --- provider records in their answer shapes ------------------------------------------------


def _audible_product(book: dict[str, Any], today: str) -> dict[str, Any]:
    """An Audible catalog product (alphabetical keys, absent data omitted, as recorded)."""
    product: dict[str, Any] = {
        "asin": book["asin"],
        "authors": [{"asin": _asin("A", a), "name": a} for a in book["authors"]],
        "content_delivery_type": book.get("delivery", "SinglePartBook"),
        "format_type": book.get("format", "unabridged"),
        "issue_date": book["release"], "language": book.get("language", "english"),
        "narrators": [{"name": n} for n in book.get("narrators") or ["Michael Kramer"]],
        "publisher_name": book.get("publisher", "Audible Studios"),
        "release_date": book["release"], "title": book["title"],
    }
    if book["release"] <= today:
        product["runtime_length_min"] = int(book.get("minutes", 600))
    if book.get("subtitle"):
        product["subtitle"] = book["subtitle"]
    if book.get("isbn"):
        product["isbn"] = book["isbn"]
    if book.get("series"):
        product["series"] = [{"asin": s["asin"], "sequence": s["sequence"], "title": s["title"],
                              "url": f"/pd/{s['title'].replace(' ', '-')}-Audiobook/{s['asin']}"}
                             for s in book["series"] if s.get("sequence") is not None] + [
            {"asin": s["asin"], "title": s["title"], "url": f"/series/{s['asin']}"}
            for s in book["series"] if s.get("sequence") is None]
    return dict(sorted(product.items()))


def _asin(kind: str, text: str) -> str:
    return "B0" + kind + uuid.uuid5(_NS, text).hex[:7].upper()


@dataclass
class Corpus:
    """The loaded corpus: ABS items, the intent annotations, the providers' records, the truth."""

    today: str
    items: list[dict[str, Any]]
    specs: list[dict[str, Any]]
    audible_books: dict[str, dict[str, Any]]  # asin -> book record
    audible_series: dict[str, dict[str, Any]]  # series asin -> {title, children: [(asin, sequence)]}
    hardcover_series: dict[int, dict[str, Any]]
    hardcover_books: dict[int, dict[str, Any]]
    hardcover_authors: dict[int, dict[str, Any]]
    openlibrary_authors: dict[str, dict[str, Any]]
    truth: dict[str, Any]
    requests: list[str] = field(default_factory=list)

    def owns(self) -> dict[str, list[str]]:
        """item_id -> the works it is, as written in the library's `owns` annotations."""
        return {item["id"]: list(spec.get("owns") or []) for item, spec in zip(self.items, self.specs)}

    # --- what enrichment found for each book (book_metadata candidates) ----------------
    def candidates(self) -> dict[str, list[Any]]:
        """item_id -> provider candidates parsed by the real clients from the matched records."""
        from mamcrawler.candidates import sanitise
        from resources.audible import AudibleProvider
        from resources.hardcover import book_candidate
        from resources.openlibrary import doc_candidate

        parser = AudibleProvider()
        found: dict[str, list[Any]] = {}
        for item, spec in zip(self.items, self.specs):
            out = []
            for ref in spec.get("match") or []:
                provider, _, key = ref.partition(":")
                if provider == "audible":
                    candidate = parser.candidate(_audible_product(self.audible_books[key], self.today))
                elif provider == "hardcover":
                    candidate = book_candidate(self._hardcover_book(int(key)), {}, None, "hardcover")
                elif provider == "openlibrary":
                    candidate = doc_candidate(self._openlibrary_doc(key))
                else:
                    raise ValueError(f"{spec['path']}: unknown provider in match {ref!r}")
                clean, _ = sanitise(candidate)
                if clean is not None:
                    out.append(clean)
            if out:
                found[item["id"]] = out
        return found

    def _hardcover_book(self, book_id: int) -> dict[str, Any]:
        book = self.hardcover_books[book_id]
        return {
            "id": book_id, "title": book["title"], "subtitle": None, "slug": None,
            "release_date": book.get("release"), "release_year": int(book["release"][:4]) if book.get("release") else None,
            "compilation": bool(book.get("compilation")), "rating": None, "ratings_count": 0, "users_count": 100,
            "cached_image": None, "cached_tags": [],
            "contributions": [{"contribution": None, "author": {"id": a_id, "name": name, "slug": None}}
                              for a_id, name in book["authors"]],
            "book_series": [{"position": pos, "details": details, "featured": i == 0,
                             "series": {"id": sid, "name": self.hardcover_series[sid]["name"], "slug": None,
                                        "books_count": None, "primary_books_count": None, "is_completed": None}}
                            for i, (sid, pos, details) in enumerate(book["series"])],
            "editions": [],
        }

    def _openlibrary_doc(self, work: str) -> dict[str, Any]:
        for author_id, author in self.openlibrary_authors.items():
            for w in author["works"]:
                if w["key"] == f"/works/{work}":
                    return {"author_key": [author_id], "author_name": [author["name"]], "key": w["key"],
                            "title": w["title"], "first_publish_year": int(w["first_publish_date"][-4:])}
        raise KeyError(f"no OpenLibrary work {work} in the corpus")

    # --- the providers' answers over HTTP -----------------------------------------------
    def transport(self, provider: str) -> httpx.MockTransport:
        handler = {"audible": self._audible, "hardcover": self._hardcover, "openlibrary": self._openlibrary}[provider]

        def serve(request: httpx.Request) -> httpx.Response:
            self.requests.append(f"{provider} {request.method} {request.url.path}")
            body = handler(request)
            if body is None:
                return httpx.Response(404, headers=JSON_HEADERS, content=b"{}")
            return httpx.Response(200, headers=JSON_HEADERS, content=json.dumps(body).encode())

        return httpx.MockTransport(serve)

    def _audible(self, request: httpx.Request) -> Any:
        path, params = request.url.path, request.url.params
        groups = ["always-returned", "contributors", "media", "product_attrs", "product_desc",
                  "product_extended_attrs", "series"]
        if m := re.fullmatch(r"/1\.0/catalog/products/([A-Z0-9]+)", path):
            series = self.audible_series.get(m.group(1))
            if params.get("response_groups") == "relationships" and series is not None:
                rels = [{"asin": asin, "relationship_to_product": "child", "relationship_type": "series",
                         **({"sequence": seq} if seq is not None else {}), "sort": str(i + 1)}
                        for i, (asin, seq) in enumerate(series["children"])]
                return {"product": {"asin": m.group(1), "relationships": rels, "title": series["title"]},
                        "response_groups": ["always-returned", "relationships"]}
            book = self.audible_books.get(m.group(1))
            return {"product": _audible_product(book, self.today) if book else {"asin": m.group(1)},
                    "response_groups": groups}
        if path == "/1.0/catalog/products" and "asins" in params:
            asins = [a for a in params["asins"].split(",") if a]
            return {"products": [_audible_product(self.audible_books[a], self.today) if a in self.audible_books
                                 else {"asin": a} for a in asins], "response_groups": groups}
        if path == "/1.0/catalog/products" and "author" in params:
            words = set(_words(params["author"]))
            found = [b for b in self.audible_books.values()
                     if words <= set(_words(" ".join(b["authors"])))]
            found.sort(key=lambda b: b["release"], reverse=True)
            size, page = int(params.get("num_results", 10)), int(params.get("page", 0))
            return {"products": [_audible_product(b, self.today) for b in found[page * size:(page + 1) * size]],
                    "response_groups": groups, "total_results": len(found)}
        return {"products": [], "response_groups": groups, "total_results": 0}

    def _hardcover(self, request: httpx.Request) -> Any:
        body = json.loads(request.content)
        op, variables = body.get("operationName"), body.get("variables") or {}
        if op == "SeriesByPk":
            s = self.hardcover_series.get(int(variables["id"]))
            if s is None:
                return {"data": {"series_by_pk": None}}
            entries = sorted(s["books"], key=lambda b: (b[1] is None, b[1] or 0))
            return {"data": {"series_by_pk": {
                "id": s["id"], "name": s["name"], "slug": None, "description": None,
                "books_count": len(entries), "primary_books_count": sum(1 for b in entries if b[1] == int(b[1] or 0.5)),
                "is_completed": None, "author": {"id": s["author"][0], "name": s["author"][1]},
                "book_series": [{"book_id": book_id, "position": pos, "details": details, "featured": True,
                                 "book": {"id": book_id, "title": self.hardcover_books[book_id]["title"],
                                          "release_date": self.hardcover_books[book_id].get("release"),
                                          "release_year": int(self.hardcover_books[book_id]["release"][:4])
                                          if self.hardcover_books[book_id].get("release") else None,
                                          "compilation": bool(self.hardcover_books[book_id].get("compilation")),
                                          "users_count": 100, "book_status_id": 1}}
                                for book_id, pos, details in entries],
            }}}
        if op == "AuthorByPk":
            a = self.hardcover_authors.get(int(variables["id"]))
            if a is None:
                return {"data": {"authors_by_pk": None}}
            offset, limit = int(variables.get("offset", 0)), int(variables.get("limit", 25))
            books = [self.hardcover_books[b] | {"id": b} for b in a["books"]][offset:offset + limit]
            return {"data": {"authors_by_pk": {
                "id": a["id"], "name": a["name"], "slug": None, "bio": None, "born_year": None, "death_year": None,
                "books_count": len(a["books"]), "cached_image": None,
                "contributions": [{"contribution": None, "book": {
                    "id": b["id"], "title": b["title"], "release_year": int(b["release"][:4]) if b.get("release") else None,
                    "compilation": bool(b.get("compilation")), "users_count": 100,
                    "book_series": [{"position": pos, "series": {"id": sid, "name": self.hardcover_series[sid]["name"]}}
                                    for sid, pos, _ in b["series"]]}} for b in books],
            }}}
        return {"errors": [{"message": f"unknown operation {op}"}]}

    def _openlibrary(self, request: httpx.Request) -> Any:
        m = re.fullmatch(r"/authors/([^/]+)/works\.json", request.url.path)
        author = self.openlibrary_authors.get(m.group(1)) if m else None
        if author is None:
            return None
        entries = [{"key": w["key"], "title": w["title"], "first_publish_date": w["first_publish_date"],
                    "type": {"key": "/type/work"}, "authors": [{"author": {"key": f"/authors/{m.group(1)}"},
                                                               "type": {"key": "/type/author_role"}}]}
                   for w in author["works"]]
        return {"links": {"self": str(request.url), "author": f"/authors/{m.group(1)}"}, "size": len(entries),
                "entries": entries}


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w]+", " ", text.casefold()).split()


def _read(name: str) -> Any:
    return yaml.safe_load((HERE / name).read_text(encoding="utf-8"))


def _merged(folder: str) -> dict[str, Any]:
    """Every file of a folder (one per group of worlds) merged: lists concatenated, maps joined."""
    merged: dict[str, Any] = {}
    for path in sorted((HERE / folder).glob("*.yaml")):
        for key, value in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).items():
            if isinstance(value, list):
                merged.setdefault(key, []).extend(value)
            elif isinstance(value, dict):
                clash = set(merged.setdefault(key, {})) & set(value)
                if clash:
                    raise ValueError(f"{path.name}: {key} {sorted(clash)} already defined in another file")
                merged[key].update(value)
            else:
                raise ValueError(f"{path.name}: {key} must be a list or a map")
    return merged


def load() -> Corpus:
    """The corpus as the files in this folder state it; a broken reference is a clear error."""
    library, catalogue, truth = _merged("library"), _merged("catalogue"), _merged("truth")
    today = str(_read("corpus.yaml")["today"])
    specs = library["items"]
    items = [abs_item(spec, i) for i, spec in enumerate(specs)]
    audible_books: dict[str, dict[str, Any]] = {}
    audible_series: dict[str, dict[str, Any]] = {}
    for series in catalogue.get("audible_series") or []:
        children = audible_series.setdefault(series["asin"], {"title": series["title"], "children": []})["children"]
        for row in series["books"]:
            seq, asin, title, release, *extra = row
            opts = extra[0] if extra else {}
            book = audible_books.setdefault(asin, {
                "asin": asin, "title": title, "release": str(release),
                "authors": _authors(opts.get("authors") or series["authors"]), "series": [],
                **{k: v for k, v in opts.items() if k != "authors"},
            })
            book["series"].append({"asin": series["asin"], "title": series["title"],
                                   "sequence": None if seq is None else str(seq)})
            children.append((asin, None if seq is None else str(seq)))
    for row in catalogue.get("audible_books") or []:  # standalones, and editions no series lists as a child
        audible_books.setdefault(row["asin"], {
            **row, "release": str(row["release"]), "authors": _authors(row["authors"]),
            "series": [{"asin": a, "title": t, "sequence": q} for a, t, q in row.get("series") or []],
        })
    hc_series: dict[int, dict[str, Any]] = {}
    hc_books: dict[int, dict[str, Any]] = {}
    hc_authors: dict[int, dict[str, Any]] = {}
    for author in catalogue.get("hardcover_authors") or []:
        hc_authors[author["id"]] = {"id": author["id"], "name": author["name"], "books": []}
    for series in catalogue.get("hardcover_series") or []:
        hc_series[series["id"]] = {"id": series["id"], "name": series["name"], "author": tuple(series["author"]),
                                   "books": []}
    for series in catalogue.get("hardcover_series") or []:
        for row in series["books"]:
            pos, book_id, title, release, *extra = row
            opts = extra[0] if extra else {}
            book = hc_books.setdefault(book_id, {
                "title": title, "release": None if release is None else str(release),
                "compilation": bool(opts.get("compilation")), "series": [],
                "authors": [tuple(a) for a in opts.get("authors") or [series["author"]]],
            })
            book["series"].append((series["id"], pos, opts.get("details", "")))
            hc_series[series["id"]]["books"].append((book_id, pos, opts.get("details", "")))
    for row in catalogue.get("hardcover_books") or []:  # standalones
        hc_books.setdefault(row["id"], {"title": row["title"], "release": str(row["release"]), "series": [],
                                        "compilation": bool(row.get("compilation")),
                                        "authors": [tuple(a) for a in row["authors"]]})
    for book_id, book in hc_books.items():
        for a_id, _ in book["authors"]:
            if a_id in hc_authors and book_id not in hc_authors[a_id]["books"]:
                hc_authors[a_id]["books"].append(book_id)
    ol_authors = {a["id"]: {"name": a["name"], "works": [
        {"key": f"/works/{w[0]}", "title": w[1], "first_publish_date": str(w[2])} for w in a["works"]]}
        for a in catalogue.get("openlibrary_authors") or []}
    corpus = Corpus(today, items, specs, audible_books, audible_series, hc_series, hc_books, hc_authors,
                    ol_authors, truth)
    for spec in specs:  # a match naming a record the catalogue lacks is a corpus error, not a miss
        for ref in spec.get("match") or []:
            provider, _, key = ref.partition(":")
            known = {"audible": audible_books, "hardcover": {str(k) for k in hc_books},
                     "openlibrary": {w["key"][7:] for a in ol_authors.values() for w in a["works"]}}.get(provider, ())
            if key not in known:
                raise ValueError(f"{spec['path']}: match {ref!r} names no record of the catalogue")
    return corpus
