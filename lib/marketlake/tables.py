"""Catalog and Delta table I/O: the only place that creates, reads or writes tables by name."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from marketlake.config import Settings

log = logging.getLogger(__name__)


def ensure_databases(spark: SparkSession, settings: Settings) -> None:
    """Create the layer databases (bronze, silver, gold, ops), each located under the lakehouse root."""
    for database in settings.databases:
        if spark.catalog.databaseExists(database):
            continue
        location = settings.database_location(database)
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{database}` LOCATION '{location}'")


def table_exists(spark: SparkSession, name: str) -> bool:
    return bool(spark.catalog.tableExists(name))


def create_table_if_missing(
    spark: SparkSession,
    name: str,
    schema: StructType,
    partition_by: Sequence[str] = (),
    comment: str | None = None,
    properties: dict[str, str] | None = None,
    cluster_by: Sequence[str] = (),
) -> str:
    """Create an empty Delta table with an explicit schema, unless it already exists; returns its location.

    Hot paths then address the table by location, which skips the (single-threaded) metastore. A table this
    process created or located before is only checked (the catalog still names it, a Delta table is at its
    location), not created and described again: each of those costs a second or more.
    """
    key = (id(spark.sparkContext), name)
    known = _LOCATIONS.get(key)
    if known and is_delta_table(spark, known) and table_exists(spark, name):
        return known
    create_table(spark, name, schema, partition_by, comment, properties, cluster_by)
    _LOCATIONS[key] = table_location(spark, name)
    return _LOCATIONS[key]


_LOCATIONS: dict[tuple[int, str], str] = {}


def create_table(
    spark: SparkSession,
    name: str,
    schema: StructType,
    partition_by: Sequence[str] = (),
    comment: str | None = None,
    properties: dict[str, str] | None = None,
    cluster_by: Sequence[str] = (),
) -> None:
    """Create an empty Delta table with an explicit schema in the catalog, unless it already exists; partitioned
    by partition_by or liquid-clustered by cluster_by (OPTIMIZE then lays its files out by those columns)."""
    builder = DeltaTable.createIfNotExists(spark).tableName(name).addColumns(schema)
    if partition_by:
        builder = builder.partitionedBy(*partition_by)
    if cluster_by:
        builder = builder.clusterBy(*cluster_by)
    if comment:
        builder = builder.comment(comment)
    for key, value in (properties or {}).items():
        builder = builder.property(key, value)
    builder.execute()


def table_location(spark: SparkSession, name: str) -> str:
    return str(spark.sql(f"DESCRIBE DETAIL {name}").select("location").first()[0])


def is_delta_table(spark: SparkSession, location: str) -> bool:
    """Whether a Delta table lives at this location (any filesystem Spark reaches, not only local disk)."""
    return bool(DeltaTable.isDeltaTable(spark, location))


def _is_path(ref: str) -> bool:
    """Table references are catalog names (db.table) or locations (which always hold a '/')."""
    return "/" in ref


def delta_table(spark: SparkSession, ref: str) -> DeltaTable:
    return DeltaTable.forPath(spark, ref) if _is_path(ref) else DeltaTable.forName(spark, ref)


def read_delta(spark: SparkSession, ref: str, version: int | None = None) -> DataFrame:
    """A Delta table by name or location, optionally as of a version."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(ref) if _is_path(ref) else reader.table(ref)


def current_version(spark: SparkSession, ref: str) -> int:
    """The table's latest Delta version."""
    return int(delta_table(spark, ref).history(1).select("version").first()[0])


def _commit_since(spark: SparkSession, ref: str, before: int, which: Column) -> Row | None:
    """The first commit after version `before` that matches `which` (our own write, found by what it is rather
    than by position, since another writer may have committed in between)."""
    recent = delta_table(spark, ref).history(20)
    return recent.where((F.col("version") > before) & which).orderBy("version").first()


def append_exactly_once(df: DataFrame, ref: str, app_id: str, version: int, merge_schema: bool = False) -> int | None:
    """Append df as one Delta commit tagged (app_id, version); returns the rows written (None if skipped).

    Delta skips a write whose version is not above the last committed one for app_id, so a writer that
    planned from a snapshot another writer already advanced adds nothing (no duplicates, no partial commit).
    The commit is found again by its userMetadata tag, never by position, so a concurrent commit by someone
    else is not mistaken for ours.
    """
    spark = df.sparkSession
    tag = f"{app_id}@{version}"
    before = current_version(spark, ref)
    writer = (
        df.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", version)
        .option("userMetadata", tag)
        .option("mergeSchema", str(merge_schema).lower())
    )
    if _is_path(ref):
        writer.save(ref)
    else:
        writer.saveAsTable(ref)
    ours = _commit_since(spark, ref, before, F.col("userMetadata") == tag)
    if ours is None:
        log.warning("%s: write %s was already committed; nothing appended", ref, tag)
        return None
    return int((ours["operationMetrics"] or {}).get("numOutputRows", 0))


@dataclass(frozen=True)
class MergeResult:
    source_rows: int
    inserted: int
    updated: int

    @property
    def unchanged(self) -> int:
        """Source rows that changed nothing: replays, and late events older than what the table holds."""
        return self.source_rows - self.inserted - self.updated


_COMMIT_TAG = "spark.databricks.delta.commitInfo.userMetadata"
_TAG_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _session_lock(spark: SparkSession) -> threading.Lock:
    """One lock per session: the tag is a session setting, so threads sharing a session take turns, while threads
    on sessions of their own (spark.newSession()) write side by side."""
    with _LOCKS_LOCK:
        return _TAG_LOCKS.setdefault(id(spark._jsparkSession), threading.Lock())


@contextmanager
def tagged_commits(spark: SparkSession) -> Iterator[str]:
    """A unique tag that every Delta commit made by this session inside the block carries as userMetadata, so our
    own commit is found again by what it is, never mistaken for another writer's."""
    tag = f"marketlake-{uuid.uuid4().hex}"
    with _session_lock(spark):
        previous = spark.conf.get(_COMMIT_TAG, None)
        spark.conf.set(_COMMIT_TAG, tag)
        try:
            yield tag
        finally:
            if previous is None:
                spark.conf.unset(_COMMIT_TAG)
            else:
                spark.conf.set(_COMMIT_TAG, previous)


def _merge_counts(result: DataFrame) -> tuple[int, int]:
    """(inserted, updated) from the metrics frame DeltaMergeBuilder.execute() returns for this MERGE."""
    row = result.first()
    return (int(row["num_inserted_rows"] or 0), int(row["num_updated_rows"] or 0)) if row else (0, 0)


def in_dates(column: str, days: Iterable[date | None]) -> str:
    """A SQL predicate true where `column` is one of `days` (a None in them matches a null), for pruning a MERGE's
    target to the partitions or files a batch can touch; false when there are none."""
    days = list(days)
    known = sorted({d for d in days if d is not None})
    literals = ", ".join(f"DATE'{d.isoformat()}'" for d in known)
    terms = [f"{column} IN ({literals})"] if known else []
    if any(d is None for d in days):
        terms.append(f"{column} IS NULL")
    return "(" + (" OR ".join(terms) or "FALSE") + ")"


def _merge_condition(keys: Sequence[str], target_filter: str | None) -> str:
    """Target `t` and source `s` match on every key (nulls equal), within `target_filter` when given."""
    return " AND ".join([f"t.`{k}` <=> s.`{k}`" for k in keys] + ([target_filter] if target_filter else []))


def merge_latest(
    df: DataFrame, ref: str, keys: Sequence[str], event_time: str, target_filter: str | None = None
) -> MergeResult:
    """Upsert df (one row per key) into a Delta table: new keys are inserted, a row replaces the stored one only
    when its event time is later, so a late, older event never overwrites a newer state and a replay changes
    nothing.

    `target_filter` (a predicate on the target `t`) limits the stored rows the MERGE reads to those a batch can
    match, e.g. the event-date partitions its rows fall in, so a run's cost follows its batch, not the history.
    Inserted and updated rows come from what execute() returns; the rows the MERGE took as source (which
    execute() does not report) from the metrics of our own commit, found by its unique tag."""
    spark = df.sparkSession
    on = _merge_condition(keys, target_filter)
    with tagged_commits(spark) as tag:
        result = (
            delta_table(spark, ref)
            .alias("t")
            .merge(df.alias("s"), on)
            .whenMatchedUpdateAll(condition=f"s.`{event_time}` > t.`{event_time}`")
            .whenNotMatchedInsertAll()
            .execute()
        )
    inserted, updated = _merge_counts(result)
    commit = _commit_since(spark, ref, -1, F.col("userMetadata") == tag)  # the tag is unique: no version needed
    metrics = (commit["operationMetrics"] if commit else None) or {}
    return MergeResult(source_rows=int(metrics.get("numSourceRows", 0)), inserted=inserted, updated=updated)


def insert_new(df: DataFrame, ref: str, keys: Sequence[str], target_filter: str | None = None) -> int:
    """Insert the rows of df whose keys the table does not hold yet (one MERGE, its target limited by
    `target_filter` as in merge_latest); returns the rows inserted, as execute() reports them."""
    on = _merge_condition(keys, target_filter)
    result = delta_table(df.sparkSession, ref).alias("t").merge(df.alias("s"), on).whenNotMatchedInsertAll().execute()
    return _merge_counts(result)[0]


def overwrite_counted(
    df: DataFrame, ref: str, table: str, partition_by: Sequence[str] = (), replace_where: str | None = None
) -> int:
    """Overwrite the Delta table at location ref (registered as `table`) with df in one commit, or with
    `replace_where` only the rows matching it (which df must all match); returns the rows written, from the
    metrics of that commit (found by its own userMetadata tag)."""
    spark = df.sparkSession
    tag = f"marketlake-{uuid.uuid4().hex}"
    writer = df.write.format("delta").mode("overwrite").option("userMetadata", tag)
    if replace_where:
        writer.option("replaceWhere", replace_where).save(ref)
    else:
        writer.option("overwriteSchema", "true").partitionBy(*partition_by).option("path", ref).saveAsTable(table)
    commit = _commit_since(spark, ref, -1, F.col("userMetadata") == tag)  # the tag is unique
    return int(((commit["operationMetrics"] if commit else None) or {}).get("numOutputRows", 0))


def restore(spark: SparkSession, ref: str, version: int) -> None:
    """Put a table back to an earlier version (a new commit; the undone one stays in the history)."""
    delta_table(spark, ref).restoreToVersion(version)


@dataclass(frozen=True)
class DeleteResult:
    version: int  # the version the DELETE committed
    deleted: int  # rows it deleted, from that commit's metrics


def delete_rows_unnamed(spark: SparkSession, ref: str, condition: Column) -> DeleteResult | None:
    """Delete the rows matching `condition` without writing the condition down: Delta logs a DELETE's predicate,
    literals included, in a commit no VACUUM removes, so a condition naming a person would keep them in the log.
    Instead a MERGE deletes the target rows whose fingerprint (SHA-256 of the whole row as JSON) is among those of the
    matching rows; its logged predicate compares fingerprints and names no value. Identical rows share a fingerprint
    and go together (they match the condition alike)."""
    table = read_delta(spark, ref)
    row = F.struct(*[F.col(f"`{c}`") for c in table.columns])
    victims = table.where(condition).select(F.sha2(F.to_json(row), 256).alias("_fingerprint")).distinct()
    target = F.sha2(F.to_json(F.struct(*[F.col(f"t.`{c}`").alias(c) for c in table.columns])), 256)
    with tagged_commits(spark) as tag:
        merge = delta_table(spark, ref).alias("t").merge(victims.alias("s"), target == F.col("s._fingerprint"))
        merge.whenMatchedDelete().execute()
    commit = _commit_since(spark, ref, -1, F.col("userMetadata") == tag)
    if commit is None:
        return None
    metrics = commit["operationMetrics"] or {}
    return DeleteResult(version=int(commit["version"]), deleted=int(metrics.get("numTargetRowsDeleted", 0)))


def delete_where(spark: SparkSession, ref: str, condition: Column) -> DeleteResult | None:
    """Delete the rows of a Delta table that match `condition`, in one commit; that commit's version and the rows it
    deleted as its metrics report them (the commit found by its unique tag), or None when Delta committed nothing."""
    with tagged_commits(spark) as tag:
        delta_table(spark, ref).delete(condition)
    commit = _commit_since(spark, ref, -1, F.col("userMetadata") == tag)  # the tag is unique
    if commit is None:
        return None
    metrics = commit["operationMetrics"] or {}
    return DeleteResult(version=int(commit["version"]), deleted=int(metrics.get("numDeletedRows", 0)))
