"""Lakehouse tables read without Spark or a JVM: a catalogue name (`gold.exchange_rfm`) resolves to its Delta location
through the manifest the jobs keep (marketlake.catalogue), delta-rs (the deltalake package) reads the table's current
snapshot as Arrow, and DuckDB queries it under the same name as Spark SQL does.

Nothing here imports pyspark: starting Python, DuckDB and delta-rs takes well under a second, a JVM tens of seconds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from marketlake.catalogue import Catalogue, CatalogueEntry, read_catalogue
from marketlake.config import load_settings
from marketlake.errors import InputError, first_line
from marketlake.location import Location

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

_LITERALS_AND_COMMENTS = re.compile(r"'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/", re.DOTALL)
_QUALIFIED = re.compile(r'(?<![\w."])"?(\w+)"?\."?(\w+)"?')  # name.name, either part maybe double-quoted


def open_catalogue(root: Location | Path | str | None = None, conf_env: str | None = None) -> Catalogue:
    """The manifest of the lakehouse at root, a local folder or a URI (default: the configured one,
    MARKETLAKE_LAKEHOUSE included)."""
    return read_catalogue(root if root is not None else load_settings(conf_env).lakehouse_root)


def open_delta(entry: CatalogueEntry) -> DeltaTable:
    """The Delta table behind a catalogue entry, at its latest version."""
    if entry.kind == "VIEW" or entry.provider != "delta":
        what = "a view" if entry.kind == "VIEW" else f"a {entry.provider or 'non-Delta'} table"
        raise InputError(f"{entry.name} is {what}; only Delta tables are readable without Spark (use --engine spark)")
    try:
        return DeltaTable(entry.location)
    except TableNotFoundError:
        raise InputError(
            f"{entry.name}: no Delta table at {entry.location}, where the catalogue manifest says it is; "
            f"run any job over this lakehouse to refresh the manifest"
        ) from None
    except DeltaError as exc:
        raise InputError(f"{entry.name} at {entry.location} is unreadable: {first_line(exc)}") from None


class DeltaScan:
    """A Delta table's snapshot as an Arrow C stream source (the PyCapsule interface) that DuckDB, pyarrow or Polars
    can read any number of times: each read is a fresh stream of delta-rs's own scan (DataFusion), which applies
    deletion vectors and column mapping and returns timestamps as UTC. Every read sees the version opened.

    Chosen over delta-rs's pyarrow dataset, which DuckDB could push projections into: importing pyarrow.dataset
    costs 0.4-0.7 s (it imports pandas), most of a one-second answer, and it refuses tables with deletion vectors
    or column mapping."""

    def __init__(self, table: DeltaTable) -> None:
        self.table = table

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self.table.scan().__arrow_c_stream__(requested_schema)


def read_table(name: str, catalogue: Catalogue | None = None) -> pa.Table:
    """One table by catalogue name as a pyarrow Table (timestamps as UTC): `.to_pandas()`, `polars.from_arrow()`."""
    import pyarrow as pa

    return pa.table(DeltaScan(open_delta((catalogue or open_catalogue()).resolve(name))))


def qualified_names(sql: str) -> set[tuple[str, str]]:
    """Every `name.name` pair a statement spells outside string literals and comments (lower case): the candidates
    for catalogue tables. A scan of the text, not a parse: DuckDB's get_table_names binds the statement against
    empty tables and fails on valid joins (USING, NATURAL), and its JSON AST covers SELECT only."""
    code = _LITERALS_AND_COMMENTS.sub(" ", sql)
    return {(a.lower(), b.lower()) for a, b in _QUALIFIED.findall(code)}


class LakeSQL:
    """A DuckDB connection over the catalogue. The catalogue's databases are DuckDB schemas, and a statement that
    names `gold.exchange_rfm` finds a view of that Delta table's Arrow data, created the first time a statement
    names it (opening a table reads its Delta log; a statement pays for the tables it reads, not for all of them).
    Timestamps come back in UTC."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.connection = duckdb.connect()
        self.connection.execute("SET TimeZone = 'UTC'")
        for database in catalogue.databases:
            self.connection.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(database)}")
        self._registered: set[str] = set()

    def __enter__(self) -> LakeSQL:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the DuckDB connection (left open at exit, its objects are reported as leaks on stderr)."""
        self.connection.close()

    def register(self, name: str) -> None:
        entry = self.catalogue.resolve(name)
        if entry.name in self._registered:
            return
        scan = f"__delta_{entry.database}__{entry.table}"
        self.connection.register(scan, DeltaScan(open_delta(entry)))
        self.connection.execute(
            f"CREATE VIEW {_quote(entry.database)}.{_quote(entry.table)} AS SELECT * FROM {_quote(scan)}"
        )
        self._registered.add(entry.name)

    def relation(self, sql: str) -> duckdb.DuckDBPyRelation | None:
        """The statement's result as a lazy DuckDB relation (None for a statement without one, e.g. CREATE VIEW),
        after registering the catalogue tables it names; a catalogue database's unknown table, or DuckDB's own
        parse, binder or catalog error, is one InputError line."""
        databases = set(self.catalogue.databases)
        for schema, table in sorted(qualified_names(sql)):
            if schema in databases:
                self.register(f"{schema}.{table}")
        try:
            return self.connection.sql(sql)
        except duckdb.Error as exc:
            raise InputError(first_line(exc)) from None

    def frame(self, sql: str) -> pd.DataFrame:
        """The statement's whole result as a pandas DataFrame (timestamps UTC-aware): what a notebook plots."""
        rel = self.relation(sql)
        if rel is None:
            raise InputError(f"the statement returns no rows to read: {sql.strip().splitlines()[0]}")
        try:
            return rel.df()
        except duckdb.Error as exc:
            raise InputError(first_line(exc)) from None

    def has(self, name: str) -> bool:
        """Whether the catalogue lists database.table (a table a job has not written yet is absent)."""
        return name.lower() in self.catalogue.entries

    def query(self, sql: str, limit: int) -> tuple[list[dict[str, object]], list[str], bool]:
        """Up to `limit` rows as dicts, the column names, and whether more rows exist (as report.collect_rows for
        Spark), with values as the Spark path prints them: timestamps as naive UTC datetimes."""
        rel = self.relation(sql)
        if rel is None:
            return [], [], False
        try:
            taken = rel.limit(limit + 1).fetchall()
        except duckdb.Error as exc:
            raise InputError(first_line(exc)) from None
        columns = list(rel.columns)
        rows = [{c: _as_spark_prints(v) for c, v in zip(columns, row, strict=True)} for row in taken[:limit]]
        return rows, columns, len(taken) > limit


def _as_spark_prints(value: Any) -> Any:
    """A DuckDB value as a Spark row holds it: a zoned timestamp as a naive UTC datetime (the job's process lives in
    UTC, so that is how Spark returns one), nested values likewise."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, list):
        return [_as_spark_prints(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_spark_prints(v) for k, v in value.items()}
    return value


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
