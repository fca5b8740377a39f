"""Table upkeep on a 60-day bronze table (make bench; not part of make test): live files and a point query's time
before and after jobs/maintain.py's OPTIMIZE + VACUUM.

bronze.exchange_trades rows (the bronze schema, contract columns as strings, the raw JSON line) for 60 landing days,
in three layouts, one test each (`-k clustered` runs one), in one warm session:
  daily     partitioned by _landing_date, one file per day: what bronze_ingest wrote for a daily landing before bronze
            was clustered
  parts     partitioned by _landing_date, four files per day: a day landed in several parts (max_lines_per_file)
  clustered one file per day in an unpartitioned table liquid-clustered by _landing_date: what bronze_ingest writes
The point query is `WHERE user_id = <one user>` (count and checksum), median of 5 after a warm-up. Each layout
prints a JSON line and appends it to lakehouse/bench/maintain.jsonl; fails when maintenance changes a row or a
query's answer, leaves other file counts than expected, or a second run commits anything.
BENCH_MAINTAIN_ROWS_PER_DAY sets the rows per day (default 20000).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from marketlake.bronze import LANDING_DATE, bronze_schema
from marketlake.config import CONF_DIR, load_settings
from marketlake.maintain import TableRef, maintain_table, read_maintenance
from marketlake.session import get_spark
from marketlake.tables import read_delta
from tests.conftest import REPO

DAYS = 60
START = date(2026, 1, 1)
ROWS_PER_DAY = int(os.environ.get("BENCH_MAINTAIN_ROWS_PER_DAY", "20000"))
USERS = 2000
PAIRS = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT", "ADA-USDT", "DOGE-USDT", "MLT-USDT", "BTC-EUR"]
PROBE_USER = "u00042"
QUERY_RUNS = 5


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    os.environ["MARKETLAKE_LAKEHOUSE"] = str(tmp_path_factory.mktemp("maintain-lh"))
    session = get_spark(load_settings("local"), "marketlake-bench-maintain", "local[2]", {"spark.ui.enabled": "false"})
    yield session
    session.stop()


def trades_day(spark: SparkSession, day: date) -> DataFrame:
    """One landing day of bronze.exchange_trades rows, as bronze_ingest would have written them."""
    spec = load_settings("local").sources["exchange"]["trades"]
    n = F.col("id")
    mix, other = (F.pmod(F.xxhash64(n, F.lit(day.toordinal()), F.lit(salt)), F.lit(1_000_003)) for salt in "ab")
    contract: dict[str, Column] = {
        "trade_id": F.format_string("t%s-%08d", F.lit(day.isoformat()), n),
        "order_id": F.format_string("o%s-%08d", F.lit(day.isoformat()), n),
        "user_id": F.format_string("u%05d", F.pmod(mix, F.lit(USERS))),
        "pair": F.element_at(F.array(*[F.lit(p) for p in PAIRS]), (F.pmod(other, F.lit(len(PAIRS))) + 1).cast("int")),
        "side": F.when(other % 2 == 0, "buy").otherwise("sell"),
        "quantity": F.round(other / 1e5, 8).cast("string"),
        "price": F.round(100 + other / 1e3, 2).cast("string"),
        "fee": F.round(other / 1e8, 8).cast("string"),
        "fee_asset": F.lit("USDT"),
        "executed_at": F.date_format(
            F.timestamp_seconds(F.lit(int(_midnight(day))) + n % 86400), "yyyy-MM-dd'T'HH:mm:ss'Z'"
        ),
    }
    meta: dict[str, Column] = {
        "_batch_id": F.lit(f"bench-{day.isoformat()}"),
        LANDING_DATE: F.lit(day),
        "_source_file": F.lit(f"file:/landing/exchange/trades/date={day.isoformat()}/part-00000.jsonl"),
        "_source_size": F.lit(ROWS_PER_DAY * 220).cast("long"),
        "_line_no": (n + 1).cast("long"),
        "_ingest_ts": F.lit(datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)),
        "_source_format": F.lit("jsonl"),
        "_parse_error": F.lit(None).cast("string"),
        "_rescued_data": F.lit(None).cast("string"),
        "_raw_record": F.to_json(F.struct(*[c.alias(name) for name, c in contract.items()])),
    }
    columns = {**meta, **contract}
    schema = bronze_schema(spec)
    return spark.range(ROWS_PER_DAY).select(*[columns[f.name].cast(f.dataType).alias(f.name) for f in schema.fields])


def _midnight(day: date) -> float:
    return datetime.combine(day, datetime.min.time(), UTC).timestamp()


def point_query(spark: SparkSession, path: str) -> tuple[tuple[int, int], float]:
    """(rows, checksum) of one user's trades, and the median seconds over QUERY_RUNS runs after a warm-up."""

    def once() -> tuple[int, int]:
        df = read_delta(spark, path).where(F.col("user_id") == PROBE_USER)
        row = df.agg(F.count(F.lit(1)), F.sum(F.xxhash64(*df.columns).cast("decimal(38,0)"))).first()
        assert row is not None
        return int(row[0]), int(row[1])

    answer = once()
    seconds = []
    for _ in range(QUERY_RUNS):
        t0 = time.perf_counter()
        assert once() == answer
        seconds.append(time.perf_counter() - t0)
    return answer, statistics.median(seconds)


def fingerprint(spark: SparkSession, path: str) -> tuple[int, int]:
    df = read_delta(spark, path)
    row = df.agg(F.count(F.lit(1)), F.sum(F.xxhash64(*df.columns).cast("decimal(38,0)"))).first()
    assert row is not None
    return int(row[0]), int(row[1])


def build(spark: SparkSession, path: str, layout: str) -> None:
    """daily and clustered: 60 one-file appends, as 60 daily ingests write them (a clustered table's writer would
    shuffle 60 days written at once into one file). parts: 240 files written in one commit (its commit count is not
    what is measured; one commit keeps the benchmark short)."""
    days = [trades_day(spark, START + timedelta(days=offset)) for offset in range(DAYS)]
    if layout == "parts":  # each day's rows in four tasks, so four files per day
        parts = reduce(DataFrame.unionByName, [day.repartition(4) for day in days])
        parts.write.format("delta").mode("append").partitionBy(LANDING_DATE).save(path)
        return
    if layout == "clustered":
        schema = bronze_schema(load_settings("local").sources["exchange"]["trades"])
        DeltaTable.create(spark).location(path).addColumns(schema).clusterBy(LANDING_DATE).execute()
    for day in days:
        writer = day.coalesce(1).write.format("delta").mode("append")
        (writer.partitionBy(LANDING_DATE) if layout == "daily" else writer).save(path)


# layout -> (live files before, after): OPTIMIZE compacts within a partition, never across two; clustering has none
EXPECTED_FILES = {"daily": (DAYS, DAYS), "parts": (4 * DAYS, DAYS), "clustered": (DAYS, 1)}


@pytest.mark.parametrize("layout", list(EXPECTED_FILES))
def test_maintain_60_day_bronze(spark: SparkSession, tmp_path: Path, layout: str) -> None:
    zorder = read_maintenance(load_settings("local", CONF_DIR)).zorder.get("exchange_trades", ())
    ref = TableRef("bronze", f"exchange_trades_{layout}", str(tmp_path / layout))
    t0 = time.perf_counter()
    build(spark, ref.path, layout)
    build_s = time.perf_counter() - t0
    rows_before = fingerprint(spark, ref.path)
    answer_before, query_before = point_query(spark, ref.path)
    t0 = time.perf_counter()
    first = maintain_table(spark, ref, zorder, retention_hours=168)
    maintain_s = time.perf_counter() - t0
    answer_after, query_after = point_query(spark, ref.path)
    second = maintain_table(spark, ref, zorder, retention_hours=168)
    result = {
        "layout": layout,
        "days": DAYS,
        "rows_per_day": ROWS_PER_DAY,
        "optimize": first.plan.mode if first.plan and first.plan.needed else "not needed",
        "files_before": first.before.num_files,
        "files_after": first.after.num_files,
        "mb_before": round(first.before.size_bytes / 1e6, 1),
        "mb_after": round(first.after.size_bytes / 1e6, 1),
        "query_before_s": round(query_before, 3),
        "query_after_s": round(query_after, 3),
        "probe_rows": answer_before[0],
        "build_s": round(build_s, 1),
        "maintain_s": round(maintain_s, 1),
    }
    print("\n" + json.dumps(result))
    bench_dir = REPO / "lakehouse" / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    with (bench_dir / "maintain.jsonl").open("a") as fh:
        fh.write(json.dumps(result) + "\n")
    assert fingerprint(spark, ref.path) == rows_before
    assert answer_after == answer_before
    assert second.versions_written == 0
    assert (first.before.num_files, first.after.num_files) == EXPECTED_FILES[layout]
