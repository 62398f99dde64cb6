"""One MyAnonamouse search row -> one `Release`.

MAM rows are loose (see `shared/fixtures/mam/README.md`): `author_info`, `narrator_info` and
`series_info` are strings holding JSON objects (or ""), series names come HTML-entity
encoded (`&#039;`), flags are ints 0/1 (older clients also saw "1"/"yes"), `isbn` is a string
or a number, and `title` may be a number. A row this cannot make sense of raises
`ValueError(reason)` with a short reason the caller counts.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from mamcrawler.releases import Release, parse_size

ABRIDGED_FLAG = 32  # browseflags bit (MLM flags.rs)
MIN_RATIO = 1.0  # MAM's rules as Prowlarr reports them for every torrent
MIN_SEED_TIME_S = 259_200  # 72 hours

MAX_FIELD_CHARS = 100_000  # a JSON name field longer than this is not a list of names

_ABRIDGED = re.compile(r"\babridged\b", re.IGNORECASE)
_UNABRIDGED = re.compile(r"\bunabridged\b", re.IGNORECASE)


def release_from_mam_row(row: dict[str, Any]) -> Release:
    """Parse a row of `/tor/js/loadSearchJSONbasic.php`; ValueError(reason) when malformed.

    Total: whatever a row holds, the only exception is ValueError with a short reason."""
    try:
        return _release(row)
    except ValueError:
        raise
    except Exception as exc:  # a shape nobody foresaw still costs one row, never the search
        raise ValueError(f"unreadable_row_{type(exc).__name__}") from None


def _release(row: dict[str, Any]) -> Release:
    if not isinstance(row, dict):
        raise ValueError("not_an_object")
    release_id = _int(row.get("id"))
    if release_id is None or release_id <= 0:
        raise ValueError("missing_id")
    title = row.get("title")
    if isinstance(title, int) and not isinstance(title, bool) and abs(title) < 10**18:
        title = str(title)  # titles like 1984 come as numbers
    if not isinstance(title, str) or not title.strip():
        raise ValueError("missing_title")
    tags = str(row.get("tags") or "")[:MAX_FIELD_CHARS]
    filetype = str(row.get("filetype") or "")[:64].split()
    lang_code = str(row.get("lang_code") or "").strip().upper()
    return Release(
        indexer="mam",
        release_id=str(release_id),
        title=html.unescape(title.strip()),
        authors=_names(row.get("author_info"), "author_info"),
        narrators=_names(row.get("narrator_info"), "narrator_info"),
        series=_series(row.get("series_info")),
        filetype=filetype[0].lower() if filetype else None,
        size_bytes=parse_size(row.get("size")),
        num_files=_int(row.get("numfiles")),
        tags=tags,
        seeders=_int(row.get("seeders")) or 0,
        leechers=_int(row.get("leechers")) or 0,
        language=lang_code or None,
        free=_flag(row.get("free")),
        personal_freeleech=_flag(row.get("personal_freeleech")),
        vip=_flag(row.get("vip")),
        fl_vip=_flag(row.get("fl_vip")),
        my_snatched=_flag(row.get("my_snatched")),
        abridged=bool((_int(row.get("browseflags")) or 0) & ABRIDGED_FLAG)
        or bool(_ABRIDGED.search(tags) and not _UNABRIDGED.search(tags)),
        added=str(row["added"]) if row.get("added") else None,
        download_url=f"/tor/download.php?tid={release_id}",
        isbn=_isbn(row.get("isbn")),
        min_ratio=MIN_RATIO,
        min_seed_time_s=MIN_SEED_TIME_S,
    )


def _json_object(value: Any, field: str) -> dict[str, Any]:
    """The JSON object inside a string field; "" and None are empty, anything else is malformed."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value[:MAX_FIELD_CHARS])
        except (ValueError, RecursionError):  # RecursionError: nested deeper than any real row
            raise ValueError(f"bad_{field}") from None
    if isinstance(value, list) and not value:
        return {}  # PHP encodes an empty array as [] rather than {}
    if not isinstance(value, dict):
        raise ValueError(f"bad_{field}")
    return value


def _names(value: Any, field: str) -> tuple[str, ...]:
    names = []
    for name in _json_object(value, field).values():
        if not isinstance(name, str):
            raise ValueError(f"bad_{field}")
        if name.strip():
            names.append(html.unescape(name.strip()))
    return tuple(names)


def _series(value: Any) -> tuple[tuple[str, str], ...]:
    series = []
    for entry in _json_object(value, "series_info").values():
        if not isinstance(entry, list) or not entry or not isinstance(entry[0], str):
            raise ValueError("bad_series_info")
        sequence = entry[1] if len(entry) > 1 and entry[1] is not None else ""
        if entry[0].strip():
            series.append((html.unescape(entry[0].strip()), str(sequence).strip()))
    return tuple(series)


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "yes", "true")
    return bool(value) if isinstance(value, bool | int | float) else False


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)  # is_integer() is False for inf and NaN
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 18:
        return int(value.strip())
    return None


def _isbn(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None
