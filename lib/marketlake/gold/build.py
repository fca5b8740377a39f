"""Build gold tables for a date range: read the silver dates a table needs, run its builder, and replace exactly
the partitions of the range in one Delta commit (replaceWhere). A rebuild that would write the same rows commits
nothing, so re-running a day or a backfill leaves the table and its history as they were."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, FloatType

from marketlake.config import Settings
from marketlake.errors import InputError
from marketlake.gold import commerce, customers, exchange, trends
from marketlake.gold.common import Inputs, between
from marketlake.gold.spec import GoldConf, GoldSpec, date_range, describe_dates
from marketlake.session import checkpoint
from marketlake.tables import create_table, current_version, is_delta_table, read_delta

log = logging.getLogger(__name__)

Builder = Callable[[Inputs, date, date, Mapping[str, Any]], DataFrame]

BUILDERS: dict[str, Builder] = {
    "exchange_pair_daily": exchange.pair_daily,
    "exchange_fee_tiers_daily": exchange.fee_tiers_daily,
    "exchange_active_users_daily": exchange.active_users_daily,
    "exchange_execution_daily": exchange.execution_daily,
    "exchange_compliance_flags": exchange.compliance_flags,
    "exchange_funnel_daily": exchange.funnel_daily,
    "exchange_cohort_retention": exchange.cohort_retention,
    "exchange_rfm": customers.exchange_rfm,
    "exchange_churn_risk": customers.churn_risk,
    "exchange_churn_features": customers.churn_features,
    "commerce_daily_kpis": commerce.daily_kpis,
    "commerce_fulfillment_daily": commerce.fulfillment_daily,
    "commerce_rfm": customers.commerce_rfm,
    "fact_trend_purchase_outcomes": trends.purchase_outcomes,
}
MAX_RANGE_DAYS = 3660


class MissingInput(InputError):
    """A silver table a gold table reads does not exist (its source was never ingested or built)."""


@dataclass(frozen=True)
class GoldRun:
    table: str
    first: date
    last: date
    rows: int
    written: bool
    version: int
    seconds: float


def check_range(start: date, end: date) -> None:
    if start > end:
        raise InputError(f"--start {start} is after --end {end}")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise InputError(f"the range {start}..{end} is longer than {MAX_RANGE_DAYS} days; split the backfill")


def silver_path(settings: Settings, name: str) -> str:
    return str(settings.database_location("silver") / name)


def read_inputs(
    spark: SparkSession, settings: Settings, spec: GoldSpec, start: date, end: date
) -> dict[str, DataFrame]:
    """The silver inputs of a table, limited to the dates the build reads; fails clearly when an input table is
    missing, or when a partition date of the range lies outside the dates its date-partitioned inputs hold."""
    first, last = spec.reads(start, end)
    inputs: dict[str, DataFrame] = {}
    for name in spec.inputs:
        path = silver_path(settings, name)
        if not is_delta_table(spark, path):
            domain = name.split("_", 1)[0]
            raise MissingInput(
                f"silver.{name} does not exist (needed by gold.{spec.name}); "
                f"build it first: jobs/silver_build.py --domain {domain}"
            )
        inputs[name] = read_delta(spark, path)
    dated = {name: df for name, df in inputs.items() if "event_date" in df.columns}
    if dated and not spec.monthly:
        _check_dates(dated, spec, start, end)
    return {name: df.where(between("event_date", first, last)) if name in dated else df for name, df in inputs.items()}


def _check_dates(inputs: dict[str, DataFrame], spec: GoldSpec, start: date, end: date) -> None:
    """Every partition date of the range must lie within the dates silver holds (from the earliest to the latest
    event_date of the table's date-partitioned inputs). A quiet day inside the data (an outage with no orders)
    is real and builds; a date before or after it is silver not built yet."""
    spans = [df.agg(F.min("event_date"), F.max("event_date")).first() for df in inputs.values()]
    firsts = [r[0] for r in spans if r is not None and r[0] is not None]
    lasts = [r[1] for r in spans if r is not None and r[1] is not None]
    held = (min(firsts), max(lasts)) if firsts else None
    missing = [d for d in date_range(start, end) if held is None or not held[0] <= d <= held[1]]
    if missing:
        names = ", ".join(f"silver.{n}" for n in inputs)
        span = f"{held[0]}..{held[1]}" if held else "no dates"
        raise InputError(
            f"no rows for {describe_dates(missing)} in {names} (they hold {span}), so gold.{spec.name} cannot be "
            f"built for {start}..{end}; ingest and build silver for those dates first, or choose a range inside the "
            "data"
        )


def opening_inventory(spark: SparkSession, settings: Settings, location: str, start: date) -> DataFrame:
    """Stock per product at the end of the day before start: the table's previous partition when it has one
    (daily runs carry stock forward and never rescan history), else every movement before start."""
    before = start - timedelta(days=1)
    if is_delta_table(spark, location):
        previous = read_delta(spark, location).where(F.col("date") == F.lit(before))
        if not previous.isEmpty():
            return previous.select("product_id", F.col("closing_stock").alias("stock"))
    movements = read_delta(spark, silver_path(settings, "commerce_inventory_movements"))
    return commerce.opening_stock(movements, start)


def build_frame(
    spark: SparkSession, settings: Settings, conf: GoldConf, spec: GoldSpec, start: date, end: date, location: str
) -> DataFrame:
    inputs = read_inputs(spark, settings, spec, start, end)
    first, last = spec.partitions(start, end)
    if spec.name == "commerce_inventory_daily":
        opening = opening_inventory(spark, settings, location, first)
        return commerce.inventory_daily(inputs, first, last, conf.params, opening)
    return BUILDERS[spec.name](inputs, first, last, conf.params)


def write_partitions(
    spark: SparkSession,
    df: DataFrame,
    spec: GoldSpec,
    table: str,
    location: str,
    start: date,
    end: date,
    also: str | None = None,
) -> tuple[int, bool]:
    """Replace the partitions of [start, end] with df in one commit (only the rows matching `also` in them, when
    several writers share the partitions); returns (rows, written)."""
    first, last = spec.partitions(start, end)
    outside = df.where(~between(spec.partition, first, last)).limit(1).count()
    if outside:
        raise RuntimeError(f"gold.{spec.name}: the build produced rows outside {first}..{last}")
    predicate = f"`{spec.partition}` >= DATE'{first}' AND `{spec.partition}` <= DATE'{last}'"
    if also:
        predicate = f"{predicate} AND ({also})"
    return replace_where(spark, df, table, location, [spec.partition], predicate, spec.about)


def replace_where(
    spark: SparkSession,
    df: DataFrame,
    table: str,
    location: str,
    partition_by: list[str],
    predicate: str,
    about: str,
) -> tuple[int, bool]:
    """Replace the rows matching predicate with df in one commit, creating the table when missing; returns (rows,
    written). Nothing is committed when those rows already are exactly df's rows."""
    if not is_delta_table(spark, location):
        create_table(spark, table, df.schema, partition_by, comment=about)
    current = read_delta(spark, location)
    _check_schema(table, current, df)
    existing = current.where(predicate).select(*df.columns)
    rows = df.count()
    if existing.count() == rows and _comparable(df).exceptAll(_comparable(existing)).isEmpty():
        return rows, False
    df.write.format("delta").mode("overwrite").option("replaceWhere", predicate).save(location)
    return rows, True


def _comparable(df: DataFrame) -> DataFrame:
    """df with floating-point columns rounded to 6 decimals: sums of doubles can differ in the last bits between
    two runs over the same rows (the order partial sums meet in), which is not a change worth a commit."""
    floating = {f.name for f in df.schema.fields if isinstance(f.dataType, (DoubleType, FloatType))}
    return df.select(*[F.round(F.col(c), 6).alias(c) if c in floating else F.col(c) for c in df.columns])


def _check_schema(table: str, current: DataFrame, df: DataFrame) -> None:
    have = [(f.name, f.dataType.simpleString()) for f in current.schema.fields]
    want = [(f.name, f.dataType.simpleString()) for f in df.schema.fields]
    if have != want:
        raise InputError(
            f"{table} was created with other columns than this build writes; "
            f"drop it (jobs/query.py 'DROP TABLE {table}') and rebuild the dates you need"
        )


def build_table(
    spark: SparkSession,
    settings: Settings,
    conf: GoldConf,
    spec: GoldSpec,
    start: date,
    end: date,
    database: str = "gold",
) -> GoldRun:
    """Build one gold table for [start, end] into <database>.<name> (located under the lakehouse root)."""
    started = time.perf_counter()
    table, location = f"{database}.{spec.name}", str(settings.database_location(database) / spec.name)
    frame = checkpoint(build_frame(spark, settings, conf, spec, start, end, location))
    rows, written = write_partitions(spark, frame, spec, table, location, start, end)
    first, last = spec.partitions(start, end)
    run = GoldRun(table, first, last, rows, written, current_version(spark, location), time.perf_counter() - started)
    log.info("%s %s..%s: %d rows %s", table, first, last, rows, "written" if written else "unchanged")
    return run
