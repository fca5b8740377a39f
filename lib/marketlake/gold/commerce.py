"""Commerce marts: daily KPIs by channel with week-over-week change, fulfillment KPIs banded against the benchmark
bands, and inventory (stock, turnover, days of inventory, safety stock, reorder point, EOQ)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, timedelta
from statistics import NormalDist
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from marketlake.gold.common import Inputs, band, between, dates, money, ratio


def _channel() -> F.Column:
    """Web orders carry their marketing channel; marketplace orders are their own channel (the platform)."""
    return F.coalesce(F.col("channel"), F.col("platform"))


def daily_kpis(inputs: Inputs, start: date, end: date, params: Mapping[str, Any]) -> DataFrame:
    """Per day and channel: revenue (USD), orders, AOV, sessions, conversion rate (orders / sessions), returns
    requested that day for orders of the channel, return rate (returns / orders), and revenue change against the
    same weekday a week earlier."""
    orders = inputs["commerce_orders"]
    by_day = orders.where(between("event_date", start - timedelta(days=7), end)).groupBy(
        F.col("event_date").alias("date"), _channel().alias("channel")
    )
    revenue = by_day.agg(money(F.sum("order_total_usd")).alias("revenue_usd"), F.count(F.lit(1)).alias("orders"))
    sessions = (
        inputs["commerce_web_sessions"]
        .where(between("event_date", start, end))
        .groupBy(F.col("event_date").alias("date"), "channel")
        .agg(F.count(F.lit(1)).alias("sessions"))
    )
    returns = (
        inputs["commerce_returns"]
        .where(between("event_date", start, end))
        .join(orders.select("order_id", _channel().alias("channel")), "order_id")
        .groupBy(F.col("event_date").alias("date"), "channel")
        .agg(F.count_distinct("return_id").alias("returns"))
    )
    week_ago = revenue.select(
        F.date_add("date", 7).alias("date"), "channel", F.col("revenue_usd").alias("revenue_prev_week_usd")
    )
    kpis = (
        revenue.where(between("date", start, end))
        .join(sessions, ["date", "channel"], "full")
        .join(returns, ["date", "channel"], "full")
        .join(week_ago, ["date", "channel"], "left")
    )
    revenue_usd = F.coalesce("revenue_usd", F.lit(0).cast("decimal(20,2)"))
    orders_n = F.coalesce("orders", F.lit(0))
    return kpis.select(
        "date",
        "channel",
        revenue_usd.alias("revenue_usd"),
        orders_n.alias("orders"),
        money(ratio(F.col("revenue_usd"), F.col("orders"))).alias("aov_usd"),
        F.coalesce("sessions", F.lit(0)).alias("sessions"),
        ratio(orders_n, F.col("sessions")).alias("conversion_rate"),
        F.coalesce("returns", F.lit(0)).alias("returns"),
        ratio(F.coalesce("returns", F.lit(0)), F.col("orders")).alias("return_rate"),
        "revenue_prev_week_usd",
        ratio(revenue_usd - F.col("revenue_prev_week_usd"), F.col("revenue_prev_week_usd")).alias("wow_revenue_change"),
    )


def fulfillment_daily(inputs: Inputs, start: date, end: date, params: Mapping[str, Any]) -> DataFrame:
    """Per day and warehouse: orders shipped that day, average fulfillment hours (shipped - order created), cost
    per order and shipping cost variance (|actual - estimated| / estimated) of those shipments; on-time rate
    (delivered by the promised time) and order accuracy (items correct) of the orders delivered that day; each
    KPI with its benchmark band."""
    conf = params["commerce"]
    events = inputs["commerce_fulfillment_events"]
    created = inputs["commerce_orders"].select("order_id", F.col("created_at").alias("order_created_at"))
    shipped_all = events.where(F.col("status") == "shipped").select(
        "order_id", "warehouse", "event_date", "event_at", "estimated_cost", "actual_cost", "promised_at"
    )
    shipped = (
        shipped_all.where(between("event_date", start, end))
        .join(created, "order_id", "left")
        .groupBy(F.col("event_date").alias("date"), "warehouse")
        .agg(
            F.count_distinct("order_id").alias("orders_shipped"),
            F.avg((F.col("event_at").cast("long") - F.col("order_created_at").cast("long")) / 3600.0).alias(
                "avg_fulfillment_hours"
            ),
            money(ratio(F.sum("actual_cost"), F.count("actual_cost"))).alias("cost_per_order_usd"),
            (ratio(F.abs(F.sum("actual_cost") - F.sum("estimated_cost")), F.sum("estimated_cost")) * 100).alias(
                "shipping_cost_variance_pct"
            ),
        )
    )
    promised = shipped_all.select("order_id", "promised_at")
    delivered = (
        events.where((F.col("status") == "delivered") & between("event_date", start, end))
        .select("order_id", "warehouse", "event_date", "event_at", "items_correct")
        .join(promised, "order_id", "left")
        .groupBy(F.col("event_date").alias("date"), "warehouse")
        .agg(
            F.count_distinct("order_id").alias("orders_delivered"),
            ratio(F.count(F.when(F.col("event_at") <= F.col("promised_at"), 1)), F.count("promised_at")).alias(
                "on_time_rate"
            ),
            (ratio(F.count(F.when(F.col("items_correct"), 1)), F.count("items_correct")) * 100).alias("accuracy_pct"),
        )
    )
    bands = conf["bands"]
    targets = conf["targets"]
    kpis = shipped.join(delivered, ["date", "warehouse"], "full")
    return kpis.select(
        "date",
        "warehouse",
        F.coalesce("orders_shipped", F.lit(0)).alias("orders_shipped"),
        F.coalesce("orders_delivered", F.lit(0)).alias("orders_delivered"),
        "avg_fulfillment_hours",
        band(F.col("avg_fulfillment_hours"), bands["fulfillment_hours"]).alias("fulfillment_band"),
        "on_time_rate",
        (F.col("on_time_rate") > float(targets["on_time_rate"])).alias("on_time_target_met"),
        "accuracy_pct",
        band(F.col("accuracy_pct"), bands["accuracy_pct"]).alias("accuracy_band"),
        "cost_per_order_usd",
        (F.col("cost_per_order_usd") < float(targets["cost_per_order_usd"])).alias("cost_target_met"),
        "shipping_cost_variance_pct",
        band(F.col("shipping_cost_variance_pct"), bands["shipping_cost_variance_pct"]).alias("shipping_cost_band"),
    )


def opening_stock(movements: DataFrame, before: date) -> DataFrame:
    """(product_id, stock): net units (in - out) of every movement before a date. Used once, for a table's first
    build; later builds carry the previous day's closing stock forward."""
    return (
        movements.where(F.col("event_date") < F.lit(before))
        .groupBy("product_id")
        .agg(F.sum(_net_units()).alias("stock"))
    )


def _net_units() -> F.Column:
    """Signed units of a movement: `in` adds stock; `out` (sales), `adjustment` (shrinkage) and `transfer` (sent to
    the warehouse in `reference`, which books its own `in`) remove it. Quantities land positive; an unknown type
    is quarantined in silver, so none reaches here."""
    return F.when(F.col("movement_type") == "in", F.col("quantity")).otherwise(-F.col("quantity"))


def inventory_daily(inputs: Inputs, start: date, end: date, params: Mapping[str, Any], opening: DataFrame) -> DataFrame:
    """Per product and day: closing stock (opening stock + net movements so far), demand (units out) over the
    last demand_days, turnover (annualised demand / stock), days of inventory, safety stock z * sigma * sqrt(L),
    reorder point mean * L + safety stock, and EOQ sqrt(2 D S / H) with H = holding_cost_rate * unit cost."""
    conf = params["commerce"]["inventory"]
    window = int(conf["demand_days"])
    lead = float(conf["lead_time_days"])
    z = NormalDist().inv_cdf(float(conf["service_level"]))
    movements = inputs["commerce_inventory_movements"]
    products = inputs["commerce_products"].select("product_id", "unit_cost")
    daily = movements.groupBy("product_id", F.col("event_date").alias("day")).agg(
        F.sum(_net_units()).alias("net"),
        F.sum(F.when(F.col("movement_type") == "out", F.col("quantity")).otherwise(0)).alias("out"),
    )
    grid = products.select("product_id").unionByName(opening.select("product_id")).distinct()
    grid = grid.crossJoin(dates(movements.sparkSession, start, end))
    window_rows = grid.join(
        daily, (grid.product_id == daily.product_id) & daily.day.between(F.date_sub(grid.date, window - 1), grid.date)
    ).select(grid.product_id, grid.date, daily.day, daily.net, daily.out)
    demand = window_rows.groupBy("product_id", "date").agg(
        F.sum("out").alias("units_out"),
        F.sum(F.col("out") * F.col("out")).alias("_out_sq"),
    )
    to_date = (
        grid.join(daily, (grid.product_id == daily.product_id) & daily.day.between(F.lit(start), grid.date))
        .groupBy(grid.product_id, grid.date)
        .agg(F.sum(daily.net).alias("_net_since_start"))
    )
    mean = F.coalesce(F.col("units_out"), F.lit(0)).cast("double") / window
    variance = F.coalesce(F.col("_out_sq"), F.lit(0)).cast("double") / window - mean * mean
    sigma = F.sqrt(F.greatest(variance, F.lit(0.0)))
    stock = F.coalesce(F.col("stock"), F.lit(0)) + F.coalesce(F.col("_net_since_start"), F.lit(0))
    annual = mean * 365
    holding = F.col("unit_cost").cast("double") * float(conf["holding_cost_rate"])
    rows = (
        grid.join(opening, "product_id", "left")
        .join(to_date, ["product_id", "date"], "left")
        .join(demand, ["product_id", "date"], "left")
        .join(products, "product_id", "left")
        .select(
            "product_id",
            "date",
            stock.alias("closing_stock"),
            F.coalesce(F.col("units_out"), F.lit(0)).cast("long").alias("units_out_window"),
            mean.alias("mean_daily_demand"),
            sigma.alias("demand_std"),
            annual.alias("annual_demand"),
            holding.alias("_holding"),
        )
    )
    safety = F.col("demand_std") * z * math.sqrt(lead)
    turnover = ratio(F.col("annual_demand"), F.col("closing_stock"))
    return rows.select(
        "date",
        "product_id",
        "closing_stock",
        "units_out_window",
        "mean_daily_demand",
        "demand_std",
        turnover.alias("turnover_annual"),
        band(turnover, params["commerce"]["bands"]["inventory_turnover"]).alias("turnover_band"),
        ratio(F.col("closing_stock"), F.col("mean_daily_demand")).alias("days_of_inventory"),
        safety.alias("safety_stock"),
        (F.col("mean_daily_demand") * lead + safety).alias("reorder_point"),
        F.sqrt(ratio(F.col("annual_demand") * 2 * float(conf["ordering_cost_usd"]), F.col("_holding"))).alias("eoq"),
        (F.col("closing_stock") <= F.col("mean_daily_demand") * lead + safety).alias("reorder_now"),
    )
