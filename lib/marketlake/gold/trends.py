"""gold.fact_trend_purchase_outcomes: which trend was live when a customer bought, and was the purchase regretted?

Every feature of a purchase at time t uses only data from before t:
- the trend reading is the latest for the product at or before t (asof_join), and its derived values (velocity
  over the 24 h up to that reading, decay, half-life, peak so far) use readings up to it;
- creator and customer history count purchases made, and returns requested, strictly before t.
Only the label looks ahead: a regret return requested within return_window_days of the purchase.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from marketlake.gold.asof import asof_join
from marketlake.gold.common import Inputs, between, first_match, ratio

DAY_US = 86_400 * 1_000_000


def _trailing(partition: str, order_us: Column, days: float) -> Window:
    """Rows of the same partition in [t - days, t) (strictly before t), ordered by microseconds."""
    return Window.partitionBy(partition).orderBy(order_us).rangeBetween(-int(days * DAY_US), -1)


def trend_readings(signals: DataFrame, velocity_hours: float) -> DataFrame:
    """Trend readings with the values a purchase after them may use: mean velocity of the product's readings in
    the velocity_hours up to and including this one, the trend's peak time so far, and its half-life estimated
    from the decay since that peak (velocity halves every half-life: h = hours_since_peak * ln 2 / -ln(decay))."""
    us = F.unix_micros("observed_at")
    last_day = Window.partitionBy("product_id").orderBy(us).rangeBetween(-int(velocity_hours * 3600e6), 0)
    decay = F.col("decay_ratio")
    half_life = F.when(
        (decay > 0) & (decay < 1) & (F.col("hours_since_peak") > 0),
        F.col("hours_since_peak") * math.log(2) / -F.log(decay),
    )
    return signals.select(
        "product_id",
        "observed_at",
        "trend_id",
        "creator_id",
        F.col("platform").alias("trend_platform"),
        F.col("velocity").alias("trend_velocity"),
        F.avg("velocity").over(last_day).alias("velocity_24h"),
        "decay_ratio",
        half_life.alias("half_life_hours"),
        F.timestamp_micros(us - (F.col("hours_since_peak") * 3600e6).cast("long")).alias("trend_peak_at"),
        "sentiment_z",
        "bot_spike",
    )


def return_kinds(returns: DataFrame, params: Mapping[str, Any]) -> DataFrame:
    """The first return per order line (order_id, product_id) with its kind: regret, defect or fraud."""
    kinds = params["trends"]["return_kinds"]
    kind = first_match([(name, F.col("reason_code").isin(*reasons)) for name, reasons in kinds.items()], None)
    first = Window.partitionBy("order_id", "product_id").orderBy("requested_at", "return_id")
    return (
        returns.select("order_id", "product_id", "return_id", "requested_at", "reason_code", kind.alias("return_kind"))
        .withColumn("_n", F.row_number().over(first))
        .where("_n = 1")
        .drop("_n")
    )


def purchase_outcomes(inputs: Inputs, start: date, end: date, params: Mapping[str, Any]) -> DataFrame:
    conf = params["trends"]
    return_days = int(conf["return_window_days"])
    orders = inputs["commerce_orders"].select(
        "order_id",
        F.coalesce("channel", "platform").alias("channel"),
        F.coalesce("device", F.lit("unknown")).alias("device"),
        F.col("order_total_usd").cast("double").alias("order_total_usd"),
    )
    # Purchases without a product (unknown SKU) cannot be linked to a trend and are left out.
    lines = (
        inputs["commerce_order_lines"]
        .where(F.col("product_id").isNotNull())
        .select(
            "order_id",
            "line_no",
            "customer_id",
            "product_id",
            "quantity",
            "unit_price",
            "unit_list_price",
            "line_total_usd",
            F.col("created_at").alias("purchased_at"),
            F.col("event_date").alias("purchase_date"),
        )
        .join(orders, "order_id", "left")
    )
    readings = trend_readings(inputs["trends_trend_signals"], float(conf["velocity_window_hours"]))
    linked = asof_join(lines, readings, "product_id", "purchased_at", "observed_at")
    first_returns = return_kinds(inputs["commerce_returns"], params)
    outcomes = linked.join(first_returns, ["order_id", "product_id"], "left")
    within = F.col("requested_at") <= F.col("purchased_at") + F.expr(f"INTERVAL {return_days} DAYS")
    # A purchase without a return is a negative (false), not an unknown: compare with null-safe equality.
    regret = F.col("return_kind").eqNullSafe("regret") & F.coalesce(within, F.lit(False))
    purchases = outcomes.select(
        "*",
        regret.alias("_regret_within"),
        F.when(F.col("return_kind").isin("defect", "fraud") & within, F.col("return_kind")).alias("excluded_reason"),
    )
    purchases = _with_creator_history(purchases, float(conf["creator_window_days"]))
    purchases = _with_customer_history(purchases, inputs, float(conf["customer_window_days"]))
    horizon = inputs["commerce_order_lines"].agg(F.max("event_date").alias("_horizon"))
    # (list - paid) / list clipped to [0, 1]; unknown (null) without a positive list price
    share = ratio(F.col("unit_list_price") - F.col("unit_price"), F.col("unit_list_price"))
    discount = F.when(share.isNotNull(), F.least(F.greatest(share, F.lit(0.0)), F.lit(1.0)))
    return (
        purchases.where(between("purchase_date", start, end))
        .crossJoin(horizon)
        .select(
            "purchase_date",
            "order_id",
            "line_no",
            "customer_id",
            "product_id",
            "purchased_at",
            "quantity",
            "line_total_usd",
            "trend_id",
            "creator_id",
            "trend_platform",
            F.col("observed_at").alias("trend_observed_at"),
            ((F.unix_micros("purchased_at") - F.unix_micros("observed_at")) / 3600e6).alias("hours_since_reading"),
            "trend_velocity",
            "velocity_24h",
            "half_life_hours",
            ((F.unix_micros("purchased_at") - F.unix_micros("trend_peak_at")) / 3600e6).alias("hours_since_peak"),
            "decay_ratio",
            "sentiment_z",
            "bot_spike",
            "creator_prior_purchases",
            "creator_regret_rate",
            "customer_prior_orders_90d",
            "customer_prior_return_rate_90d",
            "customer_days_since_prior_order",
            "customer_prior_aov_usd",
            discount.alias("discount_pct"),
            F.hour("purchased_at").alias("hour_of_day"),
            "device",
            "channel",
            (F.coalesce(F.col("velocity_24h"), F.lit(0.0)) * discount).alias("velocity_x_discount"),
            "return_kind",
            "excluded_reason",
            F.when(F.col("excluded_reason").isNull(), F.col("_regret_within")).alias("returned_within_30d"),
            (F.date_add("purchase_date", return_days) <= F.col("_horizon")).alias("label_complete"),
        )
    )


def _with_creator_history(purchases: DataFrame, days: float) -> DataFrame:
    """creator_prior_purchases: purchases linked to the creator's trends in the `days` before this one;
    creator_regret_rate: regret returns of those purchases requested before this purchase / those purchases.

    A regret return of a purchase at p requested at r counts for the creator's purchases at t in (max(r, p),
    p + days]: a +1 event at max(r, p) and a -1 event at p + days, summed over the events strictly before t."""
    linked = purchases.where(F.col("creator_id").isNotNull())
    span_us = int(days * DAY_US)
    bought = F.unix_micros("purchased_at")
    counts_from = F.greatest(F.unix_micros("requested_at"), bought)
    regrets = linked.where((F.col("return_kind") == "regret") & (counts_from < bought + span_us))

    def events(rows: DataFrame, at: Column, purchase: int, delta: int) -> DataFrame:
        line = (
            [F.col("order_id"), F.col("line_no")] if purchase else [F.lit(None).cast("string"), F.lit(None).cast("int")]
        )
        return rows.select(
            "creator_id",
            at.alias("_us"),
            F.lit(purchase).alias("_purchase"),
            F.lit(delta).alias("_delta"),
            line[0].alias("order_id"),
            line[1].alias("line_no"),
        )

    marks = events(linked, bought, 1, 0)
    marks = marks.unionByName(events(regrets, counts_from, 0, 1)).unionByName(events(regrets, bought + span_us, 0, -1))
    so_far = Window.partitionBy("creator_id").orderBy(F.col("_us")).rangeBetween(Window.unboundedPreceding, -1)
    history = marks.select(
        "order_id",
        "line_no",
        "_purchase",
        F.sum("_purchase").over(_trailing("creator_id", F.col("_us"), days)).alias("creator_prior_purchases"),
        F.sum("_delta").over(so_far).alias("_prior_regrets"),
    ).where("_purchase = 1")
    history = history.select(
        "order_id",
        "line_no",
        F.coalesce("creator_prior_purchases", F.lit(0)).alias("creator_prior_purchases"),
        ratio(F.col("_prior_regrets"), F.col("creator_prior_purchases")).alias("creator_regret_rate"),
    )
    return purchases.join(history, ["order_id", "line_no"], "left")


def _with_customer_history(purchases: DataFrame, inputs: Inputs, days: float) -> DataFrame:
    """Per order, from the customer's orders and returns strictly before it within `days`: prior orders, prior
    return rate (returns requested / orders), days since the previous order and average order value."""
    orders = inputs["commerce_orders"].where(F.col("customer_id").isNotNull())
    order_events = orders.select(
        "customer_id",
        "order_id",
        F.unix_micros("created_at").alias("_us"),
        F.lit(1).alias("_order"),
        F.lit(0).alias("_return"),
        F.col("order_total_usd").cast("double").alias("_value"),
    )
    returns = inputs["commerce_returns"].join(orders.select("order_id", "customer_id"), "order_id")
    return_events = returns.select(
        "customer_id",
        F.lit(None).cast("string").alias("order_id"),
        F.unix_micros("requested_at").alias("_us"),
        F.lit(0).alias("_order"),
        F.lit(1).alias("_return"),
        F.lit(0.0).alias("_value"),
    )
    before = _trailing("customer_id", F.col("_us"), days)
    history = (
        order_events.unionByName(return_events)
        .select(
            "order_id",
            "_order",
            "_us",
            F.sum("_order").over(before).alias("_prior_orders"),
            F.sum("_return").over(before).alias("_prior_returns"),
            F.sum("_value").over(before).alias("_prior_value"),
            F.max(F.when(F.col("_order") == 1, F.col("_us"))).over(before).alias("_prior_us"),
        )
        .where("_order = 1")
        .select(
            "order_id",
            F.coalesce("_prior_orders", F.lit(0)).alias("customer_prior_orders_90d"),
            ratio(F.col("_prior_returns"), F.col("_prior_orders")).alias("customer_prior_return_rate_90d"),
            ((F.col("_us") - F.col("_prior_us")) / (DAY_US * 1.0)).alias("customer_days_since_prior_order"),
            ratio(F.col("_prior_value"), F.col("_prior_orders")).alias("customer_prior_aov_usd"),
        )
    )
    return purchases.join(history, "order_id", "left")
