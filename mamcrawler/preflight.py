"""Preflight: is every service configured the way MAMcrawler (and a private tracker) needs?

Plain functions over facts the resources read; each returns `Finding`s that say what is wrong
and what to change where. qBittorrent's keys are those of `GET /api/v2/app/preferences` (WebUI
API v2, qBittorrent >= 4.1; the same names in qbittorrent-api's `app_preferences()`):
`dht`, `pex`, `lsd` (bool: DHT, peer exchange, local service discovery), `auto_tmm_enabled`
(bool: new torrents default to automatic torrent management), `current_network_interface`
(the interface name torrents are bound to; "" = any interface), `current_interface_address`
("" = every address of it) and `save_path` (the default save path). Categories come from
`GET /api/v2/torrents/categories`: `{name: {"name", "savePath"}}`. Checked against
qbittorrent-nox 4.5.2 in tests/test_preflight.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal

from mamcrawler.figures import plural

Severity = Literal["ok", "warn", "fail"]
GIB = 1024**3

# Where each qBittorrent switch lives in its UI (qBittorrent 4.x/5.x, Tools -> Options).
_PRIVACY = {
    "dht": "DHT (decentralized network)",
    "pex": "Peer Exchange (PeX)",
    "lsd": "Local Peer Discovery",
}


@dataclass(frozen=True)
class Finding:
    """One rule: `says` what was seen, `fix` what to change and where ("" when ok)."""

    check: str
    ok: bool
    severity: Severity
    says: str
    fix: str = ""

    def line(self) -> str:
        label = {"ok": "OK  ", "warn": "WARN", "fail": "FAIL"}[self.severity]
        return f"{label} {self.check}: {self.says}" + (f" -> {self.fix}" if self.fix else "")


def ok(check: str, says: str) -> Finding:
    return Finding(check, True, "ok", says)


def warn(check: str, says: str, fix: str) -> Finding:
    return Finding(check, False, "warn", says, fix)


def fail(check: str, says: str, fix: str) -> Finding:
    return Finding(check, False, "fail", says, fix)


def failed(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "fail" for f in findings)


def abs_findings(libraries: list[dict[str, Any]], library_ids: list[str]) -> list[Finding]:
    """The key worked (we have the answer of GET /api/libraries); are the libraries we read there?"""
    books = [lib for lib in libraries if lib.get("mediaType") == "book"]
    names = ", ".join(f"{lib.get('name')} ({lib.get('id')})" for lib in libraries) or "none"
    found = [ok("abs.key", f"the API key is accepted; {plural(len(libraries), 'library')}: {names}")]
    unknown = [i for i in library_ids if i not in {lib.get("id") for lib in libraries}]
    if unknown:
        found.append(fail("abs.libraries", f"no ABS library with id {', '.join(unknown)}",
                          "fix ABS_LIBRARY_IDS (the ids are listed above), or unset it to read every book library"))
    elif not library_ids and not books:
        found.append(fail("abs.libraries", "ABS has no book library",
                          "create a library of type Books in ABS (Settings -> Libraries)"))
    else:
        chosen = library_ids or [lib["id"] for lib in books]
        found.append(ok("abs.libraries", f"reading {plural(len(chosen), 'library')}: {', '.join(chosen)}"))
    return found


def qbittorrent_findings(
    preferences: dict[str, Any],
    categories: dict[str, dict[str, Any]],
    our_category: str,
    save_path: str,
    interface: str = "",
) -> list[Finding]:
    """qBittorrent's settings against a private tracker's rules and our category.

    `interface`: the interface qBittorrent must be bound to (a VPN's, e.g. "wg0"); "" warns
    when it is bound to none, "*" accepts any binding.
    """
    found = []
    for key, label in _PRIVACY.items():
        if preferences.get(key) is False:
            found.append(ok(f"qbittorrent.{key}", f"{label} is off"))
        else:
            found.append(fail(
                f"qbittorrent.{key}", f"{label} is {'on' if preferences.get(key) else 'not reported'} (app/preferences `{key}`)",
                f"turn it off in qBittorrent: Tools -> Options -> BitTorrent -> {label}; private trackers (MAM) "
                "forbid it",
            ))
    if preferences.get("auto_tmm_enabled"):
        found.append(ok("qbittorrent.auto_tmm", "new torrents default to automatic torrent management"))
    else:
        found.append(warn(
            "qbittorrent.auto_tmm", "the default torrent management mode is manual (app/preferences `auto_tmm_enabled`)",
            "MAMcrawler adds its torrents in automatic mode anyway; to make the category's save path apply to "
            "torrents added by hand too, set Tools -> Options -> Downloads -> Default Torrent Management Mode: Automatic",
        ))
    bound = str(preferences.get("current_network_interface") or "")
    if interface == "*":
        found.append(ok("qbittorrent.interface", f"bound to {bound or 'any interface'} (any accepted)"))
    elif interface and bound != interface:
        found.append(fail(
            "qbittorrent.interface", f"bound to {bound or 'any interface'}, not {interface}",
            f"bind qBittorrent to {interface}: Tools -> Options -> Advanced -> Network interface "
            "(or change MAMCRAWLER_QBITTORRENT_INTERFACE)",
        ))
    elif not bound:
        found.append(warn(
            "qbittorrent.interface", "not bound to a named interface: traffic leaves by any route if a VPN drops",
            "bind it to your VPN's interface in Tools -> Options -> Advanced -> Network interface and set "
            "MAMCRAWLER_QBITTORRENT_INTERFACE to that name (or to * to accept any)",
        ))
    else:
        found.append(ok("qbittorrent.interface", f"bound to {bound}"))
    default_path = str(preferences.get("save_path") or "")
    category = categories.get(our_category)
    if category is None:
        where = save_path or f"{default_path.rstrip('/')}/{our_category}"
        found.append(warn(
            "qbittorrent.category", f"no category {our_category!r} yet",
            f"nothing to do: the first send creates it, saving into {where} (MAMCRAWLER_QBITTORRENT_SAVE_PATH)",
        ))
    else:
        actual = str(category.get("savePath") or "")
        if save_path and actual.rstrip("/") != save_path.rstrip("/"):
            found.append(fail(
                "qbittorrent.category", f"category {our_category!r} saves into {actual or '(default path)'}, "
                f"not the configured {save_path}",
                "the next send re-points it, and qBittorrent then moves every torrent in it: set "
                "MAMCRAWLER_QBITTORRENT_SAVE_PATH to the category's path, or edit the category in qBittorrent",
            ))
        else:
            where = actual or f"{default_path.rstrip('/')}/{our_category}"
            found.append(ok("qbittorrent.category", f"category {our_category!r} saves into {where}"))
    return found


def mam_findings(username: str, classname: str | None, ip_info: dict[str, Any] | None, session_ip: str = "") -> list[Finding]:
    """The cookie worked (we have the user); does MAM see us from the IP the session is for?

    A MAM session is bound to the IP (or ASN) chosen when it was created; `session_ip` is that
    IP as configured (MAMCRAWLER_MAM_SESSION_IP), "" when not known.
    """
    found = [ok("mam.cookie", f"the mam_id cookie is valid: user {username} ({classname or 'class unknown'})")]
    seen = str((ip_info or {}).get("ip") or "")
    asn = (ip_info or {}).get("ASN")
    if not seen:
        found.append(warn("mam.ip", "MAM did not say which IP it sees (GET /json/jsonIp.php)",
                          "check the IP in MAM under Preferences -> Security against your session's"))
    elif session_ip and seen != session_ip:
        found.append(fail(
            "mam.ip", f"MAM sees this machine as {seen}, the session is for {session_ip}",
            "the cookie stops working from this IP: route MAMcrawler through the session's IP (VPN), or create "
            "a session for this IP in MAM (Preferences -> Security) and update MAM_ID and MAMCRAWLER_MAM_SESSION_IP",
        ))
    else:
        bound = ", the session's IP" if session_ip else " (set MAMCRAWLER_MAM_SESSION_IP to have it compared)"
        found.append(ok("mam.ip", f"MAM sees this machine as {seen}" + (f" (ASN {asn})" if asn else "") + bound))
    return found


def disk_findings(label: str, path: str, min_free_gib: float, setting: str = "", created_on_use: bool = False) -> list[Finding]:
    """Free space (GiB) in a folder we write to; a missing folder fails, unless MAMcrawler
    creates it on first use (`created_on_use`): then the disk it will be on is measured."""
    check = f"disk.{label}"
    where = f" ({setting})" if setting else ""
    if not path:
        return [warn(check, f"no {label} folder configured", f"set {setting or 'it'} to check its free space")]
    folder = Path(path)
    note = ""
    if not folder.is_dir() and created_on_use:
        while not folder.is_dir() and folder != folder.parent:
            folder = folder.parent
        note = f" (for {path}, created on first use)"
    if not folder.is_dir():
        return [fail(check, f"{path} is not a folder on this machine", f"create it or fix the path{where}")]
    free_gib = shutil.disk_usage(folder).free / GIB
    says = f"{free_gib:.1f} GiB free in {folder}{note}"
    if free_gib < min_free_gib:
        return [fail(check, f"{says}, less than {min_free_gib:g} GiB",
                     f"free space on that disk or move the folder{where}; the floor is MAMCRAWLER_MIN_FREE_GIB")]
    return [ok(check, says)]


def clock_findings(source: str, server_date_header: str | None, now: datetime, max_skew_s: float) -> list[Finding]:
    """This machine's clock against a server's HTTP `Date` header (a second's resolution):
    times in the warehouse, ratio windows and cookie expiry all read this clock."""
    check = f"clock.{source}"
    if not server_date_header:
        return [warn(check, f"{source} sent no Date header: clock not compared", "nothing to change here")]
    try:
        server = parsedate_to_datetime(server_date_header)
    except (TypeError, ValueError):
        return [warn(check, f"{source} sent an unreadable Date header", "nothing to change here")]
    if server.tzinfo is None:
        server = server.replace(tzinfo=UTC)
    skew_s = (now - server).total_seconds()
    says = f"this clock is {abs(skew_s):.0f} s {'ahead of' if skew_s >= 0 else 'behind'} {source}"
    if abs(skew_s) > max_skew_s + 1:  # the header is truncated to whole seconds
        return [fail(check, f"{says}, more than {max_skew_s:g} s",
                     "synchronise this machine's clock (NTP: `timedatectl set-ntp true`, or chrony)")]
    return [ok(check, says)]


def unavailable(check: str, error: str, fix: str = "") -> Finding:
    """A service that could not be asked: its error message already says what to change."""
    return fail(check, error, fix or "see the message")
