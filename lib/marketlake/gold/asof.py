"""Point-in-time (as-of) join: for each left row, the latest right row with the same keys at or before its time.

How it works (an interval join, no union of the two sides and no window over the left side):
1. The right side becomes validity intervals per key: row i is valid from its time until the next distinct time
   of the same key (the last row of a key stays valid for ever). Of several right rows with the same key and time
   only the last by `tiebreak` keeps a non-empty interval, so ties resolve the same way on every run.
2. Each key's time axis is cut into buckets sized so that a bucket holds about `bucket_rows` right rows *of that
   key*; an interval is copied into every bucket it overlaps. A key with a huge share of the rows gets more,
   narrower buckets, so skew does not pile one key onto one task or one hash-table entry. Buckets are numbered per
   key (the bucket's start divided by its width), so no step needs every key in one task.
3. Left rows look up their key's bucket layout (a small per-key table, broadcast), then join on (key, bucket)
   with a range condition. Intervals of one key do not overlap, so every left row matches at most one right row;
   the join is a left outer join, so rows without a match (unknown key, earlier than the key's first right row,
   outside the tolerance, null time) are kept with nulls.
A tolerance shortens the intervals before they are copied into buckets, so it also cuts work. The bucketed
intervals are broadcast when their estimated size (the right rows' columns that are copied, times the at most
1 + 1/bucket_rows copies per row) is small enough, and the left side then never moves; otherwise both sides are
shuffled on (key, bucket). The per-key layout (one row per key) is always broadcast.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DataType,
    DateType,
    IntegralType,
    MapType,
    TimestampNTZType,
    TimestampType,
)

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "broadcast", "shuffle")
_T, _NEXT, _TO, _SLOT = "_asof_t", "_asof_next", "_asof_to", "_asof_slot"
_COUNT, _MIN, _MAX = "_asof_count", "_asof_min", "_asof_max"
_WIDTH, _FIRST, _LAST = "_asof_width", "_asof_first", "_asof_last"


def _ticks(column: Column, data_type: DataType) -> Column:
    """A time column as a long on one axis: microseconds for timestamps, days for dates, the value for integers."""
    if isinstance(data_type, TimestampType):
        return F.unix_micros(column)
    if isinstance(data_type, TimestampNTZType):
        return F.unix_micros(column.cast("timestamp"))
    if isinstance(data_type, DateType):
        return F.unix_date(column).cast("long")
    if isinstance(data_type, IntegralType):
        return column.cast("long")
    raise TypeError(f"as-of time type {data_type.simpleString()} is not supported; use a timestamp, date or integer")


def _axis(data_type: DataType) -> str:
    """Which time axis a type lives on: both timestamp flavours share one, dates and integers have their own."""
    if isinstance(data_type, (TimestampType, TimestampNTZType)):
        return "timestamp"
    return "date" if isinstance(data_type, DateType) else "integer"


def _tolerance_ticks(tolerance: timedelta | int | None, data_type: DataType) -> int | None:
    if tolerance is None:
        return None
    if isinstance(tolerance, timedelta):
        if isinstance(data_type, DateType):
            return tolerance.days
        if not isinstance(data_type, (TimestampType, TimestampNTZType)):
            raise TypeError("a timedelta tolerance needs timestamp or date time columns")
        return tolerance // timedelta(microseconds=1)
    return int(tolerance)


def asof_join(
    left: DataFrame,
    right: DataFrame,
    on: str | Sequence[str],
    left_time: str,
    right_time: str,
    *,
    inclusive: bool = True,
    tolerance: timedelta | int | None = None,
    tiebreak: Sequence[str] | None = None,
    right_prefix: str = "",
    strategy: str = "auto",
    broadcast_bytes: int = 256 << 20,
    bucket_rows: int = 4,
) -> DataFrame:
    """Backward as-of join of `right` onto `left`, one output row per left row.

    on           equality key column(s), present on both sides (rows with a null key never match)
    left_time    the left row's time; right_time the right row's time (timestamp, date or integer, same kind)
    inclusive    True: match right rows at or before the left time; False: strictly before
    tolerance    match only right rows at most this far back (a timedelta, or ticks for integer times)
    tiebreak     right columns ordering rows with the same key and time; the last wins (default: every
                 sortable right column, so the choice never depends on the data's physical order)
    right_prefix prefix for the right columns added to the output (names must not collide with left's)
    strategy     auto (broadcast the bucketed right side when its estimated size is at most broadcast_bytes),
                 broadcast or shuffle (both sides move; for a right side too large to copy to every task)
    bucket_rows  right rows per key bucket: smaller means fewer candidate rows per left row, more copies

    Output: the left columns in their order, then every right column except the keys (right_time included).
    Left rows without a match, or with a null time or key, are kept with nulls in the right columns.
    """
    keys = [on] if isinstance(on, str) else list(on)
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, not '{strategy}'")
    if bucket_rows < 1:
        raise ValueError("bucket_rows must be at least 1")
    for side, df, cols in (("left", left, [*keys, left_time]), ("right", right, [*keys, right_time])):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(f"{side} side has no column(s) {missing}")
    left_type, right_type = left.schema[left_time].dataType, right.schema[right_time].dataType
    if _axis(left_type) != _axis(right_type):
        raise TypeError(f"time columns differ in kind: {left_type.simpleString()} vs {right_type.simpleString()}")
    payload = [c for c in right.columns if c not in keys]
    renamed = {c: f"{right_prefix}{c}" for c in payload}
    clash = sorted(set(renamed.values()) & set(left.columns))
    if clash:
        raise ValueError(f"right column(s) {clash} also exist on the left; pass right_prefix or rename them")
    if tiebreak is None:
        tiebreak = [c for c in payload if c != right_time and not isinstance(right.schema[c].dataType, MapType)]
    tol = _tolerance_ticks(tolerance, right_type)

    stats = _key_buckets(right, keys, right_time, right_type, bucket_rows)
    right_slots = _slotted_intervals(
        _intervals(right, keys, right_time, right_type, list(tiebreak)), stats, keys, inclusive, tol
    )
    if strategy == "auto":
        size = broadcast_size(right, keys, payload, bucket_rows)
        strategy = "broadcast" if size <= broadcast_bytes else "shuffle"
        log.info("asof_join: bucketed right side ~%d bytes -> %s strategy", size, strategy)
    if strategy == "broadcast":
        right_slots = F.broadcast(right_slots)

    lt = _ticks(F.col(f"`{left_time}`"), left_type)
    bucket = F.least(F.greatest(F.floor(lt / F.col(_WIDTH)), F.col(_FIRST)), F.col(_LAST))
    probe = left.join(F.broadcast(stats), keys, "left").withColumn(_SLOT, F.when(lt.isNotNull(), bucket)).alias("l")
    lt = _ticks(F.col(f"l.`{left_time}`"), left_type)
    start, end = F.col(f"r.{_T}"), F.col(f"r.{_TO}")
    cond = [F.col(f"l.`{k}`") == F.col(f"r.`{k}`") for k in keys] + [F.col(f"l.{_SLOT}") == F.col(f"r.{_SLOT}")]
    if inclusive:
        cond += [start <= lt, end.isNull() | (lt < end)]
    else:
        cond += [start < lt, end.isNull() | (lt <= end)]
    if tol is not None:
        cond.append(lt - start <= F.lit(tol))
    return probe.join(right_slots.alias("r"), cond, "left").select(
        *[F.col(f"l.`{c}`").alias(c) for c in left.columns],
        *[F.col(f"r.`{c}`").alias(renamed[c]) for c in payload],
    )


def _intervals(
    right: DataFrame, keys: list[str], right_time: str, right_type: DataType, tiebreak: list[str]
) -> DataFrame:
    """Right rows with a usable key and time, each with the next distinct time of its key (`_asof_next`).
    Of rows sharing key and time only the last by tiebreak survives (the others could never be chosen)."""
    order = [F.col(_T), *[F.col(f"`{c}`").asc_nulls_first() for c in tiebreak]]
    by_key = Window.partitionBy(*keys).orderBy(*order)
    with_next = (
        right.where(_usable(keys, right_time))
        .withColumn(_T, _ticks(F.col(f"`{right_time}`"), right_type))
        .withColumn(_NEXT, F.lead(_T).over(by_key))
    )
    return with_next.where(F.col(_NEXT).isNull() | (F.col(_NEXT) > F.col(_T)))


def _key_buckets(
    right: DataFrame, keys: list[str], right_time: str, right_type: DataType, bucket_rows: int
) -> DataFrame:
    """Per key: bucket width (the key's time span shared out so that a bucket holds ~bucket_rows of its rows),
    and its first and last bucket (a bucket's number is its start divided by the width)."""
    counts = (
        right.where(_usable(keys, right_time))
        .withColumn(_T, _ticks(F.col(f"`{right_time}`"), right_type))
        .groupBy(*keys)
        .agg(F.count(F.lit(1)).alias(_COUNT), F.min(_T).alias(_MIN), F.max(_T).alias(_MAX))
    )
    width = F.greatest(
        F.lit(1).cast("long"), F.ceil((F.col(_MAX) - F.col(_MIN) + 1) * bucket_rows / F.col(_COUNT)).cast("long")
    )
    first, last = F.floor(F.col(_MIN) / F.col(_WIDTH)), F.floor(F.col(_MAX) / F.col(_WIDTH))
    return counts.withColumn(_WIDTH, width).select(*keys, _WIDTH, first.alias(_FIRST), last.alias(_LAST))


def _slotted_intervals(
    intervals: DataFrame, stats: DataFrame, keys: list[str], inclusive: bool, tol: int | None
) -> DataFrame:
    """Each interval copied into every bucket of its key it overlaps, after the tolerance shortens it."""
    # The last tick a left row can have and still match this interval.
    last_tick = F.col(_NEXT) - 1 if inclusive else F.col(_NEXT)
    if tol is not None:
        reach = F.col(_T) + tol
        last_tick = F.when(F.col(_NEXT).isNull(), reach).otherwise(F.least(last_tick, reach))
    first_bucket = F.floor(F.col(_T) / F.col(_WIDTH))
    last_bucket = F.least(F.coalesce(F.floor(last_tick / F.col(_WIDTH)), F.col(_LAST)), F.col(_LAST))
    buckets = F.sequence(first_bucket, F.greatest(first_bucket, last_bucket))
    return (
        intervals.join(F.broadcast(stats), keys)
        .withColumn(_SLOT, F.explode(buckets))
        .withColumnRenamed(_NEXT, _TO)
        .drop(_WIDTH, _FIRST, _LAST)
    )


def _usable(keys: list[str], time: str) -> Column:
    usable = F.col(f"`{time}`").isNotNull()
    for k in keys:
        usable &= F.col(f"`{k}`").isNotNull()
    return usable


def broadcast_size(right: DataFrame, keys: list[str], payload: list[str], bucket_rows: int) -> int:
    """Estimated bytes of the bucketed intervals: the right rows' keys and payload plus three longs (start, end,
    bucket) per copy, and at most 1 + 1/bucket_rows copies per row (a key's intervals do not overlap, so beyond
    one copy each, a key adds one per bucket, and it has about rows / bucket_rows buckets)."""
    columns = right.select(*[F.col(f"`{c}`") for c in [*keys, *payload]], *[F.lit(0).cast("long")] * 3)
    return int(_estimated_bytes(columns) * (1 + 1 / bucket_rows))


def _estimated_bytes(df: DataFrame) -> int:
    """Spark's size estimate of a frame's optimized plan (no job runs); huge when Spark cannot tell."""
    try:
        return int(str(df._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()))
    except Exception:  # not a classic (py4j) DataFrame: assume large
        return 1 << 62
