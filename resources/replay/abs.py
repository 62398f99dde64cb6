"""A replay of Audiobookshelf 2.36.0 built from recorded responses.

The JSON files beside this module were recorded from a real ABS 2.36.0 server (see
`shared/fixtures/abs/README.md`). The handler reproduces the behaviour that matters to
a client: Bearer auth with a plain-text 401 that has no Content-Type, 0-based `page` +
`limit` (`offset` ignored, non-numeric values coerced to 0, negative or fractional ones
a 400 text/html), `total` in every list response, minified list items, expanded items
from `POST /api/items/batch/get` (403 "Invalid payload" without ids), "Library not found"
for an unknown library, and what the real server showed (`shared/services/audiobookshelf/
README.md`): a scan asked while one runs is ignored, the folder watcher's own
`watcher-scan`, a phrase sequence lost on a rescan, and the non-expanded PATCH answer.

It is an `httpx` handler, so the demo profile runs the real client in-process through
`httpx.MockTransport`, and tests serve the very same handler on a loopback port.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from resources.replay.recorded import envelope, load

_SORT_FIELDS: dict[str, Callable[[dict], Any]] = {
    "media.metadata.title": lambda i: (i["media"]["metadata"].get("title") or "").lower(),
    "media.metadata.authorName": lambda i: (i["media"]["metadata"].get("authorName") or "").lower(),
    "addedAt": lambda i: i.get("addedAt") or 0,
    "updatedAt": lambda i: i.get("updatedAt") or 0,
    "size": lambda i: i.get("size") or 0,
}


# ABS 2.36 `globals.SupportedAudioTypes`: files that make a folder a book.
_ABS_AUDIO = {
    "m4b", "mp3", "m4a", "flac", "opus", "ogg", "oga", "mp4", "aac", "wma", "aiff", "wav", "webm", "webma", "mka",
    "awb", "caf", "mpg", "mpeg",
}
_FILE_TYPES = {"jpg": "image", "jpeg": "image", "png": "image", "webp": "image", "txt": "text", "nfo": "text",
               "opf": "metadata", "abs": "metadata", "epub": "ebook", "pdf": "ebook"}
# ABS scandir.js getSequence/getPublishedYear/getNarrator, as written there.
_FOLDER_SEQUENCE = re.compile(
    r"^(?P<label>vol\.? |volume |book )?(?P<sequence>\d{0,3}(?:\.\d{1,2})?)(?P<dot>\.?)(?: (?P<suffix>.*))?$", re.IGNORECASE
)
_FOLDER_YEAR = re.compile(r"^ *\(?([0-9]{4})\)? * - *(.+)")
_FOLDER_NARRATOR = re.compile(r"^(?P<title>.*) \{(?P<narrators>.*)\}$")


def _js_number_text(text: str) -> str:
    """JavaScript `Number(text).toString()` for the strings the sequence pattern lets through."""
    value = float(text or 0)
    return str(int(value)) if value.is_integer() else repr(value)


def folder_metadata(rel_path: str) -> dict[str, Any]:
    """What ABS 2.36 reads from a book folder's path (`getBookDataFromDir`, subtitle parsing off).

    The last folder is the title, the one above it the series (only with an author level
    above that), the one above that the author; a sequence is read from the title folder
    only when there is a series folder.
    """
    parts = rel_path.split("/")
    folder = parts.pop()
    series = parts.pop() if len(parts) > 1 else None
    author = parts.pop() if parts else None
    narrators = None
    if m := _FOLDER_NARRATOR.match(folder):
        folder, narrators = m.group("title"), m.group("narrators")
    sequence = None
    if series:
        pieces = folder.split(" - ")
        for i, piece in enumerate(pieces):
            m = _FOLDER_SEQUENCE.match(piece)
            # '101 Dalmatians' is a title, '101. Dalmatians' and 'Book 101 Dalmatians' are not
            if m and not (m.group("suffix") and not (m.group("label") or m.group("dot"))):
                sequence = _js_number_text(m.group("sequence"))
                if m.group("suffix"):
                    pieces[i] = m.group("suffix")
                else:
                    del pieces[i]
                break
        folder = " - ".join(pieces)
    year = None
    if m := _FOLDER_YEAR.match(folder):
        year, folder = m.group(1), m.group(2)
    return {
        "title": folder,
        "authors": _split_names(author),
        "narrators": _split_names(narrators),
        "series": series,
        "sequence": sequence,
        "publishedYear": year,
    }


def _split_names(text: str | None) -> list[str]:
    """"A & B" or "A; B" -> names (ABS parseNameString, without its "Last, First" handling)."""
    return [n.strip() for n in re.split(r"[&;]", text or "") if n.strip()]


def _ignore_prefix(title: str) -> str:
    for prefix in ("the ", "a "):
        if title.lower().startswith(prefix) and len(title) > len(prefix):
            return f"{title[len(prefix):]}, {title[: len(prefix) - 1]}"
    return title


def _book_folders(root: Path) -> dict[str, list[str]]:
    """ABS's grouping of a library folder into books: relative folder -> its files.

    A folder holding audio is a book unless a folder above it already is one; a `CD1`
    folder belongs to the book above it; paths with a dot-named part and `.part` files
    are ignored, as ABS's recurseFiles does; audio files directly in the root are skipped.
    """
    audio: list[tuple[list[str], str]] = []
    others: list[tuple[list[str], str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        parts = list(Path(dirpath).relative_to(root).parts)
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith(".part"):
                continue
            ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
            (audio if ext in _ABS_AUDIO else others).append((parts, name))
    groups: dict[str, list[str]] = {}
    for parts, name in sorted(audio, key=lambda a: len(a[0])):
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            rest = parts[depth:]
            if prefix in groups:
                groups[prefix].append("/".join([*rest, name]))
                break
            if not rest or (len(rest) == 1 and re.fullmatch(r"cd\d{1,3}", rest[0], re.IGNORECASE)):
                groups[prefix] = ["/".join([*rest, name])]
                break
    for parts, name in others:
        for depth in range(1, len(parts) + 1):
            if (prefix := "/".join(parts[:depth])) in groups:
                groups[prefix].append("/".join([*parts[depth:], name]))
                break
    return groups


def _load(name: str) -> Any:
    return load("abs", name)


def _envelope(name: str) -> httpx.Response:
    return envelope(_load(name))


def _json(body: Any) -> httpx.Response:
    """A 200 JSON answer with ABS's (express's) Content-Type."""
    return httpx.Response(200, headers={"Content-Type": "application/json; charset=utf-8"}, content=json.dumps(body).encode())


def minify(item: dict[str, Any]) -> dict[str, Any]:
    """The list-endpoint shape of an expanded item: series only inside `seriesName`."""
    out = {k: v for k, v in item.items() if k not in ("media", "libraryFiles", "lastScan", "scanVersion")}
    meta = dict(item["media"]["metadata"])
    meta.pop("authors", None)
    meta.pop("descriptionPlain", None)
    meta.pop("narrators", None)  # only `narratorName` in a list
    series = meta.pop("series", None) or []
    meta.setdefault("authorName", ", ".join(a["name"] for a in item["media"]["metadata"].get("authors") or []))
    meta.setdefault("seriesName", ", ".join(f"{s['name']} #{s['sequence']}" if s.get("sequence") else s["name"] for s in series))
    out["media"] = {
        **{k: item["media"].get(k) for k in _LIST_MEDIA}, "metadata": meta, "tags": list(item["media"].get("tags") or []),
    }
    return out


_LIST_MEDIA = ("id", "coverPath", "duration", "numAudioFiles", "numChapters", "numTracks", "size")
# `toOldJSON()`: what PATCH /api/items/:id/media answers (seen on the real 2.36.0 server).
_OLD_MEDIA = ("id", "libraryItemId", "metadata", "coverPath", "tags", "audioFiles", "chapters", "ebookFile")
_OLD_METADATA = (
    "title", "subtitle", "authors", "narrators", "series", "genres", "publishedYear", "publishedDate", "publisher",
    "description", "isbn", "asin", "language", "explicit", "abridged",
)


def non_expanded(item: dict[str, Any]) -> dict[str, Any]:
    """The non-expanded item PATCH answers: no `authorName`/`seriesName`, no tracks or sizes."""
    out = {k: copy.deepcopy(v) for k, v in item.items() if k not in ("media", "numFiles", "size")}
    media = item["media"]
    out["media"] = {k: copy.deepcopy(media.get(k)) for k in _OLD_MEDIA}
    out["media"]["metadata"] = {k: copy.deepcopy(media["metadata"].get(k)) for k in _OLD_METADATA}
    return out


def rescanned_series(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What ABS makes of a book's series when it rescans the item from its metadata.json.

    metadata.json stores "Name #sequence"; ABS's parseSeriesString reads back only a
    sequence without spaces or "#", so "Book Two" becomes a series "Name #Book Two" with
    no sequence (a series of its own).
    """
    out = []
    for entry in series:
        sequence = entry.get("sequence")
        if sequence and not re.fullmatch(r"[^#\s]+", sequence):
            name = f"{entry['name']} #{sequence}"
            out.append({"id": f"series-{name.lower()}", "name": name, "sequence": None})
        else:
            out.append(dict(entry))
    return out


class AbsReplay:
    """Request handler that answers like ABS 2.36.0 for the endpoints MAMcrawler uses.

    `items` replaces the recorded library (synthetic libraries for tests and benchmarks);
    `omit_total` reproduces a scan in progress (no `total`); `lose_items` drops that many
    items from the listing while `total` still counts them; `fail_first` answers that many
    requests with 503 first. `library_dir` is the local folder standing for the folder of
    the first library (`/audiobooks`): a scan of that library adds each book folder that was
    there when it started as an item once `scan_polls` polls of `GET /api/tasks` have
    shown the running task; a scan asked while one runs is ignored, as ABS ignores it.
    With `watcher`, a new book folder starts a `watcher-scan` task that lasts
    `watcher_polls` polls and then adds the book and rescans the items of its folders from
    what ABS stored (a phrase sequence is lost, see `rescanned_series`); a forced scan
    (`?force=1`) rescans every item that way.
    """

    def __init__(
        self,
        token: str = "demo-token",
        items: list[dict[str, Any]] | None = None,
        *,
        omit_total: bool = False,
        lose_items: int = 0,
        fail_first: int = 0,
        library_dir: Path | None = None,
        scan_polls: int = 2,
        watcher: bool = False,
        watcher_polls: int = 3,
    ) -> None:
        self.token = token
        self.libraries = _load("libraries.json")["libraries"]
        self.items = items if items is not None else _load("items_batch_get_all.json")["libraryItems"]
        self.by_id = {i["id"]: i for i in self.items}
        self.omit_total = omit_total
        self.lose_items = lose_items
        self.fail_first = fail_first
        self.requests: list[str] = []
        self.library_dir = library_dir
        self.scan_polls = scan_polls
        self._scans: dict[str, dict[str, Any]] = {}  # library id -> running task, polls left, folders it sees
        self.watcher = watcher
        self.watcher_polls = watcher_polls
        self._watched: set[str] = set(_book_folders(library_dir)) if (watcher and library_dir) else set()
        self._watch_task: dict[str, Any] | None = None  # the pending watcher-scan, its polls left and folders
        self.ignored_scans = 0  # scans asked while one ran ("Already scanning" in ABS's log)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        if self.fail_first > 0:
            self.fail_first -= 1
            return httpx.Response(503, text="Service Unavailable")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _envelope("error_invalid_token.json")
        path = request.url.path.removeprefix("/audiobookshelf")
        self._watch()
        if request.method == "GET" and path == "/api/libraries":
            return _json({"libraries": self.libraries})
        if request.method == "GET" and (m := re.fullmatch(r"/api/libraries/([^/]+)/items", path)):
            return self._items(m.group(1), request.url.params)
        if request.method == "POST" and path == "/api/items/batch/get":
            ids = json.loads(request.content or b"{}").get("libraryItemIds") or []
            if not ids:
                return httpx.Response(403, headers={"Content-Type": "text/html; charset=utf-8"}, text="Invalid payload")
            return _json({"libraryItems": [copy.deepcopy(self.by_id[i]) for i in ids if i in self.by_id]})
        if request.method == "PATCH" and (m := re.fullmatch(r"/api/items/([^/]+)/media", path)):
            return self._patch_media(m.group(1), json.loads(request.content or b"{}"))
        if request.method == "GET" and (m := re.fullmatch(r"/api/items/([^/]+)", path)):
            item = self.by_id.get(m.group(1))
            return _json(item) if item else _envelope("error_missing_item.json")
        if request.method == "POST" and (m := re.fullmatch(r"/api/libraries/([^/]+)/scan", path)):
            return self._scan(m.group(1), force=request.url.params.get("force") in ("1", "true"))
        if request.method == "GET" and path == "/api/tasks":
            return self._tasks()
        return httpx.Response(404, headers={"Content-Type": "text/html; charset=utf-8"}, text=f"Cannot {request.method} {path}")

    def _scan(self, library_id: str, force: bool = False) -> httpx.Response:
        """"OK" at once; the scan "runs" for the next `scan_polls` task polls and adds the
        book folders there at its start. A scan requested while one runs is ignored (ABS
        answers "OK" and logs "Already scanning"): a folder placed meanwhile waits."""
        library = next((lib for lib in self.libraries if lib["id"] == library_id), None)
        if library is None:
            return _envelope("error_missing_library.json")
        if library_id in self._scans:
            self.ignored_scans += 1
        else:
            task = copy.deepcopy(_load("tasks_during_scan.json")["tasks"][0])
            task.update(
                id=str(uuid.uuid4()),
                title=f'Scanning "{library["name"]}" library',
                titleSubs=[library["name"]],
                startedAt=int(time.time() * 1000),
            )
            task["data"].update(libraryId=library_id, libraryName=library["name"], libraryMediaType=library["mediaType"])
            folders = set(_book_folders(self.library_dir)) if self.library_dir else set()
            self._scans[library_id] = {"task": task, "polls_left": self.scan_polls, "folders": folders, "force": force}
            if self.scan_polls <= 0:
                self._finish_scan(library_id)
        return _envelope("scan_trigger.json")

    def _tasks(self) -> httpx.Response:
        listed = []
        for library_id, scan in list(self._scans.items()):
            if scan["polls_left"] > 0:
                scan["polls_left"] -= 1
                listed.append(copy.deepcopy(scan["task"]))
            else:
                self._finish_scan(library_id)
        if (watch := self._watch_task) is not None:
            if watch["polls_left"] > 0:
                watch["polls_left"] -= 1
                listed.append(copy.deepcopy(watch["task"]))
            else:
                self._watch_task = None
                self._add_books(watch["folders"], rescan=True)
        return _json({"tasks": listed} if listed else _load("tasks_after_scan.json"))

    def _watch(self) -> None:
        """The folder watcher: a new book folder starts (or joins) the pending `watcher-scan`."""
        if not self.watcher or self.library_dir is None:
            return
        new = set(_book_folders(self.library_dir)) - self._watched
        if not new:
            return
        self._watched |= new
        if self._watch_task is None:
            library = self.libraries[0]
            task = copy.deepcopy(_load("tasks_during_scan.json")["tasks"][0])
            task.update(
                id=str(uuid.uuid4()), action="watcher-scan", title=f'Scanning file changes in "{library["name"]}"',
                titleKey="MessageTaskScanningFileChanges", titleSubs=[library["name"]], startedAt=int(time.time() * 1000),
                data={"libraryId": library["id"], "libraryName": library["name"]},
            )
            self._watch_task = {"task": task, "polls_left": self.watcher_polls, "folders": set()}
        else:  # ABS restarts its pending delay on every change
            self._watch_task["polls_left"] = self.watcher_polls
        self._watch_task["folders"] |= new

    def _finish_scan(self, library_id: str) -> None:
        """The book folders seen at the scan's start become items (only for the first library)."""
        scan = self._scans.pop(library_id, None) or {}
        if library_id != self.libraries[0]["id"]:
            return
        if scan.get("force"):
            for item in self.items:
                if item.get("libraryId") == library_id:
                    self._rescan(item)
        self._add_books(scan.get("folders") or set(), rescan=False)

    def _add_books(self, folders: set[str], rescan: bool) -> None:
        """Folders of `library_dir` become items; with `rescan`, items already there are re-read."""
        if self.library_dir is None:
            return
        library = self.libraries[0]
        folder = library["folders"][0]
        by_path = {i.get("path"): i for i in self.items}
        newest = max((i.get("addedAt") or 0 for i in self.items), default=0)
        now = max(int(time.time() * 1000), newest + 1)  # recorded clocks may run ahead of ours
        for rel, files in _book_folders(self.library_dir).items():
            if rel not in folders:
                continue
            known = by_path.get(f"{folder['fullPath']}/{rel}")
            if known is None:
                item = self._new_item(library["id"], folder, self.library_dir / rel, rel, files, now)
                self.items.append(item)
                self.by_id[item["id"]] = item
            elif rescan:
                self._rescan(known)

    @staticmethod
    def _rescan(item: dict[str, Any]) -> None:
        """Re-read an item from its metadata.json (see `rescanned_series`)."""
        meta = item["media"]["metadata"]
        meta["series"] = rescanned_series(meta.get("series") or [])
        meta["seriesName"] = ", ".join(
            f"{s['name']} #{s['sequence']}" if s["sequence"] else s["name"] for s in meta["series"]
        )

    def _new_item(
        self, library_id: str, folder: dict[str, Any], local: Path, rel: str, files: list[str], now: int
    ) -> dict[str, Any]:
        """A recorded expanded item (a book ABS read from its folders alone) re-filled for `rel`."""
        recorded = _load("items_batch_get_all.json")["libraryItems"]
        template = next((i for i in recorded if i["relPath"].startswith("Ursula K. Le Guin/")), recorded[0])
        item = copy.deepcopy(template)
        item_id = str(uuid.uuid4())
        path = f"{folder['fullPath']}/{rel}"
        stat = local.stat()
        item.update(
            id=item_id, ino=str(stat.st_ino), libraryId=library_id, folderId=folder["id"], path=path, relPath=rel,
            isFile=False, mtimeMs=int(stat.st_mtime * 1000), ctimeMs=int(stat.st_ctime * 1000),
            birthtimeMs=int(stat.st_mtime * 1000), addedAt=now, updatedAt=now, lastScan=now,
            isMissing=False, isInvalid=False,
        )
        parsed = folder_metadata(rel)
        authors = [{"id": self._known_id("authors", n) or str(uuid.uuid4()), "name": n} for n in parsed["authors"]]
        series = []
        if parsed["series"]:
            series_id = self._known_id("series", parsed["series"]) or str(uuid.uuid4())
            series = [{"id": series_id, "name": parsed["series"], "sequence": parsed["sequence"]}]
        title = parsed["title"]
        item["media"]["metadata"] = {
            "title": title, "subtitle": None, "authors": authors, "narrators": parsed["narrators"], "series": series,
            "genres": [], "publishedYear": parsed["publishedYear"], "publishedDate": None, "publisher": None,
            "description": None, "isbn": None, "asin": None, "language": None, "explicit": False, "abridged": False,
            "titleIgnorePrefix": _ignore_prefix(title),
            "authorName": ", ".join(a["name"] for a in authors),
            "authorNameLF": ", ".join(
                f"{n.rsplit(' ', 1)[1]}, {n.rsplit(' ', 1)[0]}" if " " in n else n for n in parsed["authors"]
            ),
            "narratorName": ", ".join(parsed["narrators"]),
            "seriesName": ", ".join(f"{s['name']} #{s['sequence']}" if s["sequence"] else s["name"] for s in series),
            "descriptionPlain": None,
        }
        audio_template = template["media"]["audioFiles"][0]
        library_files, audio_files = [], []
        for file_rel in files:
            file_path = local / file_rel
            file_stat = file_path.stat()
            ext = file_path.suffix.lower()
            file_meta = {
                "filename": file_path.name, "ext": ext, "path": f"{path}/{file_rel}", "relPath": file_rel,
                "size": file_stat.st_size, "mtimeMs": int(file_stat.st_mtime * 1000),
                "ctimeMs": int(file_stat.st_ctime * 1000), "birthtimeMs": int(file_stat.st_mtime * 1000),
            }
            is_audio = ext.lstrip(".") in _ABS_AUDIO
            library_files.append({
                "ino": str(file_stat.st_ino), "metadata": file_meta, "isSupplementary": None, "addedAt": now,
                "updatedAt": now, "fileType": "audio" if is_audio else _FILE_TYPES.get(ext.lstrip("."), "unknown"),
            })
            if is_audio:
                audio = copy.deepcopy(audio_template)
                audio.update(
                    index=len(audio_files) + 1, ino=str(file_stat.st_ino), metadata=file_meta, addedAt=now,
                    updatedAt=now, duration=0, metaTags={}, chapters=[],
                )
                audio_files.append(audio)
        size = sum(f["metadata"]["size"] for f in library_files)
        item["media"].update(
            id=str(uuid.uuid4()), libraryItemId=item_id, coverPath=None, tags=[], audioFiles=audio_files,
            chapters=[], ebookFile=None, numTracks=len(audio_files), numAudioFiles=len(audio_files), numChapters=0,
            duration=0, size=sum(a["metadata"]["size"] for a in audio_files),
            tracks=[
                {**copy.deepcopy(a), "title": a["metadata"]["filename"], "startOffset": 0,
                 "contentUrl": f"/api/items/{item_id}/file/{a['ino']}"}
                for a in audio_files
            ],
        )
        item.update(numFiles=len(library_files), size=size, libraryFiles=library_files)
        return item

    def _known_id(self, kind: str, name: str) -> str | None:
        """ABS reuses an author or series of the same name (case-insensitively)."""
        for item in self.items:
            for entry in item["media"]["metadata"].get(kind) or []:
                if entry.get("name", "").lower() == name.lower():
                    return entry.get("id")
        return None

    def _items(self, library_id: str, params: httpx.QueryParams) -> httpx.Response:
        if library_id not in {lib["id"] for lib in self.libraries}:
            return _envelope("error_missing_library.json")
        limit, page = self._int_param(params, "limit"), self._int_param(params, "page")
        for name, value in (("limit", limit), ("page", page)):
            if value is None:  # ABS checks limit first and names the parameter
                return envelope(_load("error_bad_page_negative.json"), body=f"Invalid request. {name} must be a positive integer")
        listed = [i for i in self.items if i.get("libraryId") == library_id]
        total = len(listed)
        if self.lose_items:
            listed = listed[: max(0, total - self.lose_items)]
        sort = params.get("sort")
        if sort in _SORT_FIELDS:
            listed = sorted(listed, key=_SORT_FIELDS[sort], reverse=params.get("desc") == "1")
        window = listed[page * limit : page * limit + limit] if limit else listed
        body: dict[str, Any] = {
            "results": [minify(i) for i in window],
            "total": total,
            "limit": limit,
            "page": page,
            "sortDesc": params.get("desc") == "1",
            "mediaType": "book",
            "minified": False,
            "collapseseries": False,
            "include": "",
            "offset": page * limit,
        }
        if sort:
            body["sortBy"] = sort
        if self.omit_total:
            del body["total"]
        return _json(body)

    def _patch_media(self, item_id: str, body: dict[str, Any]) -> httpx.Response:
        """ABS 2.36 semantics: `series` is the complete new set (matched by name,
        case-insensitively); a non-string `sequence` is stored as null; `updated` is
        absent (not false) when nothing changed; the answer is the non-expanded item."""
        item = self.by_id.get(item_id)
        if item is None:
            return _envelope("error_patch_missing_item.json")
        meta = item["media"]["metadata"]
        changed = False
        for key, value in (body.get("metadata") or {}).items():
            if key == "series":
                old = {s["name"].lower(): s for s in meta.get("series") or []}
                value = [
                    {
                        "id": old.get(s["name"].lower(), {}).get("id", f"series-{s['name'].lower()}"),
                        "name": old.get(s["name"].lower(), {}).get("name", s["name"]),
                        "sequence": s.get("sequence") if isinstance(s.get("sequence"), str) else None,
                    }
                    for s in value
                ]
            elif key == "authors":
                value = [{"id": f"author-{a['name'].lower()}", "name": a["name"]} for a in value]
            if meta.get(key) != value:
                meta[key] = value
                changed = True
        if "tags" in body and item["media"].get("tags") != body["tags"]:
            item["media"]["tags"] = body["tags"]
            changed = True
        answer: dict[str, Any] = {"libraryItem": non_expanded(item)}
        if changed:
            answer = {"updated": True, **answer}
        return _json(answer)

    @staticmethod
    def _int_param(params: httpx.QueryParams, name: str) -> int | None:
        """ABS coerces non-numbers to 0 and rejects negative or fractional numbers."""
        raw = params.get(name)
        if raw is None:
            return 0
        try:
            value = float(raw)
        except ValueError:
            return 0
        if value < 0 or value != int(value):
            return None
        return int(value)
