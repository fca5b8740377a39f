"""asof_join at scale (make bench; not part of make test): 10M purchases x 1M trend readings x 10k products, one
product holding 20 % of both sides, against
  (a) the union + last(ignorenulls) window formulation on the same Spark session,
  (b) dbl-tempo's TSDF.asofJoin (which implements (a)),
  (c) DuckDB's ASOF JOIN on the same Parquet files,
and a plain Parquet read (+ write) of the left side as the floor. Each Spark variant is timed twice: the join alone
(no-op sink) and the join with its result written to Parquet; DuckDB always writes. The written results must be
identical (checked with DuckDB). Timings are the best of ROUNDS alternating runs, printed as a JSON line with ratios
and appended to lakehouse/bench/asof.jsonl.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from marketlake.config import load_settings
from marketlake.gold.asof import asof_join
from marketlake.session import get_spark
from tests.benchmarks import record

PURCHASES = int(os.environ.get("BENCH_ASOF_LEFT", 10_000_000))
READINGS = int(os.environ.get("BENCH_ASOF_RIGHT", 1_000_000))
PRODUCTS = 10_000
HOT_SHARE = 0.2
ROUNDS = 2
SPAN_S = 90 * 86400
T0_S = 1_767_225_600  # 2026-01-01 UTC
BENCH_CONF = {"spark.driver.memory": "8g", "spark.sql.shuffle.partitions": "8", "spark.ui.enabled": "false"}
RIGHT_COLS = ("observed_at", "trend_id", "velocity")


@pytest.fixture(scope="module")
def bench_spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    os.environ["MARKETLAKE_LAKEHOUSE"] = str(tmp_path_factory.mktemp("asof-lh"))
    session = get_spark(load_settings("local"), "marketlake-bench-asof", "local[2]", BENCH_CONF)
    yield session
    session.stop()


def _product(seed: int) -> F.Column:
    hot = F.rand(seed) < HOT_SHARE
    return F.when(hot, F.lit("p00000")).otherwise(
        F.format_string("p%05d", (F.abs(F.xxhash64("id", F.lit(seed))) % PRODUCTS).cast("int"))
    )


def write_inputs(spark: SparkSession, root: Path) -> tuple[str, str]:
    left, right = str(root / "purchases"), str(root / "readings")
    seconds = (F.lit(T0_S) + (F.rand(11) * SPAN_S).cast("long")).cast("long")
    (
        spark.range(PURCHASES)
        .select(
            F.col("id").alias("purchase_id"),
            _product(1).alias("product_id"),
            F.when(F.rand(5) > 0.001, F.timestamp_seconds(seconds)).alias("purchased_at"),
            F.round(F.rand(7) * 100, 2).alias("amount"),
        )
        .write.mode("overwrite")
        .parquet(left)
    )
    # Reading times are unique (the microsecond part is the row id), so every variant has one right answer.
    micros = (F.lit(T0_S) + (F.rand(13) * SPAN_S).cast("long")) * 1_000_000 + F.col("id") % 1_000_000
    (
        spark.range(READINGS)
        .select(
            _product(2).alias("product_id"),
            F.timestamp_micros(micros).alias("observed_at"),
            F.concat(F.lit("t"), (F.col("id") % 50_000).cast("string")).alias("trend_id"),
            F.round(F.rand(17) * 50, 3).alias("velocity"),
        )
        .write.mode("overwrite")
        .parquet(right)
    )
    return left, right


def union_last(left: DataFrame, right: DataFrame) -> DataFrame:
    """(a): union both sides, order by time (a right row before a left row at the same time), carry the last
    non-null right values forward per product."""
    marked_left = left.select(
        "*", *[F.lit(None).cast(right.schema[c].dataType).alias(c) for c in RIGHT_COLS], F.lit(1).alias("_is_left")
    )
    marked_right = right.select(
        F.lit(None).cast("long").alias("purchase_id"),
        "product_id",
        F.col("observed_at").alias("purchased_at"),
        F.lit(None).cast("double").alias("amount"),
        *RIGHT_COLS,
        F.lit(0).alias("_is_left"),
    )
    both = marked_left.unionByName(marked_right)
    window = (
        Window.partitionBy("product_id")
        .orderBy(F.col("purchased_at").asc_nulls_last(), "_is_left")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    filled = both.select(
        "purchase_id",
        "product_id",
        "purchased_at",
        "amount",
        *[F.last(c, ignorenulls=True).over(window).alias(c) for c in RIGHT_COLS],
        "_is_left",
    )
    matched = filled.where("_is_left = 1").drop("_is_left")
    # A left row with a null time sorts last and would inherit the key's latest reading; the contract says null.
    return matched.select(
        "purchase_id",
        "product_id",
        "purchased_at",
        "amount",
        *[F.when(F.col("purchased_at").isNotNull(), F.col(c)).alias(c) for c in RIGHT_COLS],
    )


def tempo_join(left: DataFrame, right: DataFrame) -> DataFrame:
    """(b): dbl-tempo's asofJoin. It needs the same time column name on both sides; its right columns come back
    prefixed with right_."""
    from tempo import TSDF

    readings = right.withColumnRenamed("observed_at", "purchased_at")
    joined = TSDF(left, ts_col="purchased_at", partition_cols=["product_id"]).asofJoin(
        TSDF(readings, ts_col="purchased_at", partition_cols=["product_id"]), right_prefix="right"
    )
    return joined.df.select(
        "purchase_id",
        "product_id",
        "purchased_at",
        "amount",
        F.col("right_purchased_at").alias("observed_at"),
        *[F.col(f"right_{c}").alias(c) for c in RIGHT_COLS[1:]],
    )


def duckdb_join(left: str, right: str, out: str) -> None:
    """(c): DuckDB ASOF LEFT JOIN over the same Parquet files, written to Parquet."""
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(
        f"""COPY (
              SELECT l.*, r.observed_at, r.trend_id, r.velocity
              FROM read_parquet('{left}/*.parquet') l
              ASOF LEFT JOIN read_parquet('{right}/*.parquet') r
                ON l.product_id = r.product_id AND l.purchased_at >= r.observed_at
            ) TO '{out}' (FORMAT parquet)"""
    )
    con.close()


def differing_rows(a: str, b: str, where: str = "true") -> int:
    """Rows of a not in b plus rows of b not in a (as multisets), over the rows matching `where`."""
    con = duckdb.connect()
    cols = "purchase_id, product_id, purchased_at, amount, observed_at, trend_id, velocity"
    one, two = (f"(SELECT {cols} FROM read_parquet('{p}') WHERE {where})" for p in (a, b))
    diff = con.execute(
        f"SELECT (SELECT count(*) FROM ({one} EXCEPT ALL {two})) + (SELECT count(*) FROM ({two} EXCEPT ALL {one}))"
    )
    count = int(diff.fetchone()[0])
    con.close()
    return count


def timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def test_asof_join_against_union_window_tempo_and_duckdb(bench_spark: SparkSession, tmp_path: Path) -> None:
    spark = bench_spark
    left_path, right_path = write_inputs(spark, tmp_path)
    out = {name: str(tmp_path / f"out_{name}") for name in ("ours", "union_last", "tempo", "copy")}
    out["duckdb"] = str(tmp_path / "out_duckdb.parquet")

    def spark_variant(name: str, build: Callable[[DataFrame, DataFrame], DataFrame], sink: str) -> Callable[[], None]:
        def _() -> None:
            result = build(spark.read.parquet(left_path), spark.read.parquet(right_path))
            if sink == "noop":
                result.write.format("noop").mode("overwrite").save()
            else:
                result.write.mode("overwrite").parquet(out[name])

        return _

    def ours(left: DataFrame, right: DataFrame) -> DataFrame:
        return asof_join(left, right, "product_id", "purchased_at", "observed_at")

    builders: dict[str, Callable[[DataFrame, DataFrame], DataFrame]] = {
        "copy": lambda left, _right: left,
        "ours": ours,
        "union_last": union_last,
        "tempo": tempo_join,
    }
    # Two measures per Spark variant: the join alone (Spark's no-op sink evaluates every row and column) and the
    # join plus writing the result to Parquet, which costs the same for every variant and compresses poorly.
    variants: dict[str, Callable[[], None]] = {
        **{f"{name}_join": spark_variant(name, build, "noop") for name, build in builders.items()},
        **{f"{name}_write": spark_variant(name, build, "parquet") for name, build in builders.items()},
        "duckdb_write": lambda: duckdb_join(left_path, right_path, out["duckdb"]),
    }
    best: dict[str, float] = {}
    for _ in range(ROUNDS):
        for name, action in variants.items():
            seconds = timed(action)
            best[name] = min(best.get(name, seconds), seconds)
    files = {name: path if path.endswith(".parquet") else f"{path}/*.parquet" for name, path in out.items()}
    for name in ("union_last", "duckdb"):
        assert differing_rows(files["ours"], files[name]) == 0, f"asof_join and {name} disagree"
    # tempo drops left rows whose time is null (asof_join keeps them with nulls); the rest must agree.
    assert differing_rows(files["ours"], files["tempo"], "purchased_at IS NOT NULL") == 0
    con = duckdb.connect()
    tempo_rows = con.execute(f"SELECT count(*) FROM read_parquet('{files['tempo']}')").fetchone()[0]
    ours_rows = con.execute(f"SELECT count(*) FROM read_parquet('{files['ours']}')").fetchone()[0]
    con.close()
    assert ours_rows == PURCHASES
    result = {
        "purchases": PURCHASES,
        "readings": READINGS,
        "products": PRODUCTS,
        "hot_share": HOT_SHARE,
        "tempo_dropped_null_time_rows": PURCHASES - tempo_rows,
        **{f"{k}_s": round(v, 2) for k, v in best.items()},
        "join_union_last_over_ours": round(best["union_last_join"] / best["ours_join"], 2),
        "join_tempo_over_ours": round(best["tempo_join"] / best["ours_join"], 2),
        "write_union_last_over_ours": round(best["union_last_write"] / best["ours_write"], 2),
        "write_tempo_over_ours": round(best["tempo_write"] / best["ours_write"], 2),
        "write_ours_over_duckdb": round(best["ours_write"] / best["duckdb_write"], 2),
        "write_ours_over_copy": round(best["ours_write"] / best["copy_write"], 2),
    }
    record("asof", result)
