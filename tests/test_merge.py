"""Every MERGE path of the latest-wins upsert, each against a freshly reset table, compared as whole frames."""

from __future__ import annotations

from datetime import datetime

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from marketlake.silver.transforms import latest_per_key
from marketlake.tables import MergeResult, merge_latest

SCHEMA = "order_id string, status string, updated_at timestamp"
SEED = [("O1", "pending", datetime(2026, 1, 1, 10)), ("O2", "filled", datetime(2026, 1, 1, 12))]


@pytest.fixture
def orders(spark: SparkSession, database: str) -> str:
    table = f"{database}.orders"
    spark.createDataFrame(SEED, SCHEMA).write.format("delta").saveAsTable(table)
    return table


def frame(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, SCHEMA)


def check(spark: SparkSession, table: str, rows: list[tuple]) -> None:
    assert_df_equality(spark.table(table), frame(spark, rows), ignore_row_order=True, ignore_nullable=True)


def test_a_new_key_is_inserted(spark: SparkSession, orders: str) -> None:
    new = ("O3", "pending", datetime(2026, 1, 1, 11))
    assert merge_latest(frame(spark, [new]), orders, ["order_id"], "updated_at") == MergeResult(1, 1, 0)
    check(spark, orders, [*SEED, new])


def test_a_newer_update_replaces_the_stored_row(spark: SparkSession, orders: str) -> None:
    newer = ("O1", "filled", datetime(2026, 1, 1, 11))
    assert merge_latest(frame(spark, [newer]), orders, ["order_id"], "updated_at") == MergeResult(1, 0, 1)
    check(spark, orders, [newer, SEED[1]])


def test_an_older_late_update_is_ignored(spark: SparkSession, orders: str) -> None:
    late = ("O2", "pending", datetime(2026, 1, 1, 9))
    result = merge_latest(frame(spark, [late]), orders, ["order_id"], "updated_at")
    assert (result, result.unchanged) == (MergeResult(1, 0, 0), 1)
    check(spark, orders, SEED)


def test_an_exact_replay_changes_nothing(spark: SparkSession, orders: str) -> None:
    result = merge_latest(frame(spark, [SEED[0]]), orders, ["order_id"], "updated_at")
    assert (result, result.unchanged) == (MergeResult(1, 0, 0), 1)
    check(spark, orders, SEED)


def test_rerunning_a_whole_batch_changes_nothing(spark: SparkSession, orders: str) -> None:
    batch = [("O3", "pending", datetime(2026, 1, 1, 11)), ("O1", "cancelled", datetime(2026, 1, 1, 13))]
    assert merge_latest(frame(spark, batch), orders, ["order_id"], "updated_at") == MergeResult(2, 1, 1)
    assert merge_latest(frame(spark, batch), orders, ["order_id"], "updated_at") == MergeResult(2, 0, 0)
    check(spark, orders, [batch[1], SEED[1], batch[0]])


def test_latest_per_key_collapses_duplicates_and_breaks_ties_the_same_way_every_time(spark: SparkSession) -> None:
    rows = [
        ("O1", "pending", datetime(2026, 1, 1, 10)),
        ("O1", "filled", datetime(2026, 1, 1, 11)),
        ("O1", "filled", datetime(2026, 1, 1, 11)),
        ("O4", "filled", datetime(2026, 1, 1, 9)),
        ("O4", "cancelled", datetime(2026, 1, 1, 9)),
    ]
    pick = latest_per_key(["order_id"], "updated_at")
    forward = frame(spark, rows).transform(pick)
    backward = frame(spark, list(reversed(rows))).repartition(2).transform(pick)
    assert_df_equality(forward, backward, ignore_row_order=True)
    assert forward.count() == 2
    assert forward.where("order_id = 'O1'").first().status == "filled"
