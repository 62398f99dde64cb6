"""The messages MAMcrawler sends when something needs a person: a failed run, books imported,
asset checks that failed. Plain text, short enough for a phone's lock screen (ntfy, Telegram,
Discord all take these), so a list is cut after a few lines and says how many it left out.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LINES = 10  # lines of a list shown; the rest is counted
MAX_LINE = 200  # characters of one line (an error, a title)
# The metadata entry of an `imported_books` materialisation listing the titles that run imported.
IMPORTED_TITLES = "books_imported_this_run"


@dataclass(frozen=True)
class Message:
    title: str
    body: str


@dataclass(frozen=True)
class FailedCheck:
    asset: str
    check: str
    description: str | None = None
    severity: str | None = None  # Dagster's WARN or ERROR


def first_line(text: str | None, limit: int = MAX_LINE) -> str:
    """The first non-empty line, cut to `limit` characters: a traceback's rest is in the UI."""
    for line in (text or "").splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def _listed(lines: list[str], noun: str) -> str:
    """At most MAX_LINES lines, then how many `noun`s were left out."""
    shown = lines[:MAX_LINES]
    rest = len(lines) - len(shown)
    return "\n".join([*shown, *([f"… and {rest} more {noun}"] if rest else [])])


def run_failed(job: str, failures: list[tuple[str, str]], run_id: str, run_message: str | None = None) -> Message:
    """A failed run: its job, each failed step with the first line of its error (or the run's own
    failure message when no step failed, e.g. a run that could not start)."""
    lines = [f"{step}: {first_line(error) or 'failed'}" for step, error in failures]
    if not lines:
        lines = [first_line(run_message) or "the run failed before any step ran"]
    steps = f"{len(failures)} step{'s' if len(failures) != 1 else ''} failed" if failures else "no step failed"
    body = f"{steps} in run {run_id[:8]}\n" + _listed(lines, "failed steps")
    return Message(title=f"MAMcrawler: {job} failed", body=body)


def books_imported(titles: list[str], run_id: str) -> Message | None:
    """The books one run put into ABS; None when it imported none (nothing to say)."""
    if not titles:
        return None
    count = f"{len(titles)} book{'s' if len(titles) != 1 else ''}"
    body = _listed([f"- {first_line(t)}" for t in titles], "books") + f"\n(run {run_id[:8]})"
    return Message(title=f"MAMcrawler: {count} imported into Audiobookshelf", body=body)


def checks_failed(checks: list[FailedCheck], job: str, run_id: str) -> Message | None:
    """The asset checks of one run that did not pass; None when all passed."""
    if not checks:
        return None
    lines = [
        f"{c.asset} › {c.check}" + (f" ({c.severity})" if c.severity else "") + (f": {first_line(c.description)}" if first_line(c.description) else "")
        for c in checks
    ]
    count = f"{len(checks)} check{'s' if len(checks) != 1 else ''}"
    return Message(title=f"MAMcrawler: {count} failed in {job}", body=_listed(lines, "failed checks") + f"\n(run {run_id[:8]})")
