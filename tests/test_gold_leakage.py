"""Leakage: telemetry and activity that arrive after a purchase (or an as-of date) change no feature of it, from
raw telemetry through silver's trend signals to gold. Only labels may change."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from marketlake.config import CONF_DIR
from marketlake.gold.customers import churn_features
from marketlake.gold.spec import load_gold
from marketlake.gold.trends import purchase_outcomes
from marketlake.silver.conform import trend_signals
from tests.frames import to_spark
from tests.test_gold_customers import LOGINS, TRADES, USERS, WALLET, make_activity

PARAMS = load_gold(CONF_DIR).params
T0 = datetime(2026, 3, 1)
CUTOFF = datetime(2026, 3, 8)  # purchases before it are compared; everything added is at or after it
TELEMETRY = (
    "event_id string, trend_id string, product_id string, creator_id string, platform string, views long, "
    "likes long, comments long, shares long, engagement_velocity double, comment_sentiment double, "
    "observed_at timestamp, event_date date"
)
LINES = (
    "order_id string, line_no int, customer_id string, product_id string, quantity int, unit_price decimal(12,2), "
    "unit_list_price decimal(12,2), line_total_usd decimal(12,2), created_at timestamp, event_date date"
)
ORDERS = (
    "order_id string, customer_id string, channel string, platform string, device string, "
    "order_total_usd decimal(12,2), created_at timestamp, event_date date"
)
RETURNS = (
    "return_id string, order_id string, product_id string, reason_code string, requested_at timestamp, event_date date"
)
LABELS = {"return_kind", "excluded_reason", "returned_within_30d", "label_complete"}


def _telemetry(spark: SparkSession, rng: np.random.Generator, start: datetime, hours: int, prefix: str) -> DataFrame:
    rows = []
    for i in range(hours * 3):
        at = start + timedelta(minutes=int(i * 20 + rng.integers(0, 20)))
        product = f"p{rng.integers(0, 8)}"
        rows.append(
            (f"{prefix}{i}", f"tr{product}-{i // 30}", product, f"c{rng.integers(0, 4)}", "reels",
             int(rng.integers(100, 10_000)), int(rng.integers(10, 900)), int(rng.integers(0, 50)),
             int(rng.integers(0, 40)), float(rng.gamma(2.0, 20.0)), float(rng.uniform(-1, 1)), at, at.date())
        )  # fmt: skip
    return spark.createDataFrame(rows, TELEMETRY)


def _commerce(spark: SparkSession, rng: np.random.Generator, start: datetime, days: int, prefix: str):
    lines, orders, returns = [], [], []
    for i in range(days * 25):
        at = start + timedelta(minutes=int(rng.integers(0, days * 1440)))
        order_id, customer = f"{prefix}o{i}", f"cust{rng.integers(0, 30)}"
        price = Decimal(int(rng.integers(500, 5000))) / 100
        list_price = price + Decimal(int(rng.integers(0, 800))) / 100
        product = f"p{rng.integers(0, 8)}"
        lines.append((order_id, 1, customer, product, 1, price, list_price, price, at, at.date()))
        orders.append((order_id, customer, "social", "shopify", "mobile", price, at, at.date()))
        if rng.random() < 0.35:
            asked = at + timedelta(days=float(rng.uniform(0.5, 12)))
            reason = rng.choice(["SIZE_FIT", "IMPULSE", "DEFECTIVE", "FRAUD_SUSPECTED"])
            returns.append((f"{prefix}r{i}", order_id, product, str(reason), asked, asked.date()))
    return (
        spark.createDataFrame(lines, LINES),
        spark.createDataFrame(orders, ORDERS),
        spark.createDataFrame(returns, RETURNS),
    )


def test_later_telemetry_and_activity_change_no_purchase_feature(spark: SparkSession) -> None:
    rng = np.random.default_rng(5)
    telemetry = _telemetry(spark, rng, T0, 14 * 24, "e")
    lines, orders, returns = _commerce(spark, rng, T0 + timedelta(days=1), 13, "a")
    start, end = date(2026, 3, 2), date(2026, 3, 14)

    def outcomes(tel: DataFrame, li: DataFrame, od: DataFrame, rt: DataFrame) -> DataFrame:
        inputs = {
            "trends_trend_signals": trend_signals(tel),
            "commerce_order_lines": li,
            "commerce_orders": od,
            "commerce_returns": rt,
        }
        return purchase_outcomes(inputs, start, end, PARAMS).where(F.col("purchased_at") < F.lit(CUTOFF))

    base = outcomes(telemetry.where(F.col("observed_at") < CUTOFF), *(f.where(F.col(c) < CUTOFF) for f, c in (
        (lines, "created_at"), (orders, "created_at"), (returns, "requested_at"))))  # fmt: skip
    # Later: the rest of the telemetry plus spikes on every product, more purchases and returns.
    spikes = _telemetry(spark, rng, CUTOFF, 24, "s").withColumn("views", F.col("views") * 1000)
    more_lines, more_orders, more_returns = _commerce(spark, rng, CUTOFF, 5, "b")
    later = outcomes(
        telemetry.unionByName(spikes), lines.unionByName(more_lines), orders.unionByName(more_orders),
        returns.unionByName(more_returns),
    )  # fmt: skip

    features = [c for c in base.columns if c not in LABELS]
    assert base.count() > 100 and base.where("trend_id IS NOT NULL AND creator_regret_rate IS NOT NULL").count() > 20
    assert base.where("customer_prior_orders_90d > 0").count() > 20
    # A purchase nobody returned is a negative: false, never an unknown (null is only for defect and fraud).
    assert base.where("returned_within_30d IS NULL AND excluded_reason IS NULL").isEmpty()
    assert base.where("return_kind IS NULL AND NOT returned_within_30d").count() > 100
    assertDataFrameEqual(later.select(features), base.select(features), checkRowOrder=False)
    # The labels are allowed to (and here do) change: returns requested after the cutoff.
    changed = later.select("order_id", "returned_within_30d").exceptAll(base.select("order_id", "returned_within_30d"))
    assert changed.count() > 0


def test_later_activity_changes_no_churn_feature(spark: SparkSession) -> None:
    data = make_activity()  # the same generated users and activity as the oracle tests
    as_of = date(2026, 4, 20)

    def frames(cut: bool) -> dict[str, DataFrame]:
        def keep(name: str, column: str) -> DataFrame:
            pdf = data[name]
            return to_spark(spark, pdf[pdf[column] < datetime(2026, 4, 20)] if cut else pdf, SCHEMAS[name])

        return {
            "exchange_users": to_spark(spark, data["users"], USERS),
            "exchange_trades": keep("trades", "executed_at"),
            "exchange_logins": keep("logins", "login_at"),
            "exchange_wallet_transactions": keep("wallet", "created_at"),
        }

    before = churn_features(frames(cut=True), as_of, as_of, PARAMS)
    after = churn_features(frames(cut=False), as_of, as_of, PARAMS)
    features = [c for c in before.columns if c not in ("churned", "label_complete")]
    assertDataFrameEqual(after.select(features), before.select(features), checkRowOrder=False)
    assert before.where("churned").count() > after.where("churned").count()  # labels see the later activity


SCHEMAS = {"trades": TRADES, "logins": LOGINS, "wallet": WALLET}
