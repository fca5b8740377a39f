"""Per-run accounting tables in the `ops` database (one row per table per run)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pyspark.sql import SparkSession
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType, TimestampType

from marketlake.ingest import IngestReport
from marketlake.tables import append, create_table_if_missing

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
        )
        for r in reports
    ]
    append(spark.createDataFrame(rows, BRONZE_RUNS_SCHEMA), BRONZE_RUNS)
