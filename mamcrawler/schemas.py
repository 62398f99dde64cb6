"""Pandera schemas of every warehouse table, with their unique keys.

They run as blocking asset checks, so a table that breaks its contract stops the
assets downstream of it in the same run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandera.polars as pa
import polars as pl

from mamcrawler.account import STATUS_SCHEMA
from mamcrawler.acquisition import CANDIDATES_SCHEMA, IMPORTED_SCHEMA, REQUEST_SCHEMA, REQUEST_STATUSES
from mamcrawler.completeness import LINES
from mamcrawler.enrichment import CANDIDATE_SCHEMA, ENRICHED_SCHEMA, LEVELS
from mamcrawler.gaps import LIFECYCLE, MISSING_SCHEMA
from mamcrawler.library import BOOKS_SCHEMA, SNAPSHOT_SCHEMA

_KINDS = ["main", "novella", "prequel", "omnibus", "unknown"]


@dataclass(frozen=True)
class TableContract:
    table: str
    schema: pa.DataFrameSchema
    key: tuple[str, ...]


def _columns(dtypes: dict[str, pl.DataType], **overrides: pa.Column) -> dict[str, pa.Column]:
    return {name: overrides.get(name, pa.Column(dtype, nullable=True)) for name, dtype in dtypes.items()}


ABS_LIBRARY_ITEMS = TableContract(
    "abs_library_items",
    pa.DataFrameSchema(
        _columns(
            SNAPSHOT_SCHEMA,
            item_id=pa.Column(pl.Utf8, nullable=False),
            duration_s=pa.Column(pl.Float64, pa.Check.ge(0), nullable=False),
        ),
        strict=True,
    ),
    ("item_id",),
)

LIBRARY_BOOKS = TableContract(
    "library_books",
    pa.DataFrameSchema(
        _columns(
            BOOKS_SCHEMA,
            item_id=pa.Column(pl.Utf8, nullable=False),
            title=pa.Column(pl.Utf8, pa.Check.str_length(min_value=1), nullable=False),
            title_key=pa.Column(pl.Utf8, nullable=False),
            dedup_key=pa.Column(pl.Utf8, nullable=False),
            published_year=pa.Column(pl.Int32, pa.Check.in_range(0, 2200), nullable=True),
        ),
        strict=True,
    ),
    ("item_id",),
)

MISSING_BOOKS = TableContract(
    "missing_books",
    pa.DataFrameSchema(
        _columns(
            MISSING_SCHEMA,
            missing_id=pa.Column(pl.Utf8, nullable=False),
            position=pa.Column(pl.Float64, pa.Check.ge(0), nullable=True),
            line=pa.Column(pl.Utf8, pa.Check.isin(list(LINES)), nullable=False),
            reason=pa.Column(pl.Utf8, pa.Check.isin(["series_gap", "author_gap"]), nullable=False),
            priority=pa.Column(pl.Int64, pa.Check.ge(1), nullable=False),
            status=pa.Column(pl.Utf8, pa.Check.isin(list(LIFECYCLE)), nullable=False),
        ),
        strict=True,
    ),
    ("missing_id",),
)

BOOK_METADATA = TableContract(
    "book_metadata",
    pa.DataFrameSchema(
        _columns(
            CANDIDATE_SCHEMA,
            item_id=pa.Column(pl.Utf8, nullable=False),
            provider=pa.Column(pl.Utf8, nullable=False),
            rank=pa.Column(pl.Int64, pa.Check.ge(1), nullable=False),
            title=pa.Column(pl.Utf8, pa.Check.str_length(min_value=1), nullable=False),
            match_score=pa.Column(pl.Float64, pa.Check.in_range(0, 100), nullable=False),
            match_level=pa.Column(pl.Utf8, pa.Check.isin(list(LEVELS)), nullable=False),
            year=pa.Column(pl.Int32, pa.Check.in_range(1400, 2100), nullable=True),
            duration_s=pa.Column(pl.Float64, pa.Check.gt(0), nullable=True),
        ),
        strict=True,
    ),
    ("item_id", "provider", "rank"),
)

ENRICHED_BOOKS = TableContract(
    "enriched_books",
    pa.DataFrameSchema(
        _columns(
            ENRICHED_SCHEMA,
            item_id=pa.Column(pl.Utf8, nullable=False),
            field=pa.Column(pl.Utf8, nullable=False),
            value_json=pa.Column(pl.Utf8, nullable=False),
            confidence=pa.Column(pl.Utf8, pa.Check.isin(list(LEVELS)), nullable=False),
            book_confidence=pa.Column(pl.Utf8, pa.Check.isin(list(LEVELS)), nullable=False),
        ),
        strict=True,
    ),
    ("item_id", "field"),
)

DOWNLOAD_REQUESTS = TableContract(
    "download_requests",
    pa.DataFrameSchema(
        _columns(
            REQUEST_SCHEMA,
            missing_id=pa.Column(pl.Utf8, nullable=False),
            attempt=pa.Column(pl.Int64, pa.Check.ge(0), nullable=False),
            status=pa.Column(pl.Utf8, pa.Check.isin(list(REQUEST_STATUSES)), nullable=False),
            progress=pa.Column(pl.Float64, pa.Check.in_range(0, 1), nullable=True),
        ),
        strict=True,
    ),
    ("missing_id", "attempt"),
)

RELEASE_CANDIDATES = TableContract(
    "release_candidates",
    pa.DataFrameSchema(
        _columns(
            CANDIDATES_SCHEMA,
            missing_id=pa.Column(pl.Utf8, nullable=False),
            indexer=pa.Column(pl.Utf8, nullable=False),
            release_id=pa.Column(pl.Utf8, nullable=False),
            score=pa.Column(pl.Float64, pa.Check.in_range(0, 100), nullable=False),
            rank=pa.Column(pl.Int64, pa.Check.ge(1), nullable=False),
        ),
        strict=True,
    ),
    ("missing_id", "indexer", "release_id"),
)

IMPORTED_BOOKS = TableContract(
    "imported_books",
    pa.DataFrameSchema(
        _columns(
            IMPORTED_SCHEMA,
            missing_id=pa.Column(pl.Utf8, nullable=False),
            info_hash=pa.Column(pl.Utf8, pa.Check.str_matches(r"^[0-9a-f]{40}$"), nullable=False),
            abs_item_id=pa.Column(pl.Utf8, nullable=False),
            method=pa.Column(pl.Utf8, pa.Check.isin(["hardlink", "copy"]), nullable=False),
            files=pa.Column(pl.Int64, pa.Check.ge(1), nullable=False),
        ),
        strict=True,
    ),
    ("info_hash",),
)

_NOT_NEGATIVE = ("uploaded_bytes", "downloaded_bytes", "seedbonus", "wedges", "unsatisfied", "unsatisfied_limit", "hit_and_runs")

MAM_USER_STATUS = TableContract(
    "mam_user_status",
    pa.DataFrameSchema(
        _columns(
            STATUS_SCHEMA,
            checked_at=pa.Column(pl.Datetime("us", "UTC"), nullable=False),
            username=pa.Column(pl.Utf8, nullable=False),
            ratio=pa.Column(pl.Float64, pa.Check.ge(0), nullable=True),
            **{name: pa.Column(pl.Int64, pa.Check.ge(0), nullable=True) for name in _NOT_NEGATIVE},
        ),
        strict=True,
    ),
    ("checked_at",),
)

CONTRACTS = {
    c.table: c
    for c in (
        ABS_LIBRARY_ITEMS, LIBRARY_BOOKS, MISSING_BOOKS, BOOK_METADATA, ENRICHED_BOOKS, RELEASE_CANDIDATES,
        DOWNLOAD_REQUESTS, IMPORTED_BOOKS, MAM_USER_STATUS,
    )
}


@dataclass(frozen=True)
class Validation:
    passed: bool
    failures: pl.DataFrame | None
    duplicate_keys: int

    def summary(self) -> str:
        if self.passed:
            return "ok"
        parts = []
        if self.failures is not None and self.failures.height:
            parts.append(f"{self.failures.height} schema failures")
        if self.duplicate_keys:
            parts.append(f"{self.duplicate_keys} duplicate keys")
        return ", ".join(parts)


def validate(contract: TableContract, frame: pl.DataFrame) -> Validation:
    failures = None
    try:
        contract.schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        failures = exc.failure_cases
    except pa.errors.SchemaError as exc:
        failures = pl.DataFrame({"check": [str(exc)[:300]]})
    duplicates = frame.height - frame.select(contract.key).unique().height if frame.height else 0
    passed = (failures is None or failures.is_empty()) and duplicates == 0
    return Validation(passed, failures, duplicates)
