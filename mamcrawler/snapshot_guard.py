"""Absence is never evidence: a library snapshot that loses books wholesale is suspect.

An empty answer, a library that vanished or a sharp shrink is far more often a wrong API key,
an ABS still scanning or a broken mount than books the user deleted; replacing the previous
tables with it would make every owned book look missing and cancel downloads. Such a snapshot
is refused unless the user accepts it explicitly.
"""

from __future__ import annotations

import polars as pl

SNAPSHOT_COUNTS_SQL = "SELECT library_id, count(*) AS n FROM abs_library_items GROUP BY 1"

DEFAULT_MAX_SHRINK = 0.2  # the fraction of the previous snapshot a new one may lose


class SuspectSnapshot(Exception):
    """The new snapshot would lose too much of the previous one; the previous tables stay."""


def suspect_reason(previous: dict[str | None, int], fresh: pl.DataFrame, libraries: list[str], max_shrink: float) -> str | None:
    """Why the snapshot `fresh` must not replace the previous one, or None when it may.

    `previous` is the previous snapshot's item count per library id (empty on a first run);
    `libraries` are the ids of the libraries read this time (empty when ABS listed none).
    """
    if not libraries:
        return "ABS lists no book library for this API key (wrong key or user, or ABS not set up yet)"
    before, after = sum(previous.values()), fresh.height
    if before == 0:
        return None
    if after == 0:
        return f"ABS answered with no items at all, where the previous snapshot had {before}"
    lost = sorted(lib for lib, n in previous.items() if lib is not None and n and lib not in set(libraries))
    if lost:
        return f"the previous snapshot's libraries {', '.join(lost)} are no longer read ({before} -> {after} items)"
    shrink = (before - after) / before
    if shrink > max_shrink:
        return (
            f"the library shrank from {before} to {after} items ({shrink:.0%}, more than the allowed "
            f"{max_shrink:.0%}: MAMCRAWLER_MAX_SHRINK)"
        )
    return None


def refuse_message(reason: str) -> str:
    return (
        f"Suspect library snapshot: {reason}. The previous tables are kept and nothing downstream changes. "
        "If the books really are gone, run `mamcrawler run --accept-shrink` (or the job with "
        "`ops.abs_library_items.config.accept_shrink: true`)."
    )
