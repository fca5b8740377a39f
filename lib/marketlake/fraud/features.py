"""The rows each fraud case scores, with their features, label and rule baseline flag (one frame per case).

Every frame has: date, occurred_at, entity_id (what is scored), user_id / customer_id / order_id (whose it is:
what an erasure matches), label (1.0 / 0.0), rule_flag, then the case's features. Features use only what was
known at or before the row's time; the label is what became known later.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from marketlake.gold.common import between
from marketlake.gold.exchange import compliance_flags, wallet_in_usd
from marketlake.gold.trends import return_kinds

DAY_S = 86400
RULE_FLAGS = ("large_transaction", "rapid_withdrawal")
# The account status compliance sets after a confirmed fraud case (silver.exchange_users).
FROZEN = "frozen"


def _trailing(seconds: int) -> Window:
    """A user's events in the `seconds` up to and including this one's time (ties included: known at that time)."""
    return Window.partitionBy("user_id").orderBy("_s").rangeBetween(-seconds, 0)


def _when(kind: str, value: Column) -> Column:
    return F.when(F.col("_kind") == kind, value)


def exchange_withdrawals(
    inputs: Mapping[str, DataFrame], params: Mapping[str, Any], first: date, last: date
) -> DataFrame:
    """Each wallet withdrawal dated first..last with the user's deposits, withdrawals, trades and logins up to it
    (the inputs hold the 30 days before first too: every window is at most 30 days, so a row's features do not
    depend on how far back the run reads), the account, the label (the account is frozen in silver now: the source
    dates no freeze) and the rule flag (a large_transaction or rapid_withdrawal compliance flag)."""
    tx = wallet_in_usd(inputs, params).select(
        "tx_id",
        "user_id",
        "tx_type",
        "created_at",
        "event_date",
        F.abs(F.col("amount_usd").cast("double")).alias("usd"),
        F.abs(F.col("amount").cast("double")).alias("amount"),
        F.col("balance_before").cast("double").alias("balance_before"),
    )
    wallet = tx.where(F.col("tx_type").isin("deposit", "withdrawal")).select(
        "user_id",
        F.col("created_at").cast("long").alias("_s"),
        F.col("tx_type").alias("_kind"),
        "usd",
        F.lit(None).cast("string").alias("country"),
        F.lit(None).cast("boolean").alias("success"),
        F.when(F.col("tx_type") == "withdrawal", F.col("tx_id")).alias("tx_id"),
    )
    trades = inputs["exchange_trades"].select(
        "user_id",
        F.col("executed_at").cast("long").alias("_s"),
        F.lit("trade").alias("_kind"),
        F.lit(None).cast("double").alias("usd"),
        F.lit(None).cast("string").alias("country"),
        F.lit(None).cast("boolean").alias("success"),
        F.lit(None).cast("string").alias("tx_id"),
    )
    logins = inputs["exchange_logins"].select(
        "user_id",
        F.col("login_at").cast("long").alias("_s"),
        F.lit("login").alias("_kind"),
        F.lit(None).cast("double").alias("usd"),
        "country",
        "success",
        F.lit(None).cast("string").alias("tx_id"),
    )
    day, week, month = _trailing(DAY_S), _trailing(7 * DAY_S), _trailing(30 * DAY_S)
    history = (
        wallet.unionByName(trades)
        .unionByName(logins)
        .select(
            "tx_id",
            F.coalesce(F.sum(_when("deposit", F.col("usd"))).over(day), F.lit(0.0)).alias("deposits_24h_usd"),
            F.coalesce(F.max(_when("deposit", F.col("usd"))).over(day), F.lit(0.0)).alias("max_deposit_24h_usd"),
            F.max(_when("deposit", F.col("_s"))).over(month).alias("_deposit_s"),
            (F.count(_when("withdrawal", F.lit(1))).over(month) - 1).alias("withdrawals_30d"),
            F.count(_when("trade", F.lit(1))).over(week).alias("trades_7d"),
            F.count(_when("login", F.when(~F.col("success"), 1))).over(week).alias("failed_logins_7d"),
            F.size(F.collect_set(_when("login", F.col("country"))).over(week)).alias("login_countries_7d"),
            "_s",
        )
        .where(F.col("tx_id").isNotNull())
    )
    flagged = (
        compliance_flags(inputs, first, last, params)
        .where(F.col("flag").isin(*RULE_FLAGS))
        .select("tx_id")
        .distinct()
        .withColumn("rule_flag", F.lit(True))
    )
    users = inputs["exchange_users"].select("user_id", "registered_at", "kyc_completed_at", "tier", "status")
    withdrawals = tx.where((F.col("tx_type") == "withdrawal") & between("event_date", first, last))
    at = F.col("created_at")
    return (
        withdrawals.join(history, "tx_id")
        .join(users, "user_id", "left")
        .join(flagged, "tx_id", "left")
        .select(
            F.col("event_date").alias("date"),
            at.alias("occurred_at"),
            F.col("tx_id").alias("entity_id"),
            "user_id",
            F.lit(None).cast("string").alias("customer_id"),
            F.lit(None).cast("string").alias("order_id"),
            (F.coalesce(F.col("status"), F.lit("")) == FROZEN).cast("double").alias("label"),
            F.coalesce("rule_flag", F.lit(False)).alias("rule_flag"),
            F.col("usd").alias("amount_usd"),
            F.when(F.col("balance_before") > 0, F.col("amount") / F.col("balance_before")).alias("balance_share"),
            "deposits_24h_usd",
            "max_deposit_24h_usd",
            F.when(F.col("deposits_24h_usd") > 0, F.col("usd") / F.col("deposits_24h_usd")).alias(
                "withdrawn_share_of_deposits_24h"
            ),
            ((F.col("_s") - F.col("_deposit_s")) / 3600.0).alias("hours_since_deposit"),
            "withdrawals_30d",
            "trades_7d",
            ((at.cast("long") - F.col("registered_at").cast("long")) / float(DAY_S)).alias("account_age_days"),
            F.coalesce(F.col("kyc_completed_at") <= at, F.lit(False)).cast("int").alias("kyc_verified"),
            "failed_logins_7d",
            "login_countries_7d",
            "tier",
        )
    )


def commerce_lines(
    facts: DataFrame,
    returns: DataFrame,
    params: Mapping[str, Any],
    first: date,
    last: date,
    label_days: int,
    rule: str,
) -> DataFrame:
    """Each order line purchased first..last (gold.fact_trend_purchase_outcomes: its purchase and the customer's
    history before it), labelled 1 when the line's first return carries a fraud reason code and was requested
    within label_days of the purchase; the rule flag is the case's SQL rule over those columns."""
    kinds = return_kinds(returns, params).where(F.col("return_kind") == "fraud")
    lines = facts.where(between("purchase_date", first, last)).join(
        kinds.select("order_id", "product_id", "requested_at"), ["order_id", "product_id"], "left"
    )
    claimed = F.col("requested_at") <= F.col("purchased_at") + F.make_dt_interval(days=F.lit(label_days))
    return lines.select(
        F.col("purchase_date").alias("date"),
        F.col("purchased_at").alias("occurred_at"),
        F.concat_ws("#", "order_id", F.col("line_no").cast("string")).alias("entity_id"),
        F.lit(None).cast("string").alias("user_id"),
        "customer_id",
        "order_id",
        F.coalesce(claimed, F.lit(False)).cast("double").alias("label"),
        F.coalesce(F.expr(rule), F.lit(False)).alias("rule_flag"),
        F.col("line_total_usd").cast("double").alias("line_total_usd"),
        "quantity",
        "discount_pct",
        "hour_of_day",
        "customer_prior_orders_90d",
        "customer_prior_return_rate_90d",
        "customer_days_since_prior_order",
        "customer_prior_aov_usd",
        "device",
        "channel",
    )
