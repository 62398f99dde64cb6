"""The figures a person reads, computed once: the CLI summary, the run log, the
materialisation metadata and the README's demo figures all come from these functions,
and every figure says what it counts."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import polars as pl

# Best first: how a person reads a level breakdown.
LEVEL_ORDER = ("HIGH", "MEDIUM", "LOW", "UNMATCHED")


def plural(n: int, unit: str, units: str | None = None) -> str:
    return f"{n} {unit if n == 1 else (units or unit + 's')}"


def level_counts(levels: Iterable[str | None]) -> dict[str, int]:
    """Books per level, every level present (a zero is a figure too), best first."""
    counts = Counter("UNMATCHED" if level is None else level for level in levels)
    return {level: counts.get(level, 0) for level in LEVEL_ORDER} | {
        k: v for k, v in sorted(counts.items()) if k not in LEVEL_ORDER
    }


def levels_line(counts: dict[str, int]) -> str:
    """`25 books: 4 HIGH, 1 MEDIUM, 0 LOW, 20 UNMATCHED`."""
    return f"{plural(sum(counts.values()), 'book')}: " + ", ".join(f"{n} {level}" for level, n in counts.items())


@dataclass(frozen=True)
class MissingFigures:
    """What `missing_books` holds, and what it was checked against."""

    books: int
    series_gaps: int
    author_gaps: int
    titled: int
    series: int
    series_with_catalogue: int
    upcoming: int

    def line(self) -> str:
        against_library = self.series - self.series_with_catalogue
        text = (
            f"{plural(self.books, 'missing book')} ({self.series_gaps} in owned series, {self.author_gaps} by followed "
            f"authors; {self.titled} with a title), {plural(self.upcoming, 'upcoming book')}; "
            f"{plural(self.series, 'owned series', 'owned series')}: {self.series_with_catalogue} checked against a "
            f"provider catalogue, {against_library} against the library alone"
        )
        if against_library:
            text += " (only the holes below the highest owned book; the catalogues add later books)"
        return text


def missing_figures(missing: pl.DataFrame, series: pl.DataFrame | None, upcoming: int = 0) -> MissingFigures:
    reasons = Counter(missing["reason"].to_list()) if missing.height else Counter()
    with_catalogue = 0
    if series is not None and series.height:
        with_catalogue = int(series["sources"].list.eval(pl.element() != "library").list.any().sum())
    return MissingFigures(
        books=missing.height,
        series_gaps=reasons.get("series_gap", 0),
        author_gaps=reasons.get("author_gap", 0),
        titled=int(missing["title"].is_not_null().sum()) if missing.height else 0,
        series=0 if series is None else series.height,
        series_with_catalogue=with_catalogue,
        upcoming=upcoming,
    )


@dataclass(frozen=True)
class CorrectionFigures:
    """Distinct corrections (book, field, new value) by their latest outcome: a re-run that
    records the same correction again does not add to them."""

    by_mode: dict[str, int]
    books: int
    new: int | None  # first recorded by this run; None when no run start was given
    oldest: datetime | None

    def line(self) -> str:
        if not self.by_mode:
            return "Corrections: none"
        parts = [
            f"{n} pending (dry run)" if mode == "dry_run" else f"{n} {mode}" for mode, n in self.by_mode.items()
        ]
        text = f"Corrections: {plural(sum(self.by_mode.values()), 'correction')} for {plural(self.books, 'book')}: "
        text += ", ".join(parts)
        if self.new is not None:
            text += f"; {self.new} new in this run"
            if self.new < sum(self.by_mode.values()) and self.oldest:
                text += f", the others unchanged since {self.oldest:%Y-%m-%d %H:%M} UTC"
        return text


def correction_figures(corrections: pl.DataFrame | None, run_started: datetime | None = None) -> CorrectionFigures:
    if corrections is None or corrections.is_empty():
        return CorrectionFigures({}, 0, None if run_started is None else 0, None)
    latest = corrections.sort("corrected_at").group_by("item_id", "field", "new").agg(
        pl.col("mode").last(), pl.col("corrected_at").first().alias("first_recorded")
    )
    new = None if run_started is None else int((latest["first_recorded"] >= run_started).sum())
    return CorrectionFigures(
        dict(sorted(Counter(latest["mode"].to_list()).items())),
        latest["item_id"].n_unique(),
        new,
        latest["first_recorded"].min(),
    )


def duration_text(seconds: float) -> str:
    """`45 s`, `12 min`, `3 h 05 min`."""
    if seconds < 90:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class EnrichmentProgress:
    """The progress line of a metadata run: books done of total for the provider at work,
    provider look-ups done of all planned, requests per provider, and the time left. The
    providers run one after another; the one at work is timed at its observed pace, those
    still to come at their configured rate (cache hits only make them faster)."""

    def __init__(self, plan: list[tuple[str, int, float]], clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.planned = {name: books for name, books, _ in plan}
        self.rates = {name: rate for name, _, rate in plan}
        self.done: dict[str, int] = {}
        self.requests: dict[str, int] = {}
        self.current: str | None = None
        self.current_started = clock()

    def start(self, provider: str, books: int) -> None:
        self.planned[provider] = books
        self.current, self.current_started = provider, self.clock()

    def update(self, provider: str, done: int, requests: int, cache_hits: int = 0) -> str:
        self.done[provider] = done
        self.requests[provider] = requests
        books = self.planned.get(provider, done)
        names = list(self.planned)
        lookups, planned = sum(self.done.values()), sum(self.planned.values())
        per_provider = ", ".join(f"{name} {n}" for name, n in self.requests.items())
        return (
            f"metadata: {provider} {done}/{books} books (provider {names.index(provider) + 1} of {len(names)}, "
            f"{cache_hits} from the cache); {lookups}/{planned} provider look-ups in all; "
            f"requests: {per_provider}; about {duration_text(self.seconds_left())} left"
        )

    def seconds_left(self) -> float:
        left = 0.0
        for name, books in self.planned.items():
            done = self.done.get(name, 0)
            if done >= books:
                continue
            if name == self.current and done:
                left += (books - done) * (self.clock() - self.current_started) / done
            else:
                left += (books - done) / self.rates.get(name, 1.0)
        return left
