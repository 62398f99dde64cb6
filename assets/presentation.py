"""Materialisation metadata a person can read in the UI: counts, previews, the profile."""


from collections.abc import Mapping
from typing import Any

import polars as pl
from dagster import MetadataValue, TableColumn, TableSchema

from mamcrawler.columns import COLUMN_DOCS
from resources.profile import ProfileResource

_CELL = 60


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = ", ".join(_cell(v) for v in value)
    elif isinstance(value, dict):
        value = " ".join(f"{v}" for v in value.values() if v is not None)
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= _CELL else text[: _CELL - 1] + "…"


def markdown_table(frame: pl.DataFrame, limit: int = 10) -> str:
    if frame.is_empty():
        return "_no rows_"
    head = frame.head(limit)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in head.iter_rows()]
    if frame.height > limit:
        lines.append(f"\n_{frame.height - limit} more rows_")
    return "\n".join(lines)


def counts_table(counts: Mapping[str, int], key: str = "reason", unit: str = "count", keep_order: bool = False) -> str:
    """A count per key, largest first (or in the given order, e.g. levels best first); `unit`
    heads the number column ("books", "fields")."""
    if not counts:
        return "_none_"
    rows = list(counts.items()) if keep_order else sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return "\n".join([f"| {key} | {unit} |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


def table_metadata(
    frame: pl.DataFrame, profile: ProfileResource, preview_columns: list[str] | None = None
) -> dict[str, Any]:
    preview = frame.select(preview_columns) if preview_columns else frame
    return {
        "dagster/row_count": frame.height,
        "dagster/column_schema": TableSchema(
            columns=[TableColumn(n, str(t), description=COLUMN_DOCS.get(n)) for n, t in frame.schema.items()]
        ),
        "preview": MetadataValue.md(markdown_table(preview)),
        "profile": profile.name + (" (bundled sample library, nothing is sent anywhere)" if profile.is_demo else ""),
    }


def completeness_bars(series: pl.DataFrame, limit: int = 30) -> str:
    """A bar per series, in the order of the series table it pictures."""
    if series.is_empty():
        return "_no series_"
    lines = ["| series | owned | |", "|---|---|---|"]
    for row in series.head(limit).iter_rows(named=True):
        total = max(row["total"], 1)
        filled = round(20 * min(row["owned"], total) / total)
        lines.append(f"| {_cell(row['series'])} | {row['owned']}/{row['total']} | `{'█' * filled}{'░' * (20 - filled)}` |")
    return "\n".join(lines)


def lines_md(lines: list[str], limit: int = 50) -> MetadataValue:
    """Errors or notes as a markdown list (the first `limit`)."""
    shown = "\n".join(f"- {line}" for line in lines[:limit]) or "_none_"
    return MetadataValue.md(shown + (f"\n\n_{len(lines) - limit} more_" if len(lines) > limit else ""))


def choices_md(choices: Mapping[str, str], labels: Mapping[str, str], priority: Mapping[str, int], limit: int = 50) -> str:
    """The choice per searched book, most urgent book first; the books with no release at
    all are one line, not one each."""
    if not choices:
        return "_no book searched_"
    order = sorted(choices, key=lambda m: (priority.get(m) is None, priority.get(m), labels.get(m, m)))
    none = [m for m in order if choices[m] == "no release found"]
    lines = [f"- **{labels.get(m, m)}**: {choices[m]}" for m in order if choices[m] != "no release found"]
    shown = "\n".join(lines[:limit]) + (f"\n\n_{len(lines) - limit} more_" if len(lines) > limit else "")
    if none:
        names = ", ".join(labels.get(m, m) for m in none[:10]) + (", …" if len(none) > 10 else "")
        shown += f"\n- **{len(none)} books**: no release found ({names})"
    return shown.strip("\n")
