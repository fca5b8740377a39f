"""Table upkeep: compact small files (OPTIMIZE, Z-ordered by the columns queries filter by) and delete the files no
recent version needs (VACUUM), with what each table held before and after.

A partition is rewritten only when it holds two or more small files (Delta's own rule for compaction), so a second
run finds nothing to do and commits nothing: Z-ordering on its own would rewrite every partition every time, and
VACUUM logs two commits even when it deletes nothing, so each runs only when it has work. Tables are addressed by
path, never through the metastore. Meant to run while nothing writes to the tables.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, StructType

from marketlake import fs
from marketlake.config import Settings
from marketlake.errors import ConfigError, InputError
from marketlake.tables import current_version, is_delta_table, read_delta

log = logging.getLogger(__name__)

DELTA_DEFAULT_RETENTION_HOURS = 168.0  # delta.deletedFileRetentionDuration's default, and VACUUM's safety minimum
RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
MIN_FILE_SIZE = "spark.databricks.delta.optimize.minFileSize"  # files below it are what OPTIMIZE compacts
DEFAULT_MIN_FILE_SIZE = 1024**3
_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


# ---- configuration -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MaintenanceConf:
    """The `maintenance:` section of conf/base.yaml (+ conf/<env>.yaml)."""

    retention_hours: float = DELTA_DEFAULT_RETENTION_HOURS
    zorder: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def parse_maintenance(raw: Mapping[str, Any]) -> MaintenanceConf:
    """Validate the maintenance section; a wrong value is a ConfigError naming the key."""
    hours = raw.get("retention_hours", DELTA_DEFAULT_RETENTION_HOURS)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or hours < 0:
        raise ConfigError(f"maintenance.retention_hours must be a number of hours >= 0, not {hours!r}")
    zorder = raw.get("zorder") or {}
    if not isinstance(zorder, Mapping) or not all(
        isinstance(cols, list | tuple) and all(isinstance(c, str) for c in cols) for cols in zorder.values()
    ):
        raise ConfigError("maintenance.zorder must map table names to lists of column names")
    return MaintenanceConf(float(hours), {str(t): tuple(cols) for t, cols in zorder.items()})


def read_maintenance(settings: Settings) -> MaintenanceConf:
    """The maintenance section of conf/base.yaml with conf/<env>.yaml merged over it, as load_settings merged it."""
    section = settings.maintenance
    if not isinstance(section, Mapping):
        raise ConfigError("maintenance in conf/base.yaml must be a mapping")
    return parse_maintenance(section)


def check_retention(hours: float) -> float:
    if hours < 0:
        raise InputError(f"--retention-hours must be >= 0, not {hours:g}")
    return hours


@contextmanager
def retention_check_disabled(spark: SparkSession, disabled: bool = True) -> Iterator[None]:
    """Within the block, VACUUM accepts a retention below the tables' deletedFileRetentionDuration (Delta refuses it
    otherwise); the session's previous setting is restored afterwards."""
    if not disabled:
        yield
        return
    previous = spark.conf.get(RETENTION_CHECK, None)
    spark.conf.set(RETENTION_CHECK, "false")
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(RETENTION_CHECK)
        else:
            spark.conf.set(RETENTION_CHECK, previous)


# ---- finding tables ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TableRef:
    layer: str
    name: str
    path: str

    @property
    def qualified(self) -> str:
        return f"{self.layer}.{self.name}"


def find_tables(spark: SparkSession, locations: Mapping[str, str]) -> list[TableRef]:
    """The Delta tables directly under each layer's location (layer -> directory), by name."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    found = []
    for layer, location in locations.items():
        if not fs.is_dir(spark, location):
            continue
        root = jvm.org.apache.hadoop.fs.Path(location)
        filesystem = root.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        for status in filesystem.listStatus(root):
            name = str(status.getPath().getName())
            path = str(status.getPath().toString())
            if status.isDirectory() and not name.startswith(("_", ".")) and is_delta_table(spark, path):
                found.append(TableRef(layer, name, path))
    return sorted(found, key=lambda t: (t.layer, t.name))


def select_tables(found: Sequence[TableRef], wanted: Sequence[str]) -> list[TableRef]:
    """The tables named (`name` or `layer.name`); every name must match a table found, else an InputError."""
    if not wanted:
        return list(found)
    unknown = [w for w in wanted if not any(w in (t.name, t.qualified) for t in found)]
    if unknown:
        known = ", ".join(t.qualified for t in found) or "none"
        raise InputError(f"no Delta table named {', '.join(unknown)} in the layers chosen; found: {known}")
    return [t for t in found if t.name in wanted or t.qualified in wanted]


# ---- what a table holds ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TableState:
    """DESCRIBE DETAIL of a table (live files only) and its latest version."""

    num_files: int
    size_bytes: int
    version: int
    partition_columns: tuple[str, ...] = ()
    clustering_columns: tuple[str, ...] = ()
    properties: Mapping[str, str] = field(default_factory=dict)


def table_state(spark: SparkSession, path: str) -> TableState:
    detail = DeltaTable.forPath(spark, path).detail().first()
    assert detail is not None
    row = detail.asDict()
    return TableState(
        num_files=int(row["numFiles"] or 0),
        size_bytes=int(row["sizeInBytes"] or 0),
        version=current_version(spark, path),
        partition_columns=tuple(row.get("partitionColumns") or ()),
        clustering_columns=tuple(row.get("clusteringColumns") or ()),
        properties=dict(row.get("properties") or {}),
    )


Partition = tuple[tuple[str, str | None], ...]  # ((column, value or None for null), ...); () when unpartitioned


@dataclass(frozen=True)
class LiveFile:
    partition: Partition
    size: int


def live_files(spark: SparkSession, path: str, partition_columns: Sequence[str]) -> list[LiveFile] | None:
    """The files of the table's current version with their partition and size, from the snapshot's file list and
    one listing of the table's directory; None when a file does not sit in Hive-style partition folders (a layout
    such as random file prefixes, where this cannot tell partitions apart)."""
    root = fs.qualify(spark, path).rstrip("/") + "/"
    sizes = {f.path: f.size for f in fs.list_files(spark, path)}
    files = []
    for file in spark.read.format("delta").load(path).inputFiles():
        relative = file[len(root) :] if file.startswith(root) else None
        folders = relative.split("/")[:-1] if relative else None
        if folders is None or len(folders) != len(partition_columns):
            return None
        values: list[tuple[str, str | None]] = []
        for column, folder in zip(partition_columns, folders, strict=True):
            name, _, value = folder.partition("=")
            if unquote(name) != column:
                return None
            value = unquote(value)
            values.append((column, None if value == _NULL_PARTITION else value))
        files.append(LiveFile(tuple(values), sizes.get(file, 0)))
    return files


# ---- planning ----------------------------------------------------------------------------------------------------
def _leaves(data_type: DataType) -> int:
    return sum(_leaves(f.dataType) for f in data_type.fields) if isinstance(data_type, StructType) else 1


def stats_columns(schema: StructType, partition_columns: Sequence[str], properties: Mapping[str, str]) -> set[str]:
    """Top-level columns Delta keeps min/max statistics for (Z-order needs them): those listed in
    delta.dataSkippingStatsColumns, else the first delta.dataSkippingNumIndexedCols (32) leaf columns."""
    listed = properties.get("delta.dataSkippingStatsColumns")
    if listed:
        return {c.strip().split(".")[0].strip("`").lower() for c in listed.split(",")}
    limit = int(properties.get("delta.dataSkippingNumIndexedCols", "32"))
    leaves: list[str] = []
    for f in schema.fields:
        if f.name not in partition_columns:
            leaves += [f.name.lower()] * _leaves(f.dataType)
    return set(leaves if limit < 0 else leaves[:limit])


def zorder_columns(
    schema: StructType, state: TableState, requested: Sequence[str], table: str
) -> tuple[tuple[str, ...], list[str]]:
    """The requested Z-order columns this table can use, and a warning for each one it cannot (missing, a partition
    column, without statistics, or the table is liquid-clustered and orders itself)."""
    if not requested:
        return (), []
    if state.clustering_columns:
        log.info("%s: clustered by %s; OPTIMIZE clusters by those", table, ", ".join(state.clustering_columns))
        return (), []
    names = {f.name.lower(): f.name for f in schema.fields}
    partitions = {c.lower() for c in state.partition_columns}
    with_stats = stats_columns(schema, state.partition_columns, state.properties)
    usable, warnings = [], []
    for col in requested:
        if col.lower() not in names:
            warnings.append(f"{table}: no column {col}; not Z-ordered by it")
        elif col.lower() in partitions:
            warnings.append(f"{table}: {col} is a partition column; not Z-ordered by it")
        elif col.lower() not in with_stats:
            warnings.append(f"{table}: Delta keeps no statistics for {col}; not Z-ordered by it")
        else:
            usable.append(names[col.lower()])
    return tuple(usable), warnings


@dataclass(frozen=True)
class CompactionPlan:
    """The partitions OPTIMIZE will rewrite (those with two or more small files) and how."""

    zorder_by: tuple[str, ...]
    clustered: bool
    partitions: tuple[Partition, ...]
    files: int  # files in those partitions that OPTIMIZE takes as input
    every_partition: bool  # no partition filter needed

    @property
    def needed(self) -> bool:
        return bool(self.partitions)

    @property
    def mode(self) -> str:
        if self.clustered:
            return "clustering"
        return f"zorder({','.join(self.zorder_by)})" if self.zorder_by else "compaction"

    def predicate(self) -> str | None:
        """A partition filter for OPTIMIZE naming exactly the partitions to rewrite (None: all of them)."""
        if self.every_partition or not self.partitions or not self.partitions[0]:
            return None
        return " OR ".join(
            "(" + " AND ".join(_equals(col, value) for col, value in partition) + ")" for partition in self.partitions
        )


def _equals(column: str, value: str | None) -> str:
    name = "`" + column.replace("`", "``") + "`"
    if value is None:
        return f"{name} IS NULL"
    return f"{name} = '" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def plan_compaction(
    files: Sequence[LiveFile], zorder_by: Sequence[str], clustered: bool, small_file_bytes: int
) -> CompactionPlan:
    """Rewrite a partition (the whole table when unpartitioned or clustered) that holds two or more files smaller
    than small_file_bytes. Z-order takes every file of such a partition as input, compaction only the small ones."""
    by_partition: dict[Partition, list[int]] = {}
    for f in files:
        by_partition.setdefault(f.partition, []).append(f.size)
    chosen = sorted(
        (p for p, sizes in by_partition.items() if sum(s < small_file_bytes for s in sizes) >= 2),
        key=lambda p: [(v is None, v or "") for _, v in p],
    )
    inputs = sum(
        len(by_partition[p]) if zorder_by else sum(s < small_file_bytes for s in by_partition[p]) for p in chosen
    )
    return CompactionPlan(tuple(zorder_by), clustered, tuple(chosen), inputs, len(chosen) == len(by_partition))


def compact(spark: SparkSession, path: str, plan: CompactionPlan) -> None:
    builder = DeltaTable.forPath(spark, path).optimize()
    predicate = plan.predicate()
    if predicate:
        builder = builder.where(predicate)
    if plan.zorder_by:
        builder.executeZOrderBy(*plan.zorder_by)
    else:
        builder.executeCompaction()  # clusters a liquid-clustered table


# ---- vacuum ------------------------------------------------------------------------------------------------------
def _sql_path(path: str) -> str:
    return "delta.`" + path.replace("`", "``") + "`"


_INTERVAL_HOURS = {"week": 168.0, "day": 24.0, "hour": 1.0, "minute": 1 / 60, "second": 1 / 3600}


def table_retention_hours(properties: Mapping[str, str]) -> float | None:
    """A table's own delta.deletedFileRetentionDuration ("interval 30 days") in hours; None when it sets none (or in
    a form not understood, which Delta then judges itself)."""
    value = properties.get("delta.deletedFileRetentionDuration")
    match = re.fullmatch(r"\s*(?:interval\s+)?(\d+(?:\.\d+)?)\s+(week|day|hour|minute|second)s?\s*", value or "", re.I)
    return float(match.group(1)) * _INTERVAL_HOURS[match.group(2).lower()] if match else None


def vacuum_candidates(spark: SparkSession, path: str, retention_hours: float) -> list[str]:
    """The files VACUUM with this retention would delete (VACUUM ... DRY RUN: deletes nothing)."""
    hours = f"{retention_hours:.6f}".rstrip("0").rstrip(".")  # a plain decimal, never 1e+06
    sql = f"VACUUM {_sql_path(path)} RETAIN {hours} HOURS DRY RUN"
    return [str(r[0]) for r in spark.sql(sql).collect()]


def change_feed_readers(spark: SparkSession, watermarks_path: str) -> dict[str, int]:
    """Bronze table -> the lowest version silver has read its change feed up to (ops.silver_watermarks, by path)."""
    if not is_delta_table(spark, watermarks_path):
        return {}
    rows = read_delta(spark, watermarks_path).groupBy("bronze_table").agg(F.min("version")).collect()
    return {str(r[0]): int(r[1]) for r in rows}


def vacuum_hold(spark: SparkSession, path: str, read_up_to: int | None, retention_hours: float) -> str | None:
    """Why VACUUM must wait (None: it need not): a reader of the table's change feed (silver) has read only up to
    version `read_up_to`, and a later commit that removed files (an OPTIMIZE, a RESTORE) is older than the
    retention, so VACUUM would delete files that the reader's next incremental read still needs."""
    if read_up_to is None:
        return None
    cutoff = datetime.now(UTC) - timedelta(hours=retention_hours)
    metrics = F.col("operationMetrics")
    removed = F.coalesce(metrics["numRemovedFiles"], metrics["numTargetFilesRemoved"], F.lit("0")).cast("long")
    blocking = (
        DeltaTable.forPath(spark, path)
        .history()
        .where((F.col("version") > read_up_to) & (F.col("timestamp") < F.lit(cutoff)) & (removed > 0))
        .orderBy("version")
        .first()
    )
    if blocking is None:
        return None
    return (
        f"its change feed is read only up to version {read_up_to} and {blocking['operation']} at version "
        f"{blocking['version']} removed files since, older than the retention: run jobs/silver_build.py first"
    )


@dataclass(frozen=True)
class VacuumResult:
    files: int  # files VACUUM deleted (or, in a dry run, would delete)
    vacuumed: bool
    held: str | None  # why VACUUM waits for a change-feed reader (None: it need not)


def vacuum_table(
    spark: SparkSession,
    ref: TableRef,
    properties: Mapping[str, str],
    retention_hours: float,
    change_feed_read_up_to: int | None = None,
    dry_run: bool = False,
) -> VacuumResult:
    """VACUUM one table when it has files older than the retention (the table's own deletedFileRetentionDuration
    when longer) and no change-feed reader still needs them; VACUUM commits even when it deletes nothing, so a table
    with nothing to delete gets no commit. A retention below the table's deletedFileRetentionDuration needs
    vacuum_retention (or retention_check_disabled) around the call."""
    own = table_retention_hours(properties)
    if own is not None and own > retention_hours:
        log.info("%s: keeps its own deletedFileRetentionDuration of %g h", ref.qualified, own)
        retention_hours = own
    candidates = vacuum_candidates(spark, ref.path, retention_hours)
    held = vacuum_hold(spark, ref.path, change_feed_read_up_to, retention_hours) if candidates else None
    if held:
        log.warning("%s: VACUUM held back (%d files kept): %s", ref.qualified, len(candidates), held)
    vacuumed = bool(candidates) and not held and not dry_run
    if vacuumed:
        log.info("%s: VACUUM of %d files older than %g h", ref.qualified, len(candidates), retention_hours)
        DeltaTable.forPath(spark, ref.path).vacuum(retention_hours)
    return VacuumResult(len(candidates), vacuumed, held)


@contextmanager
def vacuum_retention(spark: SparkSession, retention_hours: float) -> Iterator[None]:
    """Within the block VACUUM may retain only `retention_hours`: below Delta's safety minimum the session's check
    is turned off for the block, with a warning saying what that costs."""
    below_minimum = retention_hours < DELTA_DEFAULT_RETENTION_HOURS
    if below_minimum:
        log.warning(
            "retention %g h is below Delta's %g h safety minimum: %s=false for this run; versions older than %g h "
            "lose time travel, and a job writing meanwhile could lose files",
            retention_hours,
            DELTA_DEFAULT_RETENTION_HOURS,
            RETENTION_CHECK,
            retention_hours,
        )
    with retention_check_disabled(spark, below_minimum):
        yield


# ---- one table ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TableResult:
    table: str
    before: TableState
    after: TableState
    plan: CompactionPlan | None  # None: the file layout could not be read, nothing compacted
    compacted: bool
    vacuum_files: int  # files VACUUM deleted (or, in a dry run, would delete)
    vacuumed: bool
    vacuum_held: str | None
    seconds: float
    warnings: tuple[str, ...] = ()

    @property
    def versions_written(self) -> int:
        return self.after.version - self.before.version


def small_file_bytes(spark: SparkSession) -> int:
    """Delta's own threshold below which OPTIMIZE treats a file as small."""
    return int(spark.conf.get(MIN_FILE_SIZE, str(DEFAULT_MIN_FILE_SIZE)) or DEFAULT_MIN_FILE_SIZE)


def maintain_table(
    spark: SparkSession,
    ref: TableRef,
    zorder: Sequence[str],
    retention_hours: float,
    dry_run: bool = False,
    change_feed_read_up_to: int | None = None,
    small_bytes: int | None = None,
) -> TableResult:
    """Compact, then vacuum one table (or, with dry_run, only say what that would do). Every VACUUM call with a
    retention below the table's deletedFileRetentionDuration needs retention_check_disabled around it."""
    started = time.perf_counter()
    before = table_state(spark, ref.path)
    schema = read_delta(spark, ref.path).schema
    columns, warnings = zorder_columns(schema, before, zorder, ref.qualified)
    for w in warnings:
        log.warning(w)
    files = live_files(spark, ref.path, before.partition_columns)
    plan = None
    if files is None:
        warnings.append(f"{ref.qualified}: files are not in partition folders; not compacted")
        log.warning(warnings[-1])
    else:
        plan = plan_compaction(files, columns, bool(before.clustering_columns), small_bytes or small_file_bytes(spark))
    compacted = False
    if plan is not None and plan.needed and not dry_run:
        log.info("%s: %s of %d files in %d partitions", ref.qualified, plan.mode, plan.files, len(plan.partitions))
        compact(spark, ref.path, plan)
        compacted = True
    vacuum = vacuum_table(spark, ref, before.properties, retention_hours, change_feed_read_up_to, dry_run)
    after = table_state(spark, ref.path) if compacted or vacuum.vacuumed else before
    return TableResult(
        table=ref.qualified,
        before=before,
        after=after,
        plan=plan,
        compacted=compacted,
        vacuum_files=vacuum.files,
        vacuumed=vacuum.vacuumed,
        vacuum_held=vacuum.held,
        seconds=round(time.perf_counter() - started, 1),
        warnings=tuple(warnings),
    )


def report_rows(results: Sequence[TableResult], dry_run: bool) -> list[dict[str, object]]:
    """One row per table: live files and bytes before (and after), what OPTIMIZE and VACUUM did or would do."""
    rows: list[dict[str, object]] = []
    for r in results:
        plan = r.plan
        if plan is None:
            optimize = "unreadable layout"
        elif plan.needed:
            optimize = ("would run " if dry_run else "") + plan.mode
        else:
            optimize = "not needed"
        if r.vacuum_held:
            vacuum = "held"
        elif not r.vacuum_files:
            vacuum = "nothing old"
        else:
            vacuum = "would delete" if dry_run else "deleted"
        row: dict[str, object] = {
            "table": r.table,
            "files_before": r.before.num_files,
            "bytes_before": r.before.size_bytes,
            "optimize": optimize,
            "rewrite_files": plan.files if plan and plan.needed else 0,
            "partitions": len(plan.partitions) if plan else 0,
            "vacuum": vacuum,
            "vacuum_files": r.vacuum_files,
        }
        if not dry_run:
            row |= {
                "files_after": r.after.num_files,
                "bytes_after": r.after.size_bytes,
                "versions": r.versions_written,
            }
        rows.append(row | {"seconds": r.seconds})
    return rows
