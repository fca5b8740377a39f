"""Partitioned gold builds: a 3-day backfill rewrites exactly those partitions (read from the Delta log), a second
run commits nothing, and user mistakes get one clear message."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from marketlake.config import CONF_DIR, Settings
from marketlake.errors import InputError
from marketlake.gold.build import build_table, check_range
from marketlake.gold.spec import load_gold
from marketlake.tables import read_delta
from tests.conftest import run_job

CONF = load_gold(CONF_DIR)
DAYS = [date(2026, 2, 1) + timedelta(days=i) for i in range(6)]
TRADES = (
    "trade_id string, order_id string, user_id string, pair string, side string, quantity decimal(28,8), "
    "price decimal(28,8), fee decimal(28,8), fee_asset string, executed_at timestamp, event_date date"
)


def _trades(day: date, n: int, prefix: str = "t") -> list[tuple]:
    at = datetime(day.year, day.month, day.day, 12)
    return [
        (f"{prefix}{day}-{i}", f"o{i}", f"u{i % 3}", "BTC/USDT" if i % 2 else "ETH/USDT", "buy",
         Decimal(i + 1), Decimal("100.5"), Decimal("0.25"), "USDT", at + timedelta(minutes=i), day)
        for i in range(n)
    ]  # fmt: skip


def _commit(table: Path, version: int) -> list[dict]:
    lines = (table / "_delta_log" / f"{version:020d}.json").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _files_by_day(spark: SparkSession, table: Path) -> dict[str, set[str]]:
    files = spark.read.format("delta").load(str(table)).selectExpr("date", "_metadata.file_path AS f").distinct()
    out: dict[str, set[str]] = {}
    for row in files.collect():
        out.setdefault(str(row["date"]), set()).add(row["f"])
    return out


@pytest.fixture
def lake(spark: SparkSession, settings: Settings, database: str, tmp_path: Path) -> tuple[Settings, str]:
    """A lakehouse in this test's temp directory holding silver.exchange_trades for six days; gold goes to the
    test's database (located beside it)."""
    local = dataclasses.replace(settings, lakehouse_root=tmp_path)
    rows = [r for i, d in enumerate(DAYS) for r in _trades(d, 4 + i)]
    spark.createDataFrame(rows, TRADES).write.format("delta").partitionBy("event_date").save(
        str(tmp_path / "silver" / "exchange_trades")
    )
    return local, database


def test_backfill_rewrites_only_its_partitions_and_a_rerun_commits_nothing(
    spark: SparkSession, lake: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, db = lake
    spec = CONF.spec("exchange_pair_daily")
    table = tmp_path / db / spec.name
    first = build_table(spark, settings, CONF, spec, DAYS[0], DAYS[-1], database=db)
    assert first.written and first.rows == 12  # two pairs a day
    before = _files_by_day(spark, table)

    # New trades land for day 3; the backfill covers days 2..4.
    extra = spark.createDataFrame(_trades(DAYS[2], 2, prefix="late"), TRADES)
    extra.write.format("delta").mode("append").save(str(tmp_path / "silver" / "exchange_trades"))
    backfill = build_table(spark, settings, CONF, spec, DAYS[1], DAYS[3], database=db)
    assert backfill.written and backfill.version == first.version + 1

    actions = _commit(table, backfill.version)
    touched = {a[k]["partitionValues"]["date"] for a in actions for k in ("add", "remove") if k in a}
    assert touched == {str(d) for d in DAYS[1:4]}
    predicate = next(a["commitInfo"] for a in actions if "commitInfo" in a)["operationParameters"]["predicate"]
    assert "2026-02-02" in predicate and "2026-02-04" in predicate
    removed = {a["remove"]["path"] for a in actions if "remove" in a}
    after = _files_by_day(spark, table)
    for day in map(str, DAYS):
        if day in touched:
            assert all(Path(f).name in {Path(r).name for r in removed} for f in before[day])
        else:
            assert after[day] == before[day]  # untouched partitions keep their files
    day3 = read_delta(spark, str(table)).where(f"date = '{DAYS[2]}'").selectExpr("sum(trade_count)").first()[0]
    assert day3 == 6 + 2

    snapshot = read_delta(spark, str(table))
    rows_before = snapshot.collect()
    again = build_table(spark, settings, CONF, spec, DAYS[1], DAYS[3], database=db)
    assert not again.written and again.version == backfill.version
    assertDataFrameEqual(read_delta(spark, str(table)), rows_before)


def test_user_mistakes_get_one_clear_message(spark: SparkSession, lake: tuple[Settings, str]) -> None:
    settings, db = lake
    with pytest.raises(InputError, match="is after"):
        check_range(DAYS[3], DAYS[1])
    with pytest.raises(InputError, match="unknown gold table 'nope'"):
        CONF.select("exchange_pair_daily,nope")
    with pytest.raises(InputError, match=r"no rows for 2026-02-07, 2026-02-08 in silver.exchange_trades"):
        build_table(spark, settings, CONF, CONF.spec("exchange_pair_daily"), DAYS[4], DAYS[-1] + timedelta(days=2), db)
    with pytest.raises(InputError, match=r"silver.exchange_orders does not exist"):
        build_table(spark, settings, CONF, CONF.spec("exchange_execution_daily"), DAYS[0], DAYS[1], db)


def test_gold_job_reports_bad_arguments_in_one_line(job_in_process: Callable[..., tuple[int, str, str]]) -> None:
    for args, message in (
        (["--start", "2026-02-05", "--end", "2026-02-01"], "is after"),
        (["--date", "2026-02-30"], "is not a date"),
        (["--date", "2026-02-01", "--tables", "gold.nope"], "unknown gold table"),
        ([], "give --date"),
    ):
        code, _, err = job_in_process("gold_build.py", *args)
        assert code == 2, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines[-1].startswith("error: ") and message in lines[-1]
        assert "Traceback" not in err
    result = run_job("gold_build.py", "--start", "2026-02-05", "--end", "2026-02-01", check=False)  # a real process
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "is after" in result.stderr and "Traceback" not in result.stderr
