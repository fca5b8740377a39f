"""From a gold table to model inputs: the labelled population, the time split, and feature encodings.

A feature vector holds the numeric features (null -> NaN, which xgboost treats as missing) followed by one index
per categorical feature (its position among the levels seen in training; unknown or null -> NaN)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.ml.functions import array_to_vector
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from marketlake.errors import InputError
from marketlake.models.spec import ModelSpec

NAN = float("nan")


@dataclass(frozen=True)
class Windows:
    """Time split of the labelled dates: train < validation < test, each a closed date range."""

    train: tuple[date, date]
    validation: tuple[date, date]
    test: tuple[date, date]

    def as_params(self) -> dict[str, str]:
        return {f"{name}_window": f"{a}..{b}" for name, (a, b) in self.__dict__.items()}


def labelled(df: DataFrame, spec: ModelSpec) -> DataFrame:
    """Rows of the modelling population whose label is final, with the label as a 0/1 double `label`."""
    return df.where(F.expr(spec.population) & F.col(spec.label_complete) & F.col(spec.label).isNotNull()).withColumn(
        "label", F.col(spec.label).cast("double")
    )


def time_windows(dates: Sequence[date], spec: ModelSpec) -> Windows:
    """Test = the last test_days calendar days of the labelled dates, validation = the validation_days before,
    train = every earlier labelled date. Never random: the model is always judged on days after it learned."""
    if not dates:
        raise InputError(
            f"gold.{spec.table} has no rows with a complete label ({spec.label_complete}); "
            "build gold over a longer history first"
        )
    first, last = min(dates), max(dates)
    test_start = last - timedelta(days=spec.test_days - 1)
    val_start = test_start - timedelta(days=spec.validation_days)
    if val_start <= first:
        days = (last - first).days + 1
        raise InputError(
            f"gold.{spec.table} holds {days} days of complete labels ({first}..{last}); model {spec.name} needs "
            f"more than validation {spec.validation_days} + test {spec.test_days} days to leave days to train on"
        )
    return Windows(
        train=(first, val_start - timedelta(days=1)),
        validation=(val_start, test_start - timedelta(days=1)),
        test=(test_start, last),
    )


def with_split(df: DataFrame, spec: ModelSpec, windows: Windows) -> DataFrame:
    d = F.col(spec.date)
    return df.withColumn(
        "split",
        F.when(d >= F.lit(windows.test[0]), F.lit("test"))
        .when(d >= F.lit(windows.validation[0]), F.lit("validation"))
        .otherwise(F.lit("train")),
    )


def category_levels(train: DataFrame, spec: ModelSpec) -> dict[str, list[str]]:
    """Per categorical feature, the levels seen in training, most frequent first (ties by name)."""
    levels: dict[str, list[str]] = {}
    for c in spec.categorical:
        rows = train.where(F.col(c).isNotNull()).groupBy(c).count().orderBy(F.desc("count"), c).collect()
        levels[c] = [str(r[0]) for r in rows]
    return levels


def _as_double(column: str) -> Column:
    return F.coalesce(F.col(column).cast("double"), F.lit(NAN))


def level_position(column: str, levels: Sequence[str]) -> Column:
    """0-based position of the column's value among the levels: -1 when unknown, null when the value is null."""
    if not levels:
        return F.when(F.col(column).isNotNull(), F.lit(-1))
    return (F.array_position(F.array(*[F.lit(v) for v in levels]), F.col(column).cast("string")) - 1).cast("int")


def _level_index(column: str, levels: Sequence[str]) -> Column:
    position = level_position(column, levels)
    return F.when(position >= 0, position.cast("double")).otherwise(F.lit(NAN))


def feature_array(spec: ModelSpec, levels: Mapping[str, Sequence[str]]) -> Column:
    """The xgboost input: array<double> in spec.features order, NaN for missing."""
    return F.array(*[_as_double(c) for c in spec.numeric], *[_level_index(c, levels[c]) for c in spec.categorical])


def numeric_means(train: DataFrame, spec: ModelSpec) -> dict[str, float]:
    """Training means of the numeric features (0 for a feature that is always null): the logistic baseline's
    imputation."""
    row = train.select(*[F.avg(F.col(c).cast("double")).alias(c) for c in spec.numeric]).first()
    return {c: float(row[c]) if row is not None and row[c] is not None else 0.0 for c in spec.numeric}


def logistic_vector(spec: ModelSpec, levels: Mapping[str, Sequence[str]], means: Mapping[str, float]) -> Column:
    """The baseline's input on the same features: numeric features with nulls set to the training mean, and a
    one-hot column per categorical level."""
    numeric = [F.coalesce(F.col(c).cast("double"), F.lit(means[c])) for c in spec.numeric]
    onehot = [(F.col(c).cast("string") == F.lit(v)).cast("double") for c in spec.categorical for v in levels[c]]
    return array_to_vector(F.array(*numeric, *[F.coalesce(x, F.lit(0.0)) for x in onehot]))
