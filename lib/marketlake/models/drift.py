"""Population stability index (PSI) of each feature between the training window and each scored day.

Numeric features are cut at their training deciles, categorical ones by level; missing values are a bucket of
their own (-1). PSI = sum over buckets of (actual - expected) * ln(actual / expected), shares floored at 1e-4."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from marketlake.models.bundle import ModelBundle
from marketlake.models.features import level_position

FLOOR = 1e-4


def _bucket(column: str, edges: Sequence[float] | None, levels: Sequence[str] | None) -> Column:
    if levels is not None:
        return level_position(column, levels)
    x = F.col(column).cast("double")
    above = sum((F.when(x > F.lit(e), 1).otherwise(0) for e in edges or ()), F.lit(0))
    return F.when(x.isNull() | F.isnan(x), F.lit(-1)).otherwise(above).cast("int")


def _shares(df: DataFrame, buckets: Mapping[str, Column], by: Sequence[str] = ()) -> DataFrame:
    """Share of rows per (by..., feature, bucket)."""
    stacked = df.select(
        *by, F.explode(F.array(*[F.struct(F.lit(f).alias("feature"), b.alias("bucket")) for f, b in buckets.items()]))
    ).select(*by, "col.feature", "col.bucket")
    counts = stacked.groupBy(*by, "feature", "bucket").count()
    total = F.sum("count").over(Window.partitionBy(*by, "feature"))
    return counts.select(*by, "feature", "bucket", (F.col("count") / total).alias("share"))


def reference(
    train: DataFrame, numeric: Sequence[str], levels: Mapping[str, Sequence[str]], bins: int
) -> dict[str, dict[str, Any]]:
    """The training distribution per feature: bucket edges (deciles for numeric features) and bucket shares."""
    probs = [i / bins for i in range(1, bins)]
    train = train.select(*[F.col(c).cast("double").alias(c) for c in numeric], *levels)
    quantiles = train.approxQuantile(list(numeric), probs, 0.001) if numeric else []
    edges = {c: sorted(set(q)) for c, q in zip(numeric, quantiles, strict=True)}
    buckets = {c: _bucket(c, edges[c], None) for c in numeric}
    buckets.update({c: _bucket(c, None, lv) for c, lv in levels.items()})
    shares: dict[str, dict[str, float]] = {c: {} for c in buckets}
    for r in _shares(train, buckets).collect():
        shares[r["feature"]][str(r["bucket"])] = float(r["share"])
    return {c: {"edges": edges.get(c, []), "shares": shares[c]} for c in buckets}


def psi(expected: Mapping[str, float], actual: Mapping[str, float]) -> float:
    total = 0.0
    for bucket in set(expected) | set(actual):
        e, a = max(expected.get(bucket, 0.0), FLOOR), max(actual.get(bucket, 0.0), FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def daily_psi(df: DataFrame, bundle: ModelBundle, date: str) -> list[dict[str, Any]]:
    """PSI per (date, feature) of df's rows against the bundle's training distribution."""
    ref = bundle.reference
    buckets = {
        c: _bucket(c, ref[c]["edges"], bundle.levels[c] if c in bundle.categorical else None) for c in bundle.features
    }
    actual: dict[tuple[Any, str], dict[str, float]] = {}
    for r in _shares(df, buckets, [date]).collect():
        actual.setdefault((r[date], r["feature"]), {})[str(r["bucket"])] = float(r["share"])
    return [
        {"date": day, "feature": feature, "psi": psi(ref[feature]["shares"], shares)}
        for (day, feature), shares in sorted(actual.items())
    ]
