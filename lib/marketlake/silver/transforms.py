"""Silver transforms: pure DataFrame -> DataFrame steps that turn bronze records into one clean row per key."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def latest_per_key(keys: Sequence[str], event_time: str) -> Callable[[DataFrame], DataFrame]:
    """One row per key: the latest by event time. Exact duplicates collapse; rows with the same key and event
    time but other content are ordered by their full content, so the choice is the same on every run."""

    def _(df: DataFrame) -> DataFrame:
        content = F.sha2(F.to_json(F.struct(*[F.col(c) for c in df.columns])), 256)
        window = Window.partitionBy(*keys).orderBy(F.col(event_time).desc_nulls_last(), content.desc())
        return df.dropDuplicates().withColumn("_rank", F.row_number().over(window)).where("_rank = 1").drop("_rank")

    return _
