"""What an indexer offers: one `Release` per torrent, whatever indexer it came from.

MAM rows and Torznab items are parsed into this one shape by their resources, so release
scoring, the tables and the UI never care where a release was found. Everything but
`magnet` is safe to store: download links lose their key parameters and an id that could
carry a passkey is hashed (`torznab_items.public_release_id`); a magnet's trackers may hold
a passkey, so only its `xt`/`dn` are ever written (`torznab_items.public_magnet`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SIZE = re.compile(r"^\s*([\d.,]+)\s*([KMGTP]?)(i?)B\s*$", re.IGNORECASE)
_UNITS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}


@dataclass(frozen=True)
class Release:
    indexer: str  # "mam", or the configured name of a Torznab indexer
    release_id: str  # MAM torrent id, or the Torznab guid (hashed when it could hold a secret)
    title: str
    authors: tuple[str, ...] = ()
    narrators: tuple[str, ...] = ()
    series: tuple[tuple[str, str], ...] = ()  # (name, sequence as the indexer wrote it: "3", "2.5", "1 - 3")
    filetype: str | None = None  # lower case: "m4b", "mp3"; the first when an upload lists several
    size_bytes: int | None = None
    num_files: int | None = None
    tags: str = ""  # free text, often "Unabridged | 64kbps | m4b"
    seeders: int = 0
    leechers: int = 0
    language: str | None = None  # ISO 639-2 upper case when known: "ENG", "GER", "POL"
    free: bool = False  # global freeleech (MAM `free`, Torznab downloadvolumefactor 0)
    personal_freeleech: bool = False
    vip: bool = False  # a VIP torrent (free for VIP users only when `fl_vip`)
    fl_vip: bool = False
    my_snatched: bool = False  # the user has snatched this torrent before: never grab it again
    abridged: bool = False
    added: str | None = None  # "YYYY-MM-DD HH:MM:SS" UTC
    download_url: str | None = None  # without secrets; the resource adds its credentials
    magnet: str | None = None
    info_hash: str | None = None  # lower-case hex v1 info-hash when the indexer tells it
    isbn: str | None = None
    min_ratio: float | None = None
    min_seed_time_s: int | None = None

    def is_freeleech(self, user_is_vip: bool) -> bool:
        """MAM's rule (as Prowlarr computes it): free, personal FL, or VIP-FL for a VIP user."""
        return self.free or self.personal_freeleech or (user_is_vip and self.fl_vip)


MAX_SIZE_BYTES = 2**63 - 1  # what the tables store; anything larger is not a real size


def parse_size(text: str | int | float | None) -> int | None:
    """"1.26 GiB" -> bytes. MAM writes binary units; a bare number is bytes already.
    None for anything else (a list, Infinity, a 400-digit number)."""
    if isinstance(text, str):
        match = _SIZE.match(text[:64])
        if not match:
            return None
        try:
            text = float(match.group(1).replace(",", "")) * 1024 ** _UNITS[match.group(2).upper()]
        except ValueError:
            return None
    if isinstance(text, bool) or not isinstance(text, int | float):
        return None
    return int(text) if 0 <= text <= MAX_SIZE_BYTES else None  # NaN fails both comparisons


_BITRATE = re.compile(r"\b(\d{2,3})\s*kbps\b", re.IGNORECASE)


def tagged_bitrate_kbps(tags: str) -> int | None:
    """The bitrate an uploader wrote in the tags ("64kbps"), if any."""
    match = _BITRATE.search(tags or "")
    return int(match.group(1)) if match else None
