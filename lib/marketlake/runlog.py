"""Per-run accounting tables in the `ops` database (one row per table per run)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from pyspark.sql import SparkSession
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType, TimestampType

from marketlake.config import Settings
from marketlake.ingest import IngestReport
from marketlake.maintain import change_feed_readers
from marketlake.silver.build import TableRun
from marketlake.tables import create_table_if_missing, delta_table, read_delta

BRONZE_RUNS = "ops.bronze_ingest_runs"
BRONZE_RUNS_SCHEMA = StructType(
    [
        StructField("run_id", StringType(), False),
        StructField("run_started_at", TimestampType(), False),
        StructField("table_name", StringType(), False),
        StructField("batch_id", StringType(), True),
        StructField("files_found", LongType(), False),
        StructField("files_new", LongType(), False),
        StructField("lines_read", LongType(), False),
        StructField("rows_written", LongType(), False),
        StructField("unparseable", LongType(), False),
        StructField("seconds", DoubleType(), False),
        StructField("rows_suppressed", LongType(), True),  # rows about erased people; added after the first release
    ]
)


def record_bronze_run(spark: SparkSession, run_id: str, started: datetime, reports: Sequence[IngestReport]) -> None:
    create_table_if_missing(spark, BRONZE_RUNS, BRONZE_RUNS_SCHEMA, comment="ops: one row per bronze table per run")
    rows = [
        (
            run_id,
            started,
            r.table,
            r.batch_id,
            r.files_found,
            r.files_new,
            r.lines_read,
            r.rows_written,
            r.unparseable,
            round(r.seconds, 2),
            r.suppressed,
        )
        for r in reports
    ]
    # mergeSchema: a table created before rows_suppressed existed gains the column
    spark.createDataFrame(rows, BRONZE_RUNS_SCHEMA).write.format("delta").mode("append").option(
        "mergeSchema", "true"
    ).saveAsTable(BRONZE_RUNS)


SILVER_RUNS = "ops.silver_runs"
SILVER_RUNS_SCHEMA = (
    "run_id string, run_started_at timestamp, domain string, mode string, start_date date, end_date date, "
    "silver_table string, rows_in long, retried long, quarantined long, warned long, duplicates long, inserted long, "
    "updated long, unchanged long, silver_rows long, balanced boolean, seconds double, "
    "drift_columns map<string,long>, bronze_versions map<string,long>, merge_source_rows long, "
    "quarantine_inserted long, quarantine_known long"
)
SILVER_RULES = "ops.silver_rule_counts"
SILVER_RULES_SCHEMA = "run_id string, silver_table string, rule string, severity string, failed_rows long"
SILVER_WATERMARKS = "ops.silver_watermarks"
SILVER_WATERMARKS_SCHEMA = "silver_table string, bronze_table string, version long, run_id string, updated_at timestamp"


def silver_change_feed_readers(spark: SparkSession, settings: Settings) -> dict[str, int]:
    """Bronze table -> the lowest version silver has read its change feed up to, in this lakehouse's
    ops.silver_watermarks (what VACUUM of a bronze table must wait for)."""
    ops_db, table = SILVER_WATERMARKS.split(".")
    return change_feed_readers(spark, str(settings.database_location(ops_db) / table))


def _ensure(spark: SparkSession, name: str, ddl: str, comment: str) -> str:
    return create_table_if_missing(spark, name, spark.createDataFrame([], ddl).schema, comment=comment)


def _watermarks(spark: SparkSession) -> str:
    comment = "ops: bronze version each silver table read up to"
    return _ensure(spark, SILVER_WATERMARKS, SILVER_WATERMARKS_SCHEMA, comment)


def silver_watermarks(spark: SparkSession) -> dict[tuple[str, str], int]:
    """(silver table, bronze table) -> the last bronze version processed into it."""
    path = _watermarks(spark)
    rows = read_delta(spark, path).collect()
    return {(r["silver_table"], r["bronze_table"]): int(r["version"]) for r in rows}


def record_silver_run(
    spark: SparkSession,
    run_id: str,
    started: datetime,
    domain: str,
    window: tuple[date, date] | None,
    runs: Sequence[TableRun],
) -> None:
    """Per-table counts and per-rule counts of a run; for incremental runs also move the watermarks."""
    runs = [r for r in runs if not r.skipped]
    start, end = window or (None, None)
    mode = "range" if window else "incremental"
    rows = [
        (
            run_id,
            started,
            domain,
            mode,
            start,
            end,
            r.table,
            r.rows_in,
            r.retried,
            r.quarantined,
            r.warned,
            r.duplicates,
            r.inserted,
            r.updated,
            r.unchanged,
            r.silver_rows,
            r.balanced,
            r.seconds,
            r.drift,
            r.bronze_versions,
            r.merge_source_rows,
            r.quarantine_inserted,
            r.quarantine_known,
        )
        for r in runs
    ]
    runs_path = _ensure(spark, SILVER_RUNS, SILVER_RUNS_SCHEMA, "ops: one row per silver table per run")
    runs_frame = spark.createDataFrame(rows, SILVER_RUNS_SCHEMA)
    runs_frame.write.format("delta").mode("append").option("mergeSchema", "true").save(runs_path)
    rules = [(run_id, r.table, name, severity, n) for r in runs for name, severity, n in r.rule_counts]
    rules_path = _ensure(spark, SILVER_RULES, SILVER_RULES_SCHEMA, "ops: rows failing each rule, per run and table")
    spark.createDataFrame(rules, SILVER_RULES_SCHEMA).write.format("delta").mode("append").save(rules_path)
    if window:
        return
    marks = [(r.table, bronze, version, run_id, started) for r in runs for bronze, version in r.bronze_versions.items()]
    if not marks:
        return
    path = _watermarks(spark)
    (
        delta_table(spark, path)
        .alias("t")
        .merge(
            spark.createDataFrame(marks, SILVER_WATERMARKS_SCHEMA).alias("s"),
            "t.silver_table = s.silver_table AND t.bronze_table = s.bronze_table",
        )
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )
