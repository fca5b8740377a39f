"""asof_join against pandas.merge_asof (the oracle) on generated data with ties, nulls, unmatched rows and a key
that holds most of the rows; plus the documented example and argument errors."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from marketlake.gold.asof import _estimated_bytes, asof_join
from tests.frames import to_spark

LEFT_SCHEMA = "purchase_id long, product_id string, purchased_at timestamp, amount double"
RIGHT_SCHEMA = "product_id string, observed_at timestamp, trend_id string, velocity double"
OUT_SCHEMA = f"{LEFT_SCHEMA}, observed_at timestamp, trend_id string, velocity double"
T0 = datetime(2026, 3, 1)


def _frames(seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """~3k purchases and ~1.2k trend readings on a minute grid (so exact ties and equal times are common).
    Product p0 holds 60 % of the rows on both sides; p_unknown has no readings; some rows have null keys/times."""
    rng = np.random.default_rng(seed)
    products = np.array([f"p{i}" for i in range(25)])
    weights = np.r_[0.6, np.full(24, 0.4 / 24)]

    def minutes(n: int) -> list[datetime]:
        return [T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 600, n)]

    n_right = 1200
    right = pd.DataFrame(
        {
            "product_id": rng.choice(products, n_right, p=weights),
            "observed_at": minutes(n_right),
            "trend_id": [f"t{rng.integers(0, 40)}" for _ in range(n_right)],
            "velocity": rng.integers(0, 5, n_right).astype(float),
        }
    )
    # Ties: the same product and minute twice with other content.
    ties = right.sample(150, random_state=seed).assign(trend_id=lambda d: d["trend_id"] + "b", velocity=9.0)
    right = pd.concat([right, ties], ignore_index=True)
    right.loc[right.sample(10, random_state=1).index, "observed_at"] = pd.NaT
    right.loc[right.sample(10, random_state=2).index, "product_id"] = None

    n_left = 3000
    left = pd.DataFrame(
        {
            "purchase_id": np.arange(n_left, dtype="int64"),
            "product_id": rng.choice(np.r_[products, ["p_unknown"]], n_left, p=np.r_[weights * 0.97, 0.03]),
            "purchased_at": [t - timedelta(minutes=30) for t in minutes(n_left)],  # some before any reading
            "amount": rng.random(n_left).round(3),
        }
    )
    left.loc[left.sample(40, random_state=3).index, "purchased_at"] = pd.NaT
    left.loc[left.sample(40, random_state=4).index, "product_id"] = None
    return left, right


def oracle(left: pd.DataFrame, right: pd.DataFrame, inclusive: bool, tolerance: timedelta | None) -> pd.DataFrame:
    """pandas.merge_asof with the documented conventions: null keys and times never match, and of right rows with
    the same key and time the last by (trend_id, velocity) wins."""
    usable_r = right.dropna(subset=["product_id", "observed_at"])
    usable_r = usable_r.sort_values(["observed_at", "trend_id", "velocity"], kind="stable")
    usable_l = left.dropna(subset=["product_id", "purchased_at"]).sort_values("purchased_at", kind="stable")
    matched = pd.merge_asof(
        usable_l,
        usable_r,
        left_on="purchased_at",
        right_on="observed_at",
        by="product_id",
        direction="backward",
        allow_exact_matches=inclusive,
        tolerance=pd.Timedelta(tolerance) if tolerance else None,
    )
    rest = left[~left["purchase_id"].isin(matched["purchase_id"])]
    out = pd.concat([matched, rest], ignore_index=True).sort_values("purchase_id")
    return out[["purchase_id", "product_id", "purchased_at", "amount", "observed_at", "trend_id", "velocity"]]


@pytest.mark.parametrize(
    ("inclusive", "tolerance", "strategy"),
    [
        (True, None, "broadcast"),
        (True, None, "shuffle"),
        (False, None, "shuffle"),
        (True, timedelta(minutes=20), "broadcast"),
        (False, timedelta(minutes=20), "auto"),
    ],
)
def test_asof_join_matches_pandas_merge_asof(spark: SparkSession, inclusive, tolerance, strategy) -> None:
    left, right = _frames()
    result = asof_join(
        to_spark(spark, left, LEFT_SCHEMA),
        to_spark(spark, right, RIGHT_SCHEMA),
        "product_id",
        "purchased_at",
        "observed_at",
        inclusive=inclusive,
        tolerance=tolerance,
        tiebreak=["trend_id", "velocity"],
        strategy=strategy,
    )
    expected = to_spark(spark, oracle(left, right, inclusive, tolerance), OUT_SCHEMA)
    assert result.count() == len(left)
    assertDataFrameEqual(result, expected, checkRowOrder=False)
    matched = expected.where("trend_id IS NOT NULL").count()
    assert 0.5 * len(left) < matched < len(left)  # the data exercises both matches and misses


def test_no_step_sees_every_key_and_auto_sizes_what_it_broadcasts(spark: SparkSession) -> None:
    """No step gathers every key into one task (a window without partitions, or a global sort, plans an exchange to
    a single partition), and `auto` weighs the bucketed intervals it would broadcast, which outgrow the right side
    itself: given a limit just above the right side's own estimate, it shuffles, with the same result."""
    left_pd, right_pd = _frames()
    left, right = to_spark(spark, left_pd, LEFT_SCHEMA), to_spark(spark, right_pd, RIGHT_SCHEMA)
    expected = to_spark(spark, oracle(left_pd, right_pd, True, None), OUT_SCHEMA)
    args = (left, right, "product_id", "purchased_at", "observed_at")
    plans = {}
    for strategy, limit in (("broadcast", 256 << 20), ("shuffle", 256 << 20), ("auto", _estimated_bytes(right) + 1)):
        result = asof_join(*args, tiebreak=["trend_id", "velocity"], strategy=strategy, broadcast_bytes=limit)
        plans[strategy] = result._jdf.queryExecution().executedPlan().toString()
        assert "SinglePartition" not in plans[strategy], plans[strategy]
        assertDataFrameEqual(result, expected, checkRowOrder=False)
    assert "SortMergeJoin" not in plans["broadcast"] and "SortMergeJoin" in plans["shuffle"]
    assert "SortMergeJoin" in plans["auto"]


def test_asof_join_picks_the_latest_trend_at_or_before_the_purchase(spark: SparkSession) -> None:
    """The documented example: trends at 10:00, 14:00 and 20:00, a purchase at 15:30 -> the 14:00 trend; a purchase
    at exactly 14:00 takes the 14:00 trend only when inclusive."""
    at = lambda h, m=0: datetime(2026, 3, 1, h, m)  # noqa: E731
    trends = spark.createDataFrame(
        [("p1", at(10), "t10", 1.0), ("p1", at(14), "t14", 2.0), ("p1", at(20), "t20", 3.0)], RIGHT_SCHEMA
    )
    purchases = spark.createDataFrame(
        [(1, "p1", at(15, 30), 10.0), (2, "p1", at(14), 5.0), (3, "p1", at(9), 1.0), (4, "p2", at(15), 2.0)],
        LEFT_SCHEMA,
    )
    expected = spark.createDataFrame(
        [
            (1, "p1", at(15, 30), 10.0, at(14), "t14", 2.0),
            (2, "p1", at(14), 5.0, at(14), "t14", 2.0),
            (3, "p1", at(9), 1.0, None, None, None),
            (4, "p2", at(15), 2.0, None, None, None),
        ],
        OUT_SCHEMA,
    )
    result = asof_join(purchases, trends, "product_id", "purchased_at", "observed_at")
    assertDataFrameEqual(result.orderBy("purchase_id"), expected, checkRowOrder=True)
    exclusive = asof_join(purchases, trends, "product_id", "purchased_at", "observed_at", inclusive=False)
    assert exclusive.where("purchase_id = 2").first()["trend_id"] == "t10"


def test_asof_join_rejects_clashing_columns_and_mixed_time_kinds(spark: SparkSession) -> None:
    left = spark.createDataFrame([(1, "p1", datetime(2026, 3, 1))], "id long, product_id string, ts timestamp")
    right = spark.createDataFrame([("p1", datetime(2026, 3, 1), 1)], "product_id string, ts timestamp, id long")
    with pytest.raises(ValueError, match="also exist on the left"):
        asof_join(left, right, "product_id", "ts", "ts")
    prefixed = asof_join(left, right, "product_id", "ts", "ts", right_prefix="trend_")
    assert prefixed.columns == ["id", "product_id", "ts", "trend_ts", "trend_id"]
    numeric = spark.createDataFrame([("p1", 5)], "product_id string, n long")
    with pytest.raises(TypeError, match="differ in kind"):
        asof_join(left, numeric, "product_id", "ts", "n")
