"""The summary's per-table figures, computed side by side, against counts taken directly from small tables."""

from __future__ import annotations

from datetime import date

from pyspark.sql import SparkSession

from marketlake.report import bronze_summary, gold_summary

BRONZE = "_batch_id string, _landing_date date, _source_file string, _parse_error string"


def test_bronze_and_gold_summaries_count_each_table(spark: SparkSession, database: str) -> None:
    d1, d2 = date(2026, 3, 1), date(2026, 3, 2)
    tables = {
        "a": [("b1", d1, "f1", None), ("b1", d1, "f1", "malformed_json"), ("b2", d2, "f2", None)],
        "b": [("b3", d2, "f3", None)],
        "c": [("b4", d1, "f4", None), ("b4", d1, "f5", None)],
    }
    for name, rows in tables.items():
        spark.createDataFrame(rows, BRONZE).write.format("delta").saveAsTable(f"{database}.{name}")
    spark.range(1).createOrReplaceTempView("a_session_view")  # listed with every database's tables, not counted
    assert bronze_summary(spark, database) == [
        {"table": f"{database}.a", "rows": 3, "unparseable": 1, "files": 2, "batches": 2, "landing_dates": 2},
        {"table": f"{database}.b", "rows": 1, "unparseable": 0, "files": 1, "batches": 1, "landing_dates": 1},
        {"table": f"{database}.c", "rows": 2, "unparseable": 0, "files": 2, "batches": 1, "landing_dates": 1},
    ]
    location = str(spark.sql(f"DESCRIBE DETAIL {database}.a").first()["location"])
    gold = gold_summary(spark, {"a": (location, "_landing_date"), "missing": (location + "-none", "_landing_date")})
    assert gold == [
        {"table": "gold.a", "partitioned_by": "_landing_date", "rows": 3, "partitions": 2, "first": d1, "last": d2}
    ]
