"""Exchange marts: pair volume, fee tiers, active users, execution quality, compliance flags, funnel, cohorts.

Every builder takes the silver inputs (already limited to the dates the build needs), the first and last partition
date, and the gold parameters, and returns exactly the rows of those partitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from marketlake.gold.common import Inputs, between, dates, lookup, money, ratio
from marketlake.gold.prices import exact_notional, priced_amounts, priced_trades


def _fixed_usd(params: Mapping[str, Any]) -> Mapping[str, float]:
    return params["exchange"]["asset_usd"]


def trades_in_usd(inputs: Inputs, params: Mapping[str, Any]) -> DataFrame:
    """Every trade read, valued in USD as of its time (see marketlake.gold.prices)."""
    return priced_trades(inputs["exchange_trades"], _fixed_usd(params))


def wallet_in_usd(inputs: Inputs, params: Mapping[str, Any]) -> DataFrame:
    """Every wallet transaction read, with amount_usd (the amount, sign kept, valued as of its time)."""
    tx = inputs["exchange_wallet_transactions"]
    return priced_amounts(tx, inputs["exchange_trades"], _fixed_usd(params), "amount", "asset", "created_at")


def pair_daily(inputs: Inputs, start: date, end: date, params: Mapping[str, Any]) -> DataFrame:
    """Per pair and day: volume and fees in USD as of each trade (trades not yet priceable counted in
    unpriced_trades), trade count, VWAP in the quote asset, distinct traders."""
    trades = trades_in_usd(inputs, params).where(between("event_date", start, end))
    return trades.groupBy(F.col("event_date").alias("date"), "pair").agg(
        money(F.sum("volume_usd")).alias("volume_usd"),
        F.count(F.lit(1)).alias("trade_count"),
        # sums as DECIMAL(30,16) / DECIMAL(22,8) so the quotient keeps 16 decimals (wider ones drop to 6)
        (F.sum("notional").cast("decimal(30,16)") / F.sum("quantity").cast("decimal(22,8)"))
        .cast("decimal(28,8)")
        .alias("vwap"),
        money(F.sum("fee_usd")).alias("fees_usd"),
        F.count_distinct("user_id").alias("distinct_traders"),
        F.count(F.when(~F.col("usd_priced"), 1)).alias("unpriced_trades"),
    )


def fee_tiers_daily(inputs: Inputs, start: date, end: date, params: Mapping[str, Any]) -> DataFrame:
    """Per tier (the user's current tier): fee revenue, paying users, revenue per paying user, effective fee rate
    = fees / volume next to the tier's nominal taker rate."""
    trades = trades_in_usd(inputs, params).where(between("event_date", start, end))
    users = inputs["exchange_users"].select("user_id", F.coalesce("tier", F.lit("unknown")).alias("tier"))
    fees = trades.join(users, "user_id", "left").fillna("unknown", ["tier"])
    daily = fees.groupBy(F.col("event_date").alias("date"), "tier").agg(
        money(F.sum("fee_usd")).alias("fee_revenue_usd"),
        money(F.sum("volume_usd")).alias("volume_usd"),
        F.count_distinct(F.when(F.col("fee_usd") > 0, F.col("user_id"))).alias("paying_users"),
        F.count(F.when(~F.col("usd_priced"), 1)).alias("unpriced_trades"),
    )
    return daily.select(
        "*",
        ratio(F.col("fee_revenue_usd"), F.col("paying_users")).alias("revenue_per_paying_user_usd"),
        ratio(F.col("fee_revenue_usd"), F.col("volume_usd")).alias("effective_fee_rate"),
        lookup(params["exchange"]["taker_fee_rate"], F.col("tier")).alias("nominal_fee_rate"),
    )


def _activity(inputs: Inputs) -> DataFrame:
    """(user_id, event_date, at) for every trade, successful login and wallet transaction."""
    return (
        inputs["exchange_trades"]
        .select("user_id", "event_date", F.col("executed_at").alias("at"))
        .unionByName(
            inputs["exchange_logins"]
            .where(F.col("success"))
            .select("user_id", "event_date", F.col("login_at").alias("at"))
        )
        .unionByName(
            inputs["exchange_wallet_transactions"].select("user_id", "event_date", F.col("created_at").alias("at"))
        )
        .where(F.col("user_id").isNotNull())
    )


def active_users_daily(inputs: Inputs, start: date, end: date, params: Mapping[str, Any]) -> DataFrame:
    """DAU, MAU (distinct active users in the mau_days ending on the date) and DAU/MAU."""
    mau_days = int(params["exchange"]["mau_days"])
    days = _activity(inputs).select("user_id", "event_date").distinct()
    # Each active user-day counts towards the MAU of the mau_days dates starting on it.
    counted = days.select(
        "user_id",
        "event_date",
        F.explode(F.sequence(F.col("event_date"), F.date_add(F.col("event_date"), mau_days - 1))).alias("date"),
    ).where(between("date", start, end))
    stats = counted.groupBy("date").agg(
        F.count_distinct(F.when(F.col("event_date") == F.col("date"), F.col("user_id"))).alias("dau"),
        F.count_distinct("user_id").alias("mau"),
    )
    grid = dates(days.sparkSession, start, end)
    return grid.join(stats, "date", "left").select(
        "date",
        F.coalesce("dau", F.lit(0)).alias("dau"),
        F.coalesce("mau", F.lit(0)).alias("mau"),
        ratio(F.col("dau"), F.col("mau")).alias("dau_mau_ratio"),
    )


def execution_daily(inputs: Inputs, start: date, end: date, params: Mapping[str, Any]) -> DataFrame:
    """Per pair and day: orders placed, trades executed, their ratio (0 with no order placed, null with no
    trade); time to first fill of the orders first filled that day; notional-weighted signed slippage in bps
    against the order's price (positive = worse for the trader: a buy above or a sell below it). Fill times and
    slippage use the orders created within order_lookback_days before the fill's day, whatever the build's range."""
    lookback = int(params["exchange"]["execution"]["order_lookback_days"])
    orders = inputs["exchange_orders"]
    trades = inputs["exchange_trades"]
    placed = (
        orders.where(between("event_date", start, end))
        .groupBy(F.col("event_date").alias("date"), "pair")
        .agg(F.count(F.lit(1)).alias("orders_placed"))
    )
    first_fill = Window.partitionBy("order_id").orderBy("executed_at", "trade_id")
    fills = (
        trades.withColumn("_fill_no", F.row_number().over(first_fill))
        .where(between("event_date", start, end))
        .join(
            orders.select(
                "order_id",
                F.col("created_at").alias("order_created_at"),
                F.col("price").alias("order_price"),
            ),
            "order_id",
            "left",
        )
    )
    known = F.to_date("order_created_at") >= F.date_sub(F.col("event_date"), lookback)
    side = F.when(F.col("side") == "sell", F.lit(-1.0)).otherwise(F.lit(1.0))
    slippage_bps = F.when(known, side * ratio(F.col("price") - F.col("order_price"), F.col("order_price")) * 10_000)
    fill_s = F.col("executed_at").cast("long") - F.col("order_created_at").cast("long")
    first = (F.col("_fill_no") == 1) & F.coalesce(known, F.lit(False))
    notional = exact_notional(F.col("quantity"), F.col("price")).cast("double")
    executed = fills.groupBy(F.col("event_date").alias("date"), "pair").agg(
        F.count(F.lit(1)).alias("trades"),
        F.median(F.when(first, fill_s)).alias("median_time_to_fill_s"),
        F.avg(F.when(first, fill_s)).alias("avg_time_to_fill_s"),
        ratio(F.sum(slippage_bps * notional), F.sum(F.when(slippage_bps.isNotNull(), notional))).alias("slippage_bps"),
    )
    return placed.join(executed, ["date", "pair"], "full").select(
        "date",
        "pair",
        F.coalesce("orders_placed", F.lit(0)).alias("orders_placed"),
        F.coalesce("trades", F.lit(0)).alias("trades"),
        ratio(F.coalesce("orders_placed", F.lit(0)), F.col("trades")).alias("order_to_trade_ratio"),
        "median_time_to_fill_s",
        "avg_time_to_fill_s",
        "slippage_bps",
    )


def compliance_flags(inputs: Inputs, start: date, end: date, params: Mapping[str, Any]) -> DataFrame:
    """One row per flagged transaction and flag: `large_transaction` (USD value as of the transaction over the
    threshold), `rapid_withdrawal` (a withdrawal of at least rapid_share of a deposit made in the rapid_hours before
    it; the latest such deposit is named in related_tx_id) and `unpriced_transaction` (no USD price for its asset
    yet, so the threshold could not be checked: review it by hand)."""
    conf = params["exchange"]["compliance"]
    tx = wallet_in_usd(inputs, params).withColumn("amount_usd", F.abs(F.col("amount_usd")))
    today = tx.where(between("event_date", start, end))
    columns = ["tx_id", "user_id", "tx_type", "asset", "amount", "amount_usd", "created_at"]
    large = today.where(F.col("amount_usd") > float(conf["large_transaction_usd"])).select(
        F.col("event_date").alias("date"),
        *columns,
        F.lit("large_transaction").alias("flag"),
        F.lit(None).cast("string").alias("related_tx_id"),
    )
    unpriced = today.where(~F.col("usd_priced")).select(
        F.col("event_date").alias("date"),
        *columns,
        F.lit("unpriced_transaction").alias("flag"),
        F.lit(None).cast("string").alias("related_tx_id"),
    )
    deposits = tx.where(F.col("tx_type") == "deposit").select(
        "user_id",
        "asset",
        F.col("tx_id").alias("deposit_tx_id"),
        F.col("amount").alias("deposit_amount"),
        F.col("created_at").alias("deposit_at"),
    )
    withdrawals = today.where(F.col("tx_type") == "withdrawal")
    seconds = int(float(conf["rapid_hours"]) * 3600)
    paired = withdrawals.join(deposits, ["user_id", "asset"]).where(
        (F.col("deposit_at") <= F.col("created_at"))
        & (F.col("created_at").cast("long") - F.col("deposit_at").cast("long") <= seconds)
        & (F.abs(F.col("amount")) >= F.col("deposit_amount") * float(conf["rapid_share"]))
    )
    latest = Window.partitionBy("tx_id").orderBy(F.col("deposit_at").desc(), F.col("deposit_tx_id").desc())
    rapid = (
        paired.withColumn("_n", F.row_number().over(latest))
        .where("_n = 1")
        .select(
            F.col("event_date").alias("date"),
            *columns,
            F.lit("rapid_withdrawal").alias("flag"),
            F.col("deposit_tx_id").alias("related_tx_id"),
        )
    )
    return large.unionByName(rapid).unionByName(unpriced)


def funnel_daily(inputs: Inputs, start: date, end: date, params: Mapping[str, Any]) -> DataFrame:
    """Users registered each day and how many reached each step within window_days of registering: KYC completed,
    first deposit, first trade, regular trader (regular_trades+ trades in the window). Steps are nested (a user
    counts at a step only after all earlier ones); rates are step-over-previous-step, next to the targets."""
    conf = params["exchange"]["funnel"]
    window = int(conf["window_days"])
    users = inputs["exchange_users"].where(between(F.to_date("registered_at"), start, end))
    reg = F.col("registered_at")
    in_window = (F.col("at") >= reg) & (F.col("at") < reg + F.expr(f"INTERVAL {window} DAYS"))
    deposits = (
        inputs["exchange_wallet_transactions"]
        .where(F.col("tx_type") == "deposit")
        .select("user_id", F.col("created_at").alias("at"), F.lit("deposit").alias("kind"))
    )
    trades = inputs["exchange_trades"].select("user_id", F.col("executed_at").alias("at"), F.lit("trade").alias("kind"))
    events = users.select("user_id", "registered_at").join(deposits.unionByName(trades), "user_id").where(in_window)
    per_user = events.groupBy("user_id").agg(
        F.count(F.when(F.col("kind") == "deposit", 1)).alias("deposits"),
        F.count(F.when(F.col("kind") == "trade", 1)).alias("trades"),
    )
    kyc = F.col("kyc_completed_at").isNotNull() & (F.col("kyc_completed_at") < reg + F.expr(f"INTERVAL {window} DAYS"))
    steps = users.join(per_user, "user_id", "left").select(
        F.to_date("registered_at").alias("registration_date"),
        kyc.alias("kyc"),
        (kyc & (F.col("deposits") > 0)).alias("deposit"),
        (kyc & (F.col("deposits") > 0) & (F.col("trades") > 0)).alias("trade"),
        (kyc & (F.col("deposits") > 0) & (F.col("trades") >= int(conf["regular_trades"]))).alias("regular"),
    )
    counts = steps.groupBy("registration_date").agg(
        F.count(F.lit(1)).alias("registered"),
        *[F.count(F.when(F.col(s), 1)).alias(f"{s}_users") for s in ("kyc", "deposit", "trade", "regular")],
    )
    horizon = inputs["exchange_trades"].agg(F.max("event_date").alias("_horizon"))
    targets = conf["targets"]
    previous = {"kyc": "registered", "deposit": "kyc_users", "trade": "deposit_users", "regular": "trade_users"}
    return counts.crossJoin(horizon).select(
        "registration_date",
        "registered",
        *[F.col(f"{s}_users") for s in previous],
        *[ratio(F.col(f"{s}_users"), F.col(prev)).alias(f"{s}_rate") for s, prev in previous.items()],
        *[F.lit(float(targets[s])).alias(f"{s}_target") for s in previous],
        # a user registered late on the day is followed until that time on day + window
        (F.date_add("registration_date", window) <= F.col("_horizon")).alias("window_complete"),
    )


def cohort_retention(inputs: Inputs, start: date, end: date, params: Mapping[str, Any]) -> DataFrame:
    """Monthly sign-up cohorts (partitions are month starts from start's month to end's month): cohort size and
    the share of the cohort active (trade, login or wallet transaction) in calendar month k after sign-up,
    k = 0..cohort_months; month_complete says whether that month is fully in the data."""
    months = int(params["exchange"]["cohort_months"])
    first, last = start.replace(day=1), end.replace(day=1)
    users = (
        inputs["exchange_users"]
        .select("user_id", F.trunc("registered_at", "month").alias("cohort_month"))
        .where(between("cohort_month", first, last))
    )
    sizes = users.groupBy("cohort_month").agg(F.count(F.lit(1)).alias("cohort_size"))
    activity = _activity(inputs).select("user_id", F.trunc("at", "month").alias("month")).distinct()
    offsets = users.join(activity, "user_id").select(
        "cohort_month", "user_id", F.months_between("month", "cohort_month").cast("int").alias("month_offset")
    )
    active = (
        offsets.where(F.col("month_offset").between(0, months))
        .groupBy("cohort_month", "month_offset")
        .agg(F.count_distinct("user_id").alias("active_users"))
    )
    grid = sizes.crossJoin(users.sparkSession.range(months + 1).select(F.col("id").cast("int").alias("month_offset")))
    horizon = inputs["exchange_trades"].agg(F.max("event_date").alias("_horizon"))
    month_end = F.last_day(F.add_months("cohort_month", F.col("month_offset")))
    return (
        grid.join(active, ["cohort_month", "month_offset"], "left")
        .crossJoin(horizon)
        .select(
            "cohort_month",
            "month_offset",
            "cohort_size",
            F.coalesce("active_users", F.lit(0)).alias("active_users"),
            ratio(F.coalesce("active_users", F.lit(0)), F.col("cohort_size")).alias("retention"),
            (month_end <= F.col("_horizon")).alias("month_complete"),
        )
    )
