"""The MAM account (`/jsonLoad.php?snatch_summary`) as one row, and the rules that guard it.

The answer is loose (`shared/fixtures/mam/README.md`): numbers may come as strings (after a
bonus buy `seedbonus` is one), `vip_until` is `"YYYY-MM-DD HH:MM:SS"` or null, and the snatch
summary is a set of `{name, count, red, size}` objects (`unsat` adds `limit`). Parsing is
total: a field that cannot be read becomes None and its reason is counted in `unreadable`;
the only exception is `AccountError`, for an answer that is no user at all (not an object,
or no username). The cookie is never part of the answer, nor of anything kept from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

VIP_CLASSES = ("VIP", "Elite VIP")  # VIP torrents (fl_vip) are freeleech for these (Prowlarr)
MAX_TEXT = 200  # a class or user name longer than this is not one
_VIP_FORMAT = "%Y-%m-%d %H:%M:%S"

STATUS_SCHEMA: dict[str, pl.DataType] = {
    "checked_at": pl.Datetime("us", "UTC"),
    "username": pl.Utf8,
    "classname": pl.Utf8,
    "ratio": pl.Float64,
    "uploaded_bytes": pl.Int64,
    "downloaded_bytes": pl.Int64,
    "seedbonus": pl.Int64,
    "wedges": pl.Int64,
    "vip_until": pl.Datetime("us", "UTC"),
    "unsatisfied": pl.Int64,
    "unsatisfied_limit": pl.Int64,
    "hit_and_runs": pl.Int64,
    "unreadable": pl.Utf8,
}


class AccountError(ValueError):
    """The answer is not a MAM user at all (not an object, or no username)."""


@dataclass(frozen=True)
class AccountStatus:
    """What the account allows now; None = MAM did not say (or said it unreadably)."""

    username: str
    classname: str | None
    ratio: float | None  # uploaded / downloaded; inf before anything was downloaded
    uploaded_bytes: int | None
    downloaded_bytes: int | None
    seedbonus: int | None  # bonus points
    wedges: int | None  # freeleech wedges
    vip_until: datetime | None  # UTC; None for a class without VIP
    unsatisfied: int | None  # torrents not yet seeded long enough
    unsatisfied_limit: int | None  # how many the class may have at once
    hit_and_runs: int | None  # torrents in hit-and-run state (seeding or not), not yet satisfied
    unreadable: dict[str, str] = field(default_factory=dict)  # field -> why it is None

    @property
    def is_vip(self) -> bool:
        return self.classname in VIP_CLASSES

    def row(self, checked_at: datetime) -> dict[str, Any]:
        """The warehouse row (one per materialisation in the history)."""
        unreadable = "; ".join(f"{k}: {v}" for k, v in sorted(self.unreadable.items())) or None
        return {
            "checked_at": checked_at, "username": self.username, "classname": self.classname, "ratio": self.ratio,
            "uploaded_bytes": self.uploaded_bytes, "downloaded_bytes": self.downloaded_bytes,
            "seedbonus": self.seedbonus, "wedges": self.wedges, "vip_until": self.vip_until,
            "unsatisfied": self.unsatisfied, "unsatisfied_limit": self.unsatisfied_limit,
            "hit_and_runs": self.hit_and_runs, "unreadable": unreadable,
        }


def status_from_row(row: dict[str, Any]) -> AccountStatus:
    """A warehouse row back as the status it was written from (for the checks)."""
    unreadable = dict(
        part.split(": ", 1) for part in (row.get("unreadable") or "").split("; ") if ": " in part
    )
    return AccountStatus(**{k: row.get(k) for k in STATUS_SCHEMA if k not in ("checked_at", "unreadable")},
                         unreadable=unreadable)


def status_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=STATUS_SCHEMA)


def account_status(body: Any) -> AccountStatus:
    """Parse a `/jsonLoad.php?snatch_summary` answer; AccountError when it is no user."""
    if not isinstance(body, dict):
        raise AccountError(f"the answer is a {type(body).__name__}, not a user object")
    username = body.get("username")
    if isinstance(username, int) and not isinstance(username, bool):
        username = str(username)
    if not isinstance(username, str) or not username.strip():
        raise AccountError("the answer names no user")
    why: dict[str, str] = {}

    def read(name: str, parse: Any, value: Any) -> Any:
        try:
            return parse(value)
        except _Unreadable as exc:
            why[name] = str(exc)
            return None

    unsat = body.get("unsat")
    hnr = [read(f"{key}.count", _count, _summary(body, key)) for key in ("seedHnr", "inactHnr")]
    return AccountStatus(
        username=username.strip()[:MAX_TEXT],
        classname=read("classname", _text, body.get("classname", _MISSING)),
        ratio=read("ratio", _ratio, body.get("ratio", _MISSING)),
        uploaded_bytes=read("uploaded_bytes", _count, body.get("uploaded_bytes", _MISSING)),
        downloaded_bytes=read("downloaded_bytes", _count, body.get("downloaded_bytes", _MISSING)),
        seedbonus=read("seedbonus", _count, body.get("seedbonus", _MISSING)),
        wedges=read("wedges", _count, body.get("wedges", _MISSING)),
        vip_until=read("vip_until", _vip_until, body.get("vip_until", _MISSING)),
        unsatisfied=read("unsat.count", _count, _summary(body, "unsat")),
        unsatisfied_limit=read("unsat.limit", _count, unsat.get("limit", _MISSING) if isinstance(unsat, dict) else _MISSING),
        hit_and_runs=None if None in hnr else sum(hnr),
        unreadable=why,
    )


class _Unreadable(ValueError):
    pass


_MISSING = object()


def _summary(body: dict[str, Any], key: str) -> Any:
    entry = body.get(key, _MISSING)
    if entry is _MISSING:
        return _MISSING
    return entry.get("count", _MISSING) if isinstance(entry, dict) else _Bad(type(entry).__name__)


@dataclass(frozen=True)
class _Bad:
    kind: str


def _absent(value: Any) -> None:
    if value is _MISSING:
        raise _Unreadable("missing")
    if isinstance(value, _Bad):
        raise _Unreadable(f"a {value.kind}, not an object")
    if value is None:
        raise _Unreadable("null")


def _text(value: Any) -> str:
    _absent(value)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise _Unreadable(f"not a name ({type(value).__name__})")
    return value.strip()


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise _Unreadable("a boolean, not a number")
    if isinstance(value, int | float):
        number = float(value) if abs(value) < 1e300 else math.inf  # an int too large for a float
    elif isinstance(value, str) and len(value) <= 40:
        try:
            number = float(value.replace(",", "").strip())
        except ValueError:
            raise _Unreadable("text, not a number") from None
    else:
        raise _Unreadable(f"not a number ({type(value).__name__})")
    if math.isnan(number):
        raise _Unreadable("not a number (NaN)")
    if number < 0:
        raise _Unreadable("negative")
    return number


def _ratio(value: Any) -> float:
    _absent(value)
    return _number(value)


def _count(value: Any) -> int:
    """A whole non-negative number that fits the warehouse's BIGINT."""
    _absent(value)
    number = _number(value)
    if math.isinf(number) or number >= 2**63:
        raise _Unreadable("too large")
    if not number.is_integer():
        raise _Unreadable("not a whole number")
    return int(number)


def _vip_until(value: Any) -> datetime | None:
    if value is None or value == "" or value is _MISSING:
        return None  # not VIP: nothing ends
    if not isinstance(value, str) or len(value) > 40:
        raise _Unreadable(f"not a date ({type(value).__name__})")
    try:
        return datetime.strptime(value.strip(), _VIP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise _Unreadable("not a YYYY-MM-DD HH:MM:SS date") from None


# The rules. Each says whether it holds and why, in a sentence with units; a figure MAM did
# not give never passes a rule that guards the ratio (nothing proves it is safe).


@dataclass(frozen=True)
class Verdict:
    passed: bool
    summary: str


def ratio_verdict(ratio: float | None, floor: float, consequence: str) -> Verdict:
    """The ratio against a floor; `consequence` says what failing means."""
    if ratio is None:
        return Verdict(False, f"ratio unknown (MAM did not say): {consequence}")
    shown = "∞" if math.isinf(ratio) else f"{ratio:.2f}"
    if ratio < floor:
        return Verdict(False, f"ratio {shown} is below the floor of {floor:.2f}: {consequence}")
    return Verdict(True, f"ratio {shown} is at or above the floor of {floor:.2f}")


def unsatisfied_verdict(unsatisfied: int | None, limit: int | None, headroom: int) -> Verdict:
    """Fails when fewer than `headroom` new torrents fit under the class's unsatisfied limit."""
    if unsatisfied is None or limit is None:
        return Verdict(False, "unsatisfied count or limit unknown (MAM did not say): new downloads should stop")
    room = limit - unsatisfied
    if room < headroom:
        return Verdict(
            False,
            f"{unsatisfied} of {limit} unsatisfied torrents: room for {max(room, 0)} more, "
            f"less than the {headroom} kept free: new downloads should stop",
        )
    return Verdict(True, f"{unsatisfied} of {limit} unsatisfied torrents: room for {room} more")


def vip_verdict(status: AccountStatus, now: datetime, warn_days: float) -> Verdict:
    """Fails when VIP ends within `warn_days` days (or has ended while the class still says VIP)."""
    if "vip_until" in status.unreadable:
        return Verdict(False, f"VIP end date unreadable ({status.unreadable['vip_until']})")
    if status.vip_until is None:
        return Verdict(True, "no VIP end date" + (" (VIP without end)" if status.is_vip else " (not VIP)"))
    left = status.vip_until - now
    days = left / timedelta(days=1)
    when = status.vip_until.strftime("%Y-%m-%d %H:%M UTC")
    if days < warn_days:
        ended = "ended" if days < 0 else f"ends in {days:.1f} days"
        return Verdict(False, f"VIP {ended} ({when}), within the {warn_days:g} days warned about")
    return Verdict(True, f"VIP ends in {days:.0f} days ({when})")


def gib(size_bytes: int | None) -> str:
    return "?" if size_bytes is None else f"{size_bytes / 2**30:,.2f} GiB"


def summary(status: AccountStatus) -> str:
    """One line a person reads in the UI, every figure with its unit."""

    ratio = "?" if status.ratio is None else ("∞" if math.isinf(status.ratio) else f"{status.ratio:.2f}")
    vip = f", VIP until {status.vip_until:%Y-%m-%d %H:%M} UTC" if status.vip_until else ""
    unsat = "?" if status.unsatisfied is None else str(status.unsatisfied)
    limit = "?" if status.unsatisfied_limit is None else str(status.unsatisfied_limit)
    parts = [
        f"{status.classname or 'class ?'}: ratio {ratio} ({gib(status.uploaded_bytes)} up, {gib(status.downloaded_bytes)} down)",
        f"{'?' if status.seedbonus is None else f'{status.seedbonus:,}'} bonus points",
        f"{'?' if status.wedges is None else status.wedges} freeleech wedges",
        f"{unsat} of {limit} unsatisfied torrents",
        f"{'?' if status.hit_and_runs is None else status.hit_and_runs} hit-and-runs{vip}",
    ]
    line = ", ".join(parts)
    if status.unreadable:
        line += f"; {len(status.unreadable)} field(s) unreadable: {', '.join(sorted(status.unreadable))}"
    return line
