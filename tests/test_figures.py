"""The figures a person reads: each level counted, corrections counted once, progress with time left."""

from datetime import UTC, datetime, timedelta

import polars as pl

from mamcrawler.figures import (
    EnrichmentProgress,
    correction_figures,
    duration_text,
    level_counts,
    levels_line,
    missing_figures,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_every_level_is_counted_best_first():
    counts = level_counts(["UNMATCHED", "HIGH", None, "UNMATCHED"])
    assert counts == {"HIGH": 1, "MEDIUM": 0, "LOW": 0, "UNMATCHED": 3}
    assert levels_line(counts) == "4 books: 1 HIGH, 0 MEDIUM, 0 LOW, 3 UNMATCHED"


def _corrections(rows):
    schema = {"item_id": pl.Utf8, "field": pl.Utf8, "new": pl.Utf8, "mode": pl.Utf8, "corrected_at": pl.Datetime("us", "UTC")}
    return pl.DataFrame(rows, schema=schema, orient="row")


def test_a_correction_recorded_again_is_not_counted_again():
    first = [("a", "title", "X", "dry_run", T0), ("a", "year", "1999", "dry_run", T0), ("b", "title", "Y", "dry_run", T0)]
    again = [(i, f, n, m, T0 + timedelta(hours=1)) for i, f, n, m, _ in first]
    figures = correction_figures(_corrections(first + again), run_started=T0 + timedelta(minutes=30))
    assert figures.by_mode == {"dry_run": 3} and figures.books == 2 and figures.new == 0
    assert figures.line() == (
        "Corrections: 3 corrections for 2 books: 3 pending (dry run); 0 new in this run, "
        "the others unchanged since 2026-01-01 12:00 UTC"
    )
    # A value that changed is a new correction; a correction applied later counts as applied.
    later = [("a", "title", "X2", "dry_run", T0 + timedelta(hours=2)), ("b", "title", "Y", "applied", T0 + timedelta(hours=2))]
    figures = correction_figures(_corrections(first + again + later), run_started=T0 + timedelta(hours=2))
    assert figures.by_mode == {"applied": 1, "dry_run": 3} and figures.new == 1


def test_missing_figures_say_what_was_checked_against_what():
    missing = pl.DataFrame({"reason": ["series_gap", "series_gap", "author_gap"], "title": ["A", None, "C"]})
    series = pl.DataFrame({"sources": [["library"], ["audible", "library"], ["hardcover"]]})
    figures = missing_figures(missing, series, upcoming=1)
    assert (figures.books, figures.series_gaps, figures.author_gaps, figures.titled) == (3, 2, 1, 2)
    assert (figures.series, figures.series_with_catalogue) == (3, 2)
    assert "3 missing books (2 in owned series, 1 by followed authors; 2 with a title), 1 upcoming book" in figures.line()
    assert "1 against the library alone (only the holes below the highest owned book" in figures.line()


def test_progress_estimates_the_time_left_from_the_pace():
    now = [0.0]
    progress = EnrichmentProgress([("audible", 100, 2.0), ("hardcover", 100, 1.0)], clock=lambda: now[0])
    progress.start("audible", 100)
    now[0] = 10.0
    line = progress.update("audible", 20, requests=20)
    # audible: 80 books left at the observed 0.5 s per book = 40 s; hardcover: 100 at 1/s = 100 s
    assert progress.seconds_left() == 140
    assert line.startswith("metadata: audible 20/100 books (provider 1 of 2, 0 from the cache); 20/200 provider look-ups")
    assert "requests: audible 20" in line and line.endswith("about 2 min left")
    assert duration_text(3 * 3600 + 5 * 60) == "3 h 05 min" and duration_text(45) == "45 s"
