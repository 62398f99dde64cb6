"""The DuckDB warehouse: one file, short connections, atomic table swaps.

DuckDB lets one process hold a file for writing; a second writer fails at connect
time with a lock error. Connections here live for one call only and a writer that
finds the file locked waits with backoff, so concurrent runs queue instead of failing
(the `warehouse` Dagster pool keeps them from even trying in parallel).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl

REPO_ROOT = Path(__file__).resolve().parent.parent
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def default_warehouse_path() -> Path:
    """`MAMCRAWLER_WAREHOUSE`, else `data/warehouse.duckdb` in the project folder."""
    env = os.environ.get("MAMCRAWLER_WAREHOUSE")
    return Path(env).expanduser() if env else REPO_ROOT / "data" / "warehouse.duckdb"


class WarehouseError(Exception):
    """The warehouse could not be opened, read or written."""


class TableNotFound(WarehouseError):
    """A table that has never been materialised was asked for."""


class Warehouse:
    def __init__(self, path: str | Path, lock_timeout_s: float = 120.0) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if read_only and not self.path.exists():
            raise TableNotFound(f"the warehouse {self.path} does not exist yet: materialise the assets first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise WarehouseError(f"cannot open the warehouse {self.path}: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        try:
            yield con
        finally:
            con.close()

    def _transaction(
        self,
        name: str,
        frames: dict[str, pl.DataFrame],
        statements: list[tuple[str, list]],
        evolve: dict[str, str] | None = None,
    ) -> None:
        """Run `statements` over the registered `frames` in one transaction; roll back on failure.

        `evolve` (table -> frame alias): columns the frame has and the table lacks are added
        first (a table written by an older version keeps its rows; their new columns are null).
        """
        with self.connect() as con:
            try:
                for alias, frame in frames.items():
                    con.register(alias, frame.to_arrow())
                con.execute("BEGIN TRANSACTION")
                for table, alias in (evolve or {}).items():
                    if not self._exists(con, table):
                        continue
                    have = {r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()}
                    for column, column_type, *_ in con.execute(f"DESCRIBE {alias}").fetchall():
                        if column not in have:
                            _check_identifier(column)
                            con.execute(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {column_type}')
                for sql, params in statements:
                    con.execute(sql, params)
                con.execute("COMMIT")
            except Exception as exc:
                with contextlib.suppress(duckdb.Error):  # nothing to roll back if BEGIN never ran
                    con.execute("ROLLBACK")
                raise WarehouseError(f"writing table {name} failed, the previous version is kept: {exc}") from exc

    def write_table(self, name: str, frame: pl.DataFrame) -> int:
        """Replace `name` with `frame` in one transaction; on failure the old table stays."""
        _check_identifier(name)
        self._transaction(name, {"_incoming": frame}, [(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM _incoming', [])])
        return frame.height

    def write_tables(self, frames: dict[str, pl.DataFrame]) -> None:
        """Replace several tables in one transaction: readers see all of them new or none."""
        for name in frames:
            _check_identifier(name)
        aliases = {f"_incoming_{i}": frame for i, frame in enumerate(frames.values())}
        statements = [
            (f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM {alias}', [])
            for name, alias in zip(frames, aliases)
        ]
        self._transaction(", ".join(frames), aliases, statements)

    def upsert(
        self, name: str, frame: pl.DataFrame, key: tuple[str, ...], expire_before: tuple[str, object] | None = None
    ) -> int:
        """Insert or replace rows by `key`; optionally drop rows older than a time."""
        _check_identifier(name)
        for column in (*key, *(expire_before[:1] if expire_before else ())):
            _check_identifier(column)
        match = " AND ".join(f't."{k}" = i."{k}"' for k in key)
        statements = [
            (f'CREATE TABLE IF NOT EXISTS "{name}" AS SELECT * FROM _incoming LIMIT 0', []),
            (f'DELETE FROM "{name}" t USING _incoming i WHERE {match}', []),
        ]
        if expire_before:
            statements.append((f'DELETE FROM "{name}" WHERE "{expire_before[0]}" < ?', [expire_before[1]]))
        statements.append((f'INSERT INTO "{name}" BY NAME SELECT * FROM _incoming', []))
        self._transaction(name, {"_incoming": frame}, statements, evolve={name: "_incoming"})
        return frame.height

    def replace_rows(self, name: str, frame: pl.DataFrame, keys: pl.DataFrame) -> int:
        """Delete the rows matching any row of `keys` (on its columns), insert `frame`.

        This is how per-item state is kept: re-enriching a book replaces its rows only.
        """
        _check_identifier(name)
        for column in keys.columns:
            _check_identifier(column)
        match = " AND ".join(f't."{c}" = k."{c}"' for c in keys.columns)
        self._transaction(
            name,
            {"_incoming": frame, "_keys": keys},
            [
                (f'CREATE TABLE IF NOT EXISTS "{name}" AS SELECT * FROM _incoming LIMIT 0', []),
                (f'DELETE FROM "{name}" t USING _keys k WHERE {match}', []),
                (f'INSERT INTO "{name}" BY NAME SELECT * FROM _incoming', []),
            ],
            evolve={name: "_incoming"},
        )
        return frame.height

    def apply(
        self,
        upserts: list[tuple[str, pl.DataFrame, tuple[str, ...]]] = (),
        statuses: tuple[str, pl.DataFrame] | None = None,
    ) -> None:
        """Several changes in one transaction: insert-or-replace rows by key in each named
        table, and set `status`/`updated_at` of the rows `statuses` names by their key
        (`(table, frame of key + status + updated_at)`). All of it lands, or none of it."""
        frames: dict[str, pl.DataFrame] = {}
        statements: list[tuple[str, list]] = []
        evolve: dict[str, str] = {}
        for i, (name, frame, key) in enumerate(upserts):
            _check_identifier(name)
            for column in key:
                _check_identifier(column)
            alias = f"_upsert_{i}"
            frames[alias] = frame
            evolve[name] = alias
            match = " AND ".join(f't."{k}" = i."{k}"' for k in key)
            statements += [
                (f'CREATE TABLE IF NOT EXISTS "{name}" AS SELECT * FROM {alias} LIMIT 0', []),
                (f'DELETE FROM "{name}" t USING {alias} i WHERE {match}', []),
                (f'INSERT INTO "{name}" BY NAME SELECT * FROM {alias}', []),
            ]
        if statuses is not None and not statuses[1].is_empty():
            name, frame = statuses
            _check_identifier(name)
            key = [c for c in frame.columns if c not in ("status", "updated_at")]
            for column in key:
                _check_identifier(column)
            frames["_statuses"] = frame
            match = " AND ".join(f't."{k}" = s."{k}"' for k in key)
            statements.append(
                (f'UPDATE "{name}" t SET status = s.status, updated_at = s.updated_at FROM _statuses s WHERE {match}', [])
            )
        if statements:
            self._transaction(", ".join(n for n, *_ in upserts) or "statuses", frames, statements, evolve=evolve)

    def read_table(self, name: str, columns: list[str] | None = None) -> pl.DataFrame:
        _check_identifier(name)
        cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        with self.connect(read_only=True) as con:
            if not self._exists(con, name):
                raise TableNotFound(f"table {name} has not been materialised yet")
            return _frame(con.sql(f'SELECT {cols} FROM "{name}"'))

    def read_optional(self, name: str) -> pl.DataFrame | None:
        try:
            return self.read_table(name)
        except TableNotFound:
            return None

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame:
        with self.connect(read_only=True) as con:
            return _frame(con.sql(sql, params=params or None))

    def has_table(self, name: str) -> bool:
        if not self.path.exists():
            return False
        with self.connect(read_only=True) as con:
            return self._exists(con, name)

    @staticmethod
    def _exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
        found = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'", [name]
        ).fetchall()
        return bool(found[0][0])


def _frame(relation: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    frame = pl.from_arrow(relation.to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    # DuckDB hands UTC timestamps back as "Etc/UTC"; keep the zone the tables were written with.
    return frame.with_columns(
        pl.col(n).dt.convert_time_zone("UTC") for n, t in frame.schema.items() if isinstance(t, pl.Datetime) and t.time_zone
    )


def _check_identifier(name: str) -> None:
    if not _IDENTIFIER.match(name):
        raise WarehouseError(f"not a valid table name: {name!r}")
