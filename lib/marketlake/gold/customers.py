"""Customer marts as of a date: RFM scores and segments, churn risk, and the ML-ready churn table.

"As of D" means using only events strictly before D (00:00 UTC): a snapshot taken at the start of the day.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from marketlake.gold.common import Inputs, dates, first_match, ratio
from marketlake.gold.exchange import _activity, trades_in_usd, wallet_in_usd


def _as_of_window(events: DataFrame, day_column: str, start: date, end: date, days: int) -> DataFrame:
    """events paired with every as-of date D in [start, end] whose window [D - days, D) holds them."""
    grid = dates(events.sparkSession, start, end, "as_of_date")
    inside = (F.col(day_column) < F.col("as_of_date")) & (F.col(day_column) >= F.date_sub("as_of_date", days))
    return events.join(F.broadcast(grid), inside)


def rfm(events: DataFrame, entity: str, start: date, end: date, params: Mapping[str, Any]) -> DataFrame:
    """RFM over events (entity, event_date, value) in the window_days before each as-of date: recency = days since
    the last event, frequency = event count, monetary = sum of value. Scores are NTILE(5) per as-of date with 5
    best (most recent, most frequent, highest value); rows with equal values are ordered by the entity id, so the
    split of a tie across two tiles is the same on every run. The segment is the first rule in conf that holds."""
    conf = params["rfm"]
    window = _as_of_window(events, "event_date", start, end, int(conf["window_days"]))
    per_entity = window.groupBy("as_of_date", entity).agg(
        F.datediff(F.col("as_of_date"), F.max("event_date")).alias("recency_days"),
        F.count(F.lit(1)).alias("frequency"),
        F.sum("value").cast("decimal(20,2)").alias("monetary_usd"),
    )

    def score(order: Column) -> Column:
        return F.ntile(5).over(Window.partitionBy("as_of_date").orderBy(order, F.col(entity)))

    scored = per_entity.select(
        "*",
        score(F.col("recency_days").desc()).alias("r_score"),
        score(F.col("frequency").asc()).alias("f_score"),
        score(F.col("monetary_usd").asc()).alias("m_score"),
    )
    segments = [(s["name"], s["when"]) for s in conf["segments"]]
    return scored.select(
        "*",
        F.concat_ws("", "r_score", "f_score", "m_score").alias("rfm_code"),
        first_match(segments, str(conf["default"])).alias("segment"),
    )


def exchange_rfm(inputs: Inputs, start: date, end: date, params: Mapping[str, Any]) -> DataFrame:
    trades = trades_in_usd(inputs, params).select("user_id", "event_date", F.col("volume_usd").alias("value"))
    return rfm(trades.where(F.col("user_id").isNotNull()), "user_id", start, end, params)


def resolved_customers(orders: DataFrame, customers: DataFrame) -> DataFrame:
    """Orders with `customer_key`, one key per person across platforms: the keyed hash of the order's email, else
    of the email on the shop's customer record for its customer_id, else `id:<customer_id>` (a customer known only
    by a platform id stays on their own). A person buying on Shopify and on Amazon with one email is one customer."""
    emails = customers.select("customer_id", F.col("email_hash").alias("_customer_email_hash"))
    key = F.coalesce(
        F.concat(F.lit("email:"), F.col("email_hash")),
        F.concat(F.lit("email:"), F.col("_customer_email_hash")),
        F.concat(F.lit("id:"), F.col("customer_id")),
    )
    return orders.join(emails, "customer_id", "left").withColumn("customer_key", key).drop("_customer_email_hash")


def commerce_rfm(inputs: Inputs, start: date, end: date, params: Mapping[str, Any]) -> DataFrame:
    """RFM per person (customer_key, see resolved_customers), with the person's lowest platform customer id and
    the platforms they bought on in the window."""
    orders = resolved_customers(inputs["commerce_orders"], inputs["commerce_customers"]).select(
        "customer_key", "customer_id", "platform", "event_date", F.col("order_total_usd").alias("value")
    )
    scored = rfm(orders.where(F.col("customer_key").isNotNull()), "customer_key", start, end, params)
    window = _as_of_window(orders, "event_date", start, end, int(params["rfm"]["window_days"]))
    who = window.groupBy("as_of_date", "customer_key").agg(
        F.min("customer_id").alias("customer_id"), F.array_sort(F.collect_set("platform")).alias("platforms")
    )
    return scored.join(who, ["as_of_date", "customer_key"]).select(
        "as_of_date",
        "customer_key",
        "customer_id",
        "platforms",
        *[c for c in scored.columns if c not in ("as_of_date", "customer_key")],
    )


def _risk_level(days: Column, params: Mapping[str, Any]) -> Column:
    conf = params["churn"]
    levels = [(str(lvl["name"]), days > int(lvl["over"])) for lvl in conf["levels"]]
    return first_match(levels, str(conf["default"]))


def _last_seen(inputs: Inputs, start: date, end: date, params: Mapping[str, Any]) -> DataFrame:
    """Per as-of date and user registered before it: the last activity in the lookback window before the date
    (null if none) and days_inactive, counted from that activity, else from registration when it falls inside the
    window; null means inactive for longer than the window (always the top risk level)."""
    lookback = int(params["churn"]["lookback_days"])
    activity = _activity(inputs).select("user_id", "event_date", "at")
    window = _as_of_window(activity, "event_date", start, end, lookback)
    last = window.groupBy("as_of_date", "user_id").agg(F.max("at").alias("last_activity_at"))
    users = inputs["exchange_users"].select("user_id", "registered_at", "tier", "kyc_status", "status")
    grid = dates(users.sparkSession, start, end, "as_of_date")
    registered = users.join(F.broadcast(grid), F.to_date("registered_at") < F.col("as_of_date"))
    seen = registered.join(last, ["as_of_date", "user_id"], "left")
    since = F.coalesce(
        F.to_date("last_activity_at"),
        F.when(F.to_date("registered_at") >= F.date_sub("as_of_date", lookback), F.to_date("registered_at")),
    )
    return seen.withColumn("days_inactive", F.datediff(F.col("as_of_date"), since))


def churn_risk(inputs: Inputs, start: date, end: date, params: Mapping[str, Any]) -> DataFrame:
    """Per as-of date and registered user: last activity (trade, login or wallet transaction) and risk level:
    Active <= 14 days, Medium Risk > 14, High Risk > 30, Churned > 60 (thresholds in conf)."""
    seen = _last_seen(inputs, start, end, params)
    days = F.coalesce(F.col("days_inactive"), F.lit(1 << 30))
    return seen.select(
        "as_of_date",
        "user_id",
        "last_activity_at",
        "days_inactive",
        _risk_level(days, params).alias("risk_level"),
    )


def churn_features(inputs: Inputs, start: date, end: date, params: Mapping[str, Any]) -> DataFrame:
    """The ML-ready churn table, one row per as-of date and user active in the lookback window before it.
    Features use only events strictly before the as-of date; the label `churned` is true when the user has no
    activity in the label_days from the as-of date on. label_complete is false while those days are not all in
    the data (the label may still flip)."""
    conf = params["churn"]
    label_days = int(conf["label_days"])
    seen = _last_seen(inputs, start, end, params).where(F.col("last_activity_at").isNotNull())
    trades = trades_in_usd(inputs, params).select(
        "user_id", "event_date", F.lit("trade").alias("kind"), F.col("volume_usd").cast("double").alias("value")
    )
    logins = inputs["exchange_logins"].select(
        "user_id",
        "event_date",
        F.when(F.col("success"), F.lit("login")).otherwise(F.lit("failed_login")).alias("kind"),
        F.lit(0.0).alias("value"),
    )
    wallet = wallet_in_usd(inputs, params).select(
        "user_id", "event_date", F.col("tx_type").alias("kind"), F.col("amount_usd").alias("value")
    )
    events = trades.unionByName(logins).unionByName(wallet)
    past = _as_of_window(events, "event_date", start, end, int(conf["lookback_days"]))
    recent = F.col("event_date") >= F.date_sub("as_of_date", 30)

    def count(kind: str, last_30: bool) -> Column:
        hit = (F.col("kind") == kind) & recent if last_30 else F.col("kind") == kind
        return F.count(F.when(hit, 1))

    features = past.groupBy("as_of_date", "user_id").agg(
        count("trade", True).alias("trades_30d"),
        count("trade", False).alias("trades_90d"),
        F.sum(F.when((F.col("kind") == "trade") & recent, F.col("value")).otherwise(0.0)).alias("volume_usd_30d"),
        F.sum(F.when(F.col("kind") == "trade", F.col("value")).otherwise(0.0)).alias("volume_usd_90d"),
        count("login", True).alias("logins_30d"),
        count("login", False).alias("logins_90d"),
        count("failed_login", True).alias("failed_logins_30d"),
        count("deposit", True).alias("deposits_30d"),
        count("withdrawal", True).alias("withdrawals_30d"),
        F.sum(F.when(F.col("kind").isin("deposit", "withdrawal") & recent, F.col("value")).otherwise(0.0)).alias(
            "net_flow_usd_30d"
        ),
        F.count_distinct(F.when(recent & (F.col("kind") != "failed_login"), F.col("event_date"))).alias(
            "active_days_30d"
        ),
    )
    future_days = _activity(inputs).select("user_id", F.col("event_date").alias("day")).distinct()
    grid = dates(future_days.sparkSession, start, end, "as_of_date")
    ahead = (F.col("day") >= F.col("as_of_date")) & (F.col("day") < F.date_add("as_of_date", label_days))
    future = (
        future_days.join(F.broadcast(grid), ahead)
        .groupBy("as_of_date", "user_id")
        .agg(F.count(F.lit(1)).alias("_active_days_ahead"))
    )
    horizon = inputs["exchange_trades"].agg(F.max("event_date").alias("_horizon"))
    return (
        seen.join(features, ["as_of_date", "user_id"], "left")
        .join(future, ["as_of_date", "user_id"], "left")
        .crossJoin(horizon)
        .select(
            "as_of_date",
            "user_id",
            "tier",
            (F.col("kyc_status") == "verified").alias("kyc_verified"),
            F.datediff(F.col("as_of_date"), F.to_date("registered_at")).alias("tenure_days"),
            "days_inactive",
            *[
                F.coalesce(F.col(c), F.lit(0)).alias(c)
                for c in ("trades_30d", "trades_90d", "logins_30d", "logins_90d", "failed_logins_30d")
            ],
            *[F.coalesce(F.col(c), F.lit(0)).alias(c) for c in ("deposits_30d", "withdrawals_30d", "active_days_30d")],
            *[
                F.coalesce(F.col(c), F.lit(0.0)).alias(c)
                for c in ("volume_usd_30d", "volume_usd_90d", "net_flow_usd_30d")
            ],
            ratio(F.col("trades_30d"), F.col("trades_90d")).alias("trade_share_last_30d"),
            F.col("_active_days_ahead").isNull().alias("churned"),
            (F.date_add("as_of_date", label_days - 1) <= F.col("_horizon")).alias("label_complete"),
        )
    )
