"""Torznab XML (Prowlarr, Jackett) -> capabilities and `Release`s.

Shapes follow `shared/fixtures/torznab/README.md`: items carry `torznab:attr name= value=`
(some servers use the `newznab:` prefix for the same thing), `size` is an element in both
Prowlarr and Jackett (the spec also allows an attr), Jackett writes `files`/`grabs` as
elements, and Prowlarr renders MAM rows as `<title> by <authors> [<LANG> / <FILETYPE>]`
plus ` [VIP]`, which must come off before a title can be matched.

Secrets: links carry the server's API key in the query string, and a Jackett/Cardigann
definition without a details page uses the tracker's download link (passkey and all) as
the guid, or the magnet with its `tr=` announce URLs. Query parameters named in
`SECRET_PARAMS` are removed from stored links, and a guid that may hold a secret becomes a
short hash (`public_release_id`). A tracker link with its key in the PATH is kept as it is
(removing it would break the download): such trackers are expected to be proxied by
Prowlarr/Jackett, whose own links carry only their API key in the query. `Release.magnet`
keeps the whole magnet, trackers included, to add a magnet-only release; what is stored or
shown goes through `public_magnet`.
"""

from __future__ import annotations

import hashlib
import html
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from mamcrawler.releases import Release

MAX_FEED_BYTES = 20 * 1024 * 1024
# Query parameters that carry a secret in Prowlarr / Jackett / tracker links (`uid` and `id` are ids).
SECRET_PARAMS = frozenset({
    "apikey", "api_key", "jackett_apikey", "passkey", "torrent_pass", "authkey", "rsskey", "pk",
    "key", "token", "access_token", "auth", "sid",
})
MAGNET_PUBLIC_PARAMS = frozenset({"xt", "dn"})  # the info-hash and the display name
AUDIO_FILETYPES = ("m4b", "mp3", "flac", "m4a")

_MAM_SUFFIX = re.compile(r"^(?P<title>.+) by (?P<authors>[^\[\]]+?) \[(?P<flags>[^\[\]]+)\]$")
_VIP_SUFFIX = re.compile(r"\s*\[VIP\]$", re.IGNORECASE)
_LANG = re.compile(r"^[A-Z]{2,3}$")
_FILETYPE_WORD = re.compile(r"\b(" + "|".join(AUDIO_FILETYPES) + r")\b", re.IGNORECASE)
_ABRIDGED = re.compile(r"\babridged\b", re.IGNORECASE)
_UNABRIDGED = re.compile(r"\bunabridged\b", re.IGNORECASE)
_BRACKETS = re.compile(r"\[([^\[\]]+)\]")
_BTIH = re.compile(r"urn:btih:([0-9a-fA-F]{40})\b")
_TAGS_HTML = re.compile(r"<[^>]+>")
_KEY_LIKE = re.compile(r"[A-Za-z0-9]{20,}")  # a passkey or token in a URL path
_URL_IN_TEXT = re.compile(r"\b(?:https?|udp|wss?)://[^\s\"'<>]+|\bmagnet:\?[^\s\"'<>]*", re.IGNORECASE)
_SECRET_PAIR = re.compile(
    r"\b(" + "|".join(sorted(SECRET_PARAMS, key=len, reverse=True)) + r")=[^&\s\"'<>]+", re.IGNORECASE
)
_KNOWN_FILETYPES = {*AUDIO_FILETYPES, "aac", "ogg", "opus", "wma", "epub", "mobi", "azw3", "pdf", "cbz", "cbr"}


class FeedError(ValueError):
    """The body is not a Torznab document this parser can read (too large, not XML, not RSS)."""


@dataclass(frozen=True)
class TorznabCaps:
    """What an indexer says it can do (`t=caps`)."""

    book_search_params: frozenset[str] = frozenset()  # empty when book-search is not available
    search_params: frozenset[str] = frozenset()
    categories: dict[int, str] = field(default_factory=dict)
    limit_max: int = 100

    @property
    def book_search(self) -> bool:
        return bool(self.book_search_params)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _root(xml: str | bytes) -> ET.Element:
    if len(xml) > MAX_FEED_BYTES:
        raise FeedError(f"body of {len(xml)} bytes is over the {MAX_FEED_BYTES} byte limit")
    try:
        return ET.fromstring(xml)
    except (ET.ParseError, ValueError) as exc:  # ValueError: text that is not valid Unicode
        raise FeedError(f"not XML ({type(exc).__name__})" if not isinstance(exc, ET.ParseError) else f"not XML ({exc})") from None


def error_from_feed(xml: str | bytes) -> tuple[int, str] | None:
    """`<error code= description= />` as (code, description); None for any other document."""
    try:
        root = _root(xml)
    except FeedError:
        return None
    if _local(root.tag) != "error":
        return None
    try:
        code = int(root.get("code", ""))
    except ValueError:
        code = 0
    return code, root.get("description") or ""


def is_auth_error(code: int) -> bool:
    """Torznab reserves 100-199 for account problems (Prowlarr's TorznabRssParser)."""
    return 100 <= code <= 199


def parse_caps(xml: str | bytes) -> TorznabCaps:
    root = _root(xml)
    if _local(root.tag) != "caps":
        raise FeedError(f"expected <caps>, got <{_local(root.tag)}>")
    limit_max = 100
    params: dict[str, frozenset[str]] = {}
    categories: dict[int, str] = {}
    for element in root.iter():
        name = _local(element.tag)
        attrs = {k.lower(): v for k, v in element.attrib.items()}
        if name == "limits":
            limit_max = _int(attrs.get("max")) or _int(attrs.get("default")) or limit_max
        elif name in ("search", "book-search"):
            if attrs.get("available", "").lower() == "yes":
                supported = attrs.get("supportedparams", "q")
                params[name] = frozenset(p.strip().lower() for p in supported.split(",") if p.strip())
        elif name in ("category", "subcat") and (cat_id := _int(attrs.get("id"))) is not None:
            categories[cat_id] = attrs.get("name", "")
    return TorznabCaps(
        book_search_params=params.get("book-search", frozenset()),
        search_params=params.get("search", frozenset()),
        categories=categories,
        limit_max=limit_max,
    )


def releases_from_feed(xml: str | bytes, indexer: str) -> tuple[list[Release], dict[str, int]]:
    """Every usable `<item>` as a `Release` of `indexer`, and the skipped ones counted by reason."""
    root = _root(xml)
    if _local(root.tag) == "error":
        raise FeedError(f"an error document, not a feed (code {root.get('code')})")
    if _local(root.tag) != "rss":
        raise FeedError(f"expected <rss>, got <{_local(root.tag)}>")
    releases: list[Release] = []
    skipped: dict[str, int] = {}
    for item in root.iter("item"):
        try:
            release = release_from_item(item, indexer)
        except Exception as exc:  # one item nobody foresaw costs that item, never the feed
            release = f"unreadable_item_{type(exc).__name__}"
        if isinstance(release, str):
            skipped[release] = skipped.get(release, 0) + 1
        else:
            releases.append(release)
    return releases, skipped


def _item_fields(item: ET.Element) -> tuple[dict[str, str], dict[str, list[str]], str | None]:
    """(child element texts, torznab attrs by name, enclosure url)."""
    elements: dict[str, str] = {}
    attrs: dict[str, list[str]] = {}
    enclosure = None
    for child in item:
        name = _local(child.tag)
        if name == "attr":
            if child.get("name") and child.get("value") is not None:
                attrs.setdefault(child.get("name", "").lower(), []).append(child.get("value", "").strip())
        elif name == "enclosure":
            enclosure = enclosure or (child.get("url") or "").strip() or None
        elif name not in elements:
            elements[name] = (child.text or "").strip()
    return elements, attrs, enclosure


def release_from_item(item: ET.Element, indexer: str) -> Release | str:
    """One `<item>`; a short reason string when it cannot be used."""
    elements, attrs, enclosure = _item_fields(item)

    def attr(name: str) -> str | None:
        values = attrs.get(name)
        return values[0] if values and values[0] else None

    raw_title = html.unescape(elements.get("title", "")).strip()
    if not raw_title:
        return "no_title"
    link = elements.get("link") or enclosure
    magnet = attr("magneturl")
    if magnet and not magnet.startswith("magnet:"):
        # Prowlarr turns magnets into proxy links to itself (with the API key): a download link.
        link, magnet = link or magnet, None
    if link and link.startswith("magnet:"):
        magnet, link = magnet or link, None
    if not link and not magnet:
        return "no_link"

    title, authors, language, filetype, vip = split_mam_title(raw_title)
    for author in _split_names(attr("author")):
        if author not in authors:
            authors = (*authors, author)
    booktitle = attr("booktitle")
    if booktitle:
        title = html.unescape(booktitle).strip()
    if filetype is None and (word := _FILETYPE_WORD.search(raw_title)):
        filetype = word.group(1).lower()

    seeders = _int(attr("seeders")) or 0
    peers = _int(attr("peers"))
    info_hash = attr("infohash")
    if not info_hash and magnet and (btih := _BTIH.search(magnet)):
        info_hash = btih.group(1)
    download_url = strip_secrets(link) if link else None
    volume = _float(attr("downloadvolumefactor"))
    return Release(
        indexer=indexer,
        release_id=public_release_id(
            elements.get("guid") or elements.get("comments") or download_url or magnet or raw_title
        ),
        title=title,
        authors=authors,
        filetype=filetype,
        size_bytes=_size(elements.get("size")) or _size(attr("size")) or _enclosure_length(item),
        num_files=_int(attr("files")) or _int(elements.get("files")),
        tags=_tags(raw_title, elements.get("description", ""), attrs.get("tag", [])),
        seeders=seeders,
        leechers=max(0, peers - seeders) if peers is not None else 0,
        language=language,
        free=volume == 0,
        vip=vip,
        abridged=bool(_ABRIDGED.search(raw_title) and not _UNABRIDGED.search(raw_title)),
        added=_added(elements.get("pubDate")),
        download_url=download_url,
        magnet=magnet,
        info_hash=info_hash.lower() if info_hash and re.fullmatch(r"[0-9a-fA-F]{40}", info_hash) else None,
        min_ratio=_float(attr("minimumratio")),
        min_seed_time_s=_int(attr("minimumseedtime")),
    )


def split_mam_title(raw: str) -> tuple[str, tuple[str, ...], str | None, str | None, bool]:
    """Prowlarr's MAM title -> (title, authors, language, filetype, vip).

    Prowlarr appends ` by <up to 5 authors, comma separated>`, then `[<LANG> / <FILETYPE>]`
    (either part may be missing), then ` [VIP]`. A title without the bracketed flags is left
    alone: "Stand by Me" is not a book by "Me".
    """
    title, vip = raw, False
    if _VIP_SUFFIX.search(title):
        title, vip = _VIP_SUFFIX.sub("", title), True
    match = _MAM_SUFFIX.match(title)
    if not match:
        return title.strip(), (), None, None, vip
    language = filetype = None
    parts = [p.strip() for p in match.group("flags").split(" / ")]
    if len(parts) > 2 or not all(parts):
        return title.strip(), (), None, None, vip
    for part in parts:
        word = part.split()[0].lower()
        if word in _KNOWN_FILETYPES and filetype is None:
            filetype = word
        elif _LANG.match(part) and language is None:
            language = part
        else:
            return title.strip(), (), None, None, vip  # brackets of some other kind: not the MAM suffix
    return match.group("title").strip(), _split_names(match.group("authors")), language, filetype, vip


def strip_secrets(url: str) -> str:
    """`url` without `apikey` (and the like) in its query; the rest is kept byte for byte."""
    base, sep, query = url.partition("?")
    if not sep:
        return url
    query, hash_sep, fragment = query.partition("#")
    # "amp;": a feed that escaped its links twice
    kept = [p for p in query.split("&") if p and p.split("=", 1)[0].lower().removeprefix("amp;") not in SECRET_PARAMS]
    return base + ("?" + "&".join(kept) if kept else "") + hash_sep + fragment


def public_release_id(guid: str) -> str:
    """`guid` as a release id that is safe to store and print.

    Numbers and details links (Prowlarr's `https://www.myanonamouse.net/t/1100101`) stay as
    they are. A magnet, a link with a query string or user info, or a link with a key-like
    path segment (20+ letters and digits) may hold a passkey: it becomes `g` + 16 hex digits
    of its SHA-256, taken after removing `SECRET_PARAMS` (and a magnet's trackers) so that a
    new API key does not rename every release.
    """
    if not _may_hold_secret(guid):
        return guid
    stable = (public_magnet(guid) or guid) if guid[:7].lower() == "magnet:" else strip_secrets(guid)
    return "g" + hashlib.sha256(stable.encode("utf-8")).hexdigest()[:16]


def _may_hold_secret(guid: str) -> bool:
    if guid[:7].lower() == "magnet:" or "?" in guid:
        return True
    if "://" not in guid:
        return False  # a number, an info-hash, a made-up token: not a link that could carry a key
    try:
        parts = urlsplit(guid)
    except ValueError:
        return True
    return "@" in parts.netloc or bool(_KEY_LIKE.search(parts.path) or _KEY_LIKE.search(parts.fragment))


def public_magnet(magnet: str) -> str:
    """`magnet` with only its info-hash (`xt`) and display name (`dn`); "" when it has no `xt`.

    Trackers (`tr`, private ones carry the passkey), sources (`xs`, `as`, `ws`) and anything
    else are dropped. A magnet-only release sent from a stored row therefore reaches
    qBittorrent without trackers and finds its peers through DHT; that is fine, because only
    public trackers are magnet-only (private ones always give a .torrent link).
    """
    text = magnet.strip()
    if text[:8].lower() != "magnet:?":
        return ""
    query = text[8:].partition("#")[0]
    kept = [p for p in query.split("&") if p.split("=", 1)[0].split(".", 1)[0].lower() in MAGNET_PUBLIC_PARAMS]
    if not any(p.split("=", 1)[0].split(".", 1)[0].lower() == "xt" for p in kept):
        return ""
    return "magnet:?" + "&".join(kept)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Text from a server (an error description) made fit for a log line or an exception.

    Every `secrets` value goes, each link keeps only its scheme, host and path (key-like path
    segments become `***`), magnets their info-hash and name, and `passkey=...`-style pairs
    lose their value.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _URL_IN_TEXT.sub(lambda m: _redact_link(m.group(0)), text)
    return _SECRET_PAIR.sub(lambda m: f"{m.group(1)}=***", text)


def _redact_link(link: str) -> str:
    if link[:7].lower() == "magnet:":
        return public_magnet(link) or "magnet:?***"
    base, _, rest = link.partition("?")
    base = base.partition("#")[0]
    scheme, _, location = base.partition("://")
    host, slash, path = location.partition("/")
    host = host.rpartition("@")[2]  # user:password@host
    return f"{scheme}://{host}{slash}{_KEY_LIKE.sub('***', path)}" + ("?***" if rest else "")


def _split_names(text: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in html.unescape(text or "").split(",") if n.strip())


def _tags(raw_title: str, description: str, tags: list[str]) -> str:
    """Free text for scoring: bracketed title parts ("M4B 64kbps"), description words, tags."""
    text = re.sub(r"\s+", " ", _TAGS_HTML.sub(" ", html.unescape(description))).strip()
    parts = [b.strip() for b in _BRACKETS.findall(raw_title)] + ([text[:500]] if text else []) + tags
    return " | ".join(p for p in parts if p)


def _added(pub_date: str | None) -> str | None:
    if not pub_date:
        return None
    try:
        moment = parsedate_to_datetime(pub_date)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _enclosure_length(item: ET.Element) -> int | None:
    for child in item:
        if _local(child.tag) == "enclosure":
            return _size(child.get("length"))
    return None


def _size(text: str | None) -> int | None:
    """A size in bytes, or None for one no file has (negative, or past a 64-bit column)."""
    size = _int(text)
    return size if size is not None and 0 <= size < 2**63 else None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(float(text.strip()))
    except (ValueError, OverflowError):
        return None


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text.strip())
    except ValueError:
        return None
