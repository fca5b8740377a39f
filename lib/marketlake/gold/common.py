"""Small column and frame helpers shared by the gold marts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

Inputs = Mapping[str, DataFrame]


def between(column: str | Column, start: date, end: date) -> Column:
    """start <= column <= end, for a date column."""
    col = F.col(column) if isinstance(column, str) else column
    return col.between(F.lit(start), F.lit(end))


def dates(spark: SparkSession, start: date, end: date, name: str = "date") -> DataFrame:
    """One row per date from start to end inclusive."""
    return spark.range(1).select(F.explode(F.sequence(F.lit(start), F.lit(end))).alias(name))


def lookup(mapping: Mapping[str, float], key: Column) -> Column:
    """A literal map lookup (null for an unknown key)."""
    if not mapping:
        return F.lit(None).cast("double")
    pairs = [x for k, v in mapping.items() for x in (F.lit(str(k)), F.lit(float(v)))]
    return F.element_at(F.create_map(*pairs), key)


def ratio(numerator: Column, denominator: Column) -> Column:
    """numerator / denominator as a double, null when the denominator is 0 or null."""
    return F.try_divide(numerator.cast("double"), F.nullif(denominator.cast("double"), F.lit(0.0)))


def money(value: Column) -> Column:
    return value.cast("decimal(20,2)")


def band(value: Column, bounds: Mapping[str, object]) -> Column:
    """Name the benchmark band a value falls in: bounds lists excellent/good/average limits (poor otherwise);
    `higher_is_better` flips the comparison. A value on the excellent or good limit belongs to the next band (the
    band that limit starts: 2 h is good, 4 h average); poor lies strictly beyond the average limit (DOMAIN: poor
    > 8 h, < 98 %), so a value on it is average."""
    higher = bool(bounds.get("higher_is_better", False))
    expr = None
    for name in ("excellent", "good", "average"):
        limit = F.lit(float(bounds[name]))  # type: ignore[arg-type]
        if name == "average":
            hit = value >= limit if higher else value <= limit
        else:
            hit = value > limit if higher else value < limit
        expr = F.when(hit, F.lit(name)) if expr is None else expr.when(hit, F.lit(name))
    assert expr is not None
    return F.when(value.isNull(), F.lit(None)).otherwise(expr.otherwise(F.lit("poor")))


def first_match(conditions: Sequence[tuple[str, str | Column]], default: str | None) -> Column:
    """The name of the first (name, condition) that holds, else default (null when None); a condition is a Column
    or SQL text."""
    expr = None
    for name, condition in conditions:
        holds = F.expr(condition) if isinstance(condition, str) else condition
        expr = F.when(holds, F.lit(name)) if expr is None else expr.when(holds, F.lit(name))
    return expr.otherwise(F.lit(default)) if expr is not None else F.lit(default)
