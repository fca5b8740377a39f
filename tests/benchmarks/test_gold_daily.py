"""A daily gold run does not slow down as the gold tables fill up (make bench; not part of make test).

One lakehouse with 184 days of silver (generated at scale 0.1, ingested and built as a user would). Every gold
table is built into two databases: `gold_h1` holding 1 day of history and `gold_h180` holding 180 days. Then the
daily run for each of the next three days is timed on both, side by side in one warm session (the silver inputs are
the same, only the history already in the gold tables differs). Prints a JSON line with the ratio and appends it to
lakehouse/bench/gold_daily.jsonl; fails when the ratio misses the target or the two databases' new partitions
differ (history must change the cost, never the numbers).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from marketlake.config import CONF_DIR, Settings, load_settings
from marketlake.gold.build import build_table
from marketlake.gold.spec import load_gold
from marketlake.session import get_spark
from tests.benchmarks import record
from tests.conftest import run_job

START = date(2025, 6, 1)
DAYS = 184
HISTORY = 180
FIRST_DAILY = START + timedelta(days=HISTORY + 1)
TARGET_RATIO = 1.5


@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """184 days of silver; BENCH_GOLD_LAKEHOUSE reuses one an earlier run built (same generator arguments)."""
    if os.environ.get("BENCH_GOLD_LAKEHOUSE"):
        return Path(os.environ["BENCH_GOLD_LAKEHOUSE"])
    root = tmp_path_factory.mktemp("gold-daily")
    env = {"MARKETLAKE_LAKEHOUSE": str(root / "lh")}
    gen = ("--scale", "0.1", "--start", str(START), "--days", str(DAYS), "--seed", "3")
    run_job("generate.py", *gen, "--out", str(root / "landing"))
    run_job("bronze_ingest.py", "--domain", "all", "--landing", str(root / "landing"), env=env)
    run_job("silver_build.py", "--domain", "all", env=env)
    return root / "lh"


@pytest.fixture(scope="module")
def session(lakehouse: Path) -> Iterator[tuple[SparkSession, Settings]]:
    os.environ["MARKETLAKE_LAKEHOUSE"] = str(lakehouse)
    settings = load_settings("local")
    spark = get_spark(settings, "marketlake-bench-gold", "local[2]", {"spark.ui.enabled": "false"})
    for db in ("gold_h1", "gold_h180"):
        spark.sql(f"DROP DATABASE IF EXISTS {db} CASCADE")
        spark.sql(f"CREATE DATABASE {db} LOCATION '{lakehouse / db}'")
    yield spark, settings
    spark.stop()


def test_daily_run_time_does_not_grow_with_history(session: tuple[SparkSession, Settings]) -> None:
    spark, settings = session
    conf = load_gold(CONF_DIR)
    specs = list(conf.tables.values())
    last_history_day = FIRST_DAILY - timedelta(days=1)
    started = time.perf_counter()
    for spec in specs:
        build_table(spark, settings, conf, spec, last_history_day, last_history_day, "gold_h1")
        build_table(spark, settings, conf, spec, FIRST_DAILY - timedelta(days=HISTORY), last_history_day, "gold_h180")
    backfill_s = time.perf_counter() - started

    seconds: dict[str, list[float]] = {"gold_h1": [], "gold_h180": []}
    for offset in range(3):
        day = FIRST_DAILY + timedelta(days=offset)
        for db in ("gold_h1", "gold_h180"):
            t0 = time.perf_counter()
            for spec in specs:
                build_table(spark, settings, conf, spec, day, day, db)
            seconds[db].append(time.perf_counter() - t0)
    h1, h180 = statistics.median(seconds["gold_h1"]), statistics.median(seconds["gold_h180"])
    result = {
        "tables": len(specs),
        "silver_days": DAYS,
        "history_days": HISTORY,
        "backfill_s": round(backfill_s, 1),
        "daily_h1_s": [round(s, 1) for s in seconds["gold_h1"]],
        "daily_h180_s": [round(s, 1) for s in seconds["gold_h180"]],
        "h180_over_h1": round(h180 / h1, 2),
        "target": TARGET_RATIO,
    }
    record("gold_daily", result)
    new_days = (FIRST_DAILY, FIRST_DAILY + timedelta(days=2))
    for spec in specs:
        first, last = spec.partitions(*new_days)
        where = f"`{spec.partition}` BETWEEN DATE'{first}' AND DATE'{last}'"
        short, long = (spark.table(f"{db}.{spec.name}").where(where) for db in ("gold_h1", "gold_h180"))
        assert short.count() == long.count() and short.exceptAll(long).isEmpty(), f"{spec.name}: {first}..{last}"
    assert h180 / h1 <= TARGET_RATIO, result
