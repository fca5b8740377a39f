"""Printable summaries of the lakehouse (what `make demo` shows) and collecting a query's rows for jobs/query.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from marketlake.formatting import format_rows as format_rows  # its home before it moved, kept for importers
from marketlake.tables import is_delta_table

T = TypeVar("T")
SUMMARY_THREADS = 4


def bronze_summary(spark: SparkSession, database: str = "bronze") -> list[dict[str, object]]:
    """Per bronze table: rows, unparseable rows, source files, batches and landing dates."""
    if not spark.catalog.databaseExists(database):
        return []

    def one(table: str) -> dict[str, object]:
        stats = (
            spark.table(f"{database}.{table}")
            .agg(
                F.count("*").alias("rows"),
                F.count("_parse_error").alias("unparseable"),
                F.countDistinct("_source_file").alias("files"),
                F.countDistinct("_batch_id").alias("batches"),
                F.countDistinct("_landing_date").alias("landing_dates"),
            )
            .first()
        )
        assert stats is not None
        return {"table": f"{database}.{table}", **stats.asDict()}

    return side_by_side(one, sorted(t.name for t in spark.catalog.listTables(database) if not t.isTemporary))


def side_by_side(one: Callable[[T], dict[str, object]], items: Sequence[T]) -> list[dict[str, object]]:
    """one(item) for every item, in order, a few at a time: each is a small Spark job whose latency (planning,
    scheduling) dominates, so running them concurrently fills the cores the others leave idle."""
    with ThreadPoolExecutor(max_workers=SUMMARY_THREADS) as pool:
        return list(pool.map(one, items))


def gold_summary(spark: SparkSession, tables: dict[str, tuple[str, str]]) -> list[dict[str, object]]:
    """Per gold table (name -> (location, partition column)) that exists: rows, partitions and their range."""

    def one(name: str) -> dict[str, object]:
        location, partition = tables[name]
        stats = (
            spark.read.format("delta")
            .load(location)
            .agg(
                F.count("*").alias("rows"),
                F.countDistinct(partition).alias("partitions"),
                F.min(partition).alias("first"),
                F.max(partition).alias("last"),
            )
            .first()
        )
        assert stats is not None
        return {"table": f"gold.{name}", "partitioned_by": partition, **stats.asDict()}

    built = [name for name, (location, _) in tables.items() if is_delta_table(spark, location)]  # others: not yet
    return side_by_side(one, built)


def silver_summary(spark: SparkSession, runs_table: str = "ops.silver_runs") -> list[dict[str, object]]:
    """Per silver table: rows stored now, and its accounting summed over every run so far (rows in + retried =
    silver + quarantined must hold per run, so it holds for the sums)."""
    if not spark.catalog.tableExists(runs_table):
        return []
    totals = (
        spark.table(runs_table)
        .groupBy("silver_table")
        .agg(
            F.count("*").alias("runs"),
            F.sum("rows_in").alias("rows_in"),
            F.sum("retried").alias("retried"),
            F.sum("silver_rows").alias("to_silver"),
            F.sum("quarantined").alias("quarantined"),
            F.min(F.col("balanced").cast("int")).alias("balanced"),
        )
        .orderBy("silver_table")
        .collect()
    )

    def one(t: Row) -> dict[str, object]:
        name = f"silver.{t['silver_table']}"
        stored = spark.table(name).count() if spark.catalog.tableExists(name) else 0
        row = t.asDict()
        row["balanced"] = "yes" if row["balanced"] == 1 else "NO"
        return {"table": f"silver.{row.pop('silver_table')}", **row, "stored_rows": stored}

    return side_by_side(one, totals)


def collect_rows(df: DataFrame, limit: int) -> tuple[list[dict[str, object]], list[str], bool]:
    """Up to `limit` rows as dicts, the column names, and whether more rows exist."""
    taken = df.limit(limit + 1).collect()
    rows = [r.asDict(recursive=True) for r in taken[:limit]]
    return rows, df.columns, len(taken) > limit
