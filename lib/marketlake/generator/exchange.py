"""Crypto exchange sources: users, trading pairs, orders (with status updates), trades, wallet transactions, logins.

Hidden causal structure: every user has an activity level; a share of users churn, and their activity declines
linearly over the three weeks before they stop. VIP/Pro users trade larger notionals at lower fees. A few users are
money mules: once, they deposit a large amount and withdraw most of it within a day (the compliance pattern), they
make no other withdrawal, and compliance has frozen their accounts (status 'frozen': the fraud label).
"""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from marketlake.generator.params import DAY_S, GeneratorParams
from marketlake.generator.people import Person
from marketlake.generator.rand import Rng, lookup

DEC = "decimal(20,8)"
TIERS = [("Basic", 0.70), ("Pro", 0.22), ("VIP", 0.08)]
TAKER_FEE = {"Basic": 0.0025, "Pro": 0.0015, "VIP": 0.0010}
NOTIONAL_FACTOR = {"Basic": 1.0, "Pro": 2.5, "VIP": 6.0}
# pair -> (base, quote, weight, base price in USD, tick size, min quantity)
PAIRS = {
    "BTC/USDT": ("BTC", "USDT", 0.28, 65000.0, 0.01, 0.00001),
    "ETH/USDT": ("ETH", "USDT", 0.20, 3200.0, 0.01, 0.0001),
    "SOL/USDT": ("SOL", "USDT", 0.10, 150.0, 0.001, 0.001),
    "BNB/USDT": ("BNB", "USDT", 0.06, 580.0, 0.01, 0.001),
    "XRP/USDT": ("XRP", "USDT", 0.06, 0.6, 0.0001, 1.0),
    "ADA/USDT": ("ADA", "USDT", 0.05, 0.45, 0.0001, 1.0),
    "DOGE/USDT": ("DOGE", "USDT", 0.05, 0.15, 0.00001, 10.0),
    "LTC/USDT": ("LTC", "USDT", 0.04, 80.0, 0.01, 0.001),
    "DOT/USDT": ("DOT", "USDT", 0.03, 7.0, 0.001, 0.1),
    "AVAX/USDT": ("AVAX", "USDT", 0.03, 35.0, 0.001, 0.01),
    "ETH/BTC": ("ETH", "BTC", 0.06, 3200.0, 0.000001, 0.0001),
    "SOL/BTC": ("SOL", "BTC", 0.04, 150.0, 0.0000001, 0.001),
}
BTC_USD = 65000.0
# Users who launder money once (and whose accounts compliance then froze).
MULE_SHARE = 0.02


def reference_price(pair: Column, ts: Column) -> Column:
    """A smooth, deterministic mid price per pair in its quote currency (multi-day and intraday cycles)."""
    base_usd = lookup({p: v[3] for p, v in PAIRS.items()}, pair)
    quote_usd = F.when(F.substring_index(pair, "/", -1) == "BTC", F.lit(BTC_USD)).otherwise(F.lit(1.0))
    phase = F.pmod(F.xxhash64(pair), F.lit(628)).cast("double") / 100.0
    t = ts.cast("double")
    cycle = 1 + 0.06 * F.sin(2 * math.pi * t / (9 * DAY_S) + phase) + 0.015 * F.sin(2 * math.pi * t / DAY_S + phase)
    return base_usd * cycle / quote_usd


def _users(spark: SparkSession, p: GeneratorParams, rng: Rng) -> DataFrame:
    n_existing = p.count("exchange_users_existing")
    n_new = p.count("exchange_users_new_per_day") * p.days
    uid = F.col("uid")
    history_s = 180 * DAY_S
    registered = F.when(uid < n_existing, F.lit(p.start_s - history_s) + uid * (history_s / n_existing)).otherwise(
        F.lit(p.start_s) + (uid - n_existing) * (p.days * DAY_S / max(n_new, 1))
    )
    registered = (registered + rng.uniform("u:reg", uid) * 600).cast("long")
    person = Person(rng, uid, "exchange:user")
    churns = rng.bernoulli("u:churns", 0.35, uid)
    churn_at = F.when(
        churns, registered + 3 * DAY_S + rng.uniform("u:churn_at", uid) * (p.end_s + 60 * DAY_S - registered)
    ).cast("long")
    referral = F.concat(
        F.lit("RF"), F.upper(F.substring(F.sha2(F.concat(F.lit(p.seed), uid.cast("string")), 256), 1, 8))
    )
    referrer = F.floor(rng.uniform("u:referrer", uid) * uid).cast("long")
    referrer_code = F.concat(
        F.lit("RF"), F.upper(F.substring(F.sha2(F.concat(F.lit(p.seed), referrer.cast("string")), 256), 1, 8))
    )
    kyc = rng.choice("u:kyc", [("verified", 0.8), ("pending", 0.15), ("rejected", 0.05)], uid)
    status = F.when(churns & (churn_at < p.end_s), rng.choice("u:closed", [("closed", 0.4), ("active", 0.6)], uid))
    status = status.otherwise(rng.choice("u:status", [("active", 0.97), ("suspended", 0.03)], uid))
    launders = rng.bernoulli("u:launder", MULE_SHARE, uid)
    status = F.when(launders, F.lit("frozen")).otherwise(status)
    return (
        spark.range(n_existing + n_new)
        .withColumnRenamed("id", "uid")
        .select(
            uid,
            F.concat(F.lit("U"), F.lpad(uid.cast("string"), 8, "0")).alias("user_id"),
            person.email.alias("email"),
            person.phone.alias("phone"),
            person.first_name.alias("first_name"),
            person.last_name.alias("last_name"),
            person.country.alias("country"),
            rng.choice("u:tier", TIERS, uid).alias("tier"),
            referral.alias("referral_code"),
            F.when((uid > 0) & rng.bernoulli("u:referred", 0.2, uid), referrer_code).alias("referred_by"),
            status.alias("status"),
            kyc.alias("kyc_status"),
            F.when(
                kyc == "verified",
                F.timestamp_seconds(registered + rng.exponential("u:kyc_h", 20 * 3600.0, uid).cast("long")),
            ).alias("kyc_completed_at"),
            F.timestamp_seconds(registered).alias("registered_at"),
            registered.alias("_registered_s"),
            churn_at.alias("_churn_s"),
            rng.lognormal("u:activity", 1.0, 0.6, uid).alias("_activity"),
            launders.alias("_launders"),
        )
    )


def _user_days(spark: SparkSession, p: GeneratorParams, users: DataFrame) -> DataFrame:
    """One row per (user, day) the user is registered and not churned, with that day's activity intensity."""
    days = spark.range(p.days).withColumnRenamed("id", "day")
    day_start = F.lit(p.start_s) + F.col("day") * DAY_S
    mid = day_start + DAY_S // 2
    decline = F.when(F.col("_churn_s").isNull(), F.lit(1.0)).otherwise(
        F.least(F.lit(1.0), F.greatest(F.lit(0.0), (F.col("_churn_s") - mid) / (21.0 * DAY_S)))
    )
    weekday = F.dayofweek(F.to_date(F.timestamp_seconds(day_start)))
    weekly = F.when(weekday.isin(1, 7), F.lit(0.8)).otherwise(F.lit(1.05))
    profile = users.select("uid", "user_id", "tier", "country", "_registered_s", "_churn_s", "_activity", "_launders")
    return (
        profile.crossJoin(F.broadcast(days))
        .withColumn("_day_s", day_start.cast("long"))
        .where(
            (F.col("_registered_s") < F.col("_day_s") + DAY_S)
            & (F.col("_churn_s").isNull() | (F.col("_churn_s") > F.col("_day_s")))
        )
        .withColumn("_intensity", F.col("_activity") * decline * weekly)
    )


def _counts(rng: Rng, stream: str, rate: Column, *keys: Column) -> Column:
    """A non-negative integer with mean `rate` (stochastic rounding of rate times a noisy factor)."""
    noisy = rate * (0.5 + rng.uniform(stream + ":f", *keys))
    return F.floor(noisy + rng.uniform(stream, *keys)).cast("int")


def _orders(p: GeneratorParams, rng: Rng, user_days: DataFrame) -> DataFrame:
    """Orders with their final state; one row per order."""
    rate = F.lit(float(p.volumes["exchange_orders_per_active_user_day"])) * F.col("_intensity")
    n = _counts(rng, "o:n", rate, F.col("uid"), F.col("day"))
    df = user_days.withColumn("k", F.explode(F.sequence(F.lit(0), n - 1))).where(n > 0)
    key = F.concat_ws("-", F.col("uid").cast("string"), F.col("day").cast("string"), F.col("k").cast("string"))
    df = df.withColumn("_key", key)
    k = F.col("_key")
    pair = rng.choice("o:pair", [(name, v[2]) for name, v in PAIRS.items()], k)
    order_type = rng.choice("o:type", [("market", 0.5), ("limit", 0.35), ("stop_loss", 0.08), ("take_profit", 0.07)], k)
    created = (F.col("_day_s") + rng.uniform("o:t", k) * DAY_S).cast("long")
    df = df.select(
        "*",
        F.concat(
            F.lit("EXO-"),
            F.lpad(F.col("day").cast("string"), 4, "0"),
            F.lit("-"),
            F.lpad(F.col("uid").cast("string"), 8, "0"),
            F.lit("-"),
            F.col("k").cast("string"),
        ).alias("order_id"),
        pair.alias("pair"),
        order_type.alias("order_type"),
        rng.choice("o:side", [("buy", 0.52), ("sell", 0.48)], k).alias("side"),
        created.alias("_created_s"),
    )
    ref = reference_price(F.col("pair"), F.col("_created_s"))
    base_usd = lookup({name: v[3] for name, v in PAIRS.items()}, F.col("pair"))
    notional_usd = rng.lognormal("o:notional", 400.0, 1.1, k) * lookup(NOTIONAL_FACTOR, F.col("tier"))
    quantity = F.round(notional_usd / base_usd, 6)
    limit_offset = (
        F.when(F.col("order_type") == "limit", (rng.uniform("o:lim", k) - 0.5) * 0.004)
        .when(F.col("order_type") == "stop_loss", F.lit(-0.02))
        .when(F.col("order_type") == "take_profit", F.lit(0.02))
    )
    price = F.when(F.col("order_type") == "market", ref).otherwise(ref * (1 + limit_offset))
    status = (
        F.when(F.col("order_type") == "market", rng.choice("o:st:m", [("filled", 0.97), ("cancelled", 0.03)], k))
        .when(
            F.col("order_type") == "limit",
            rng.choice("o:st:l", [("filled", 0.55), ("partial", 0.15), ("cancelled", 0.18), ("pending", 0.12)], k),
        )
        .otherwise(rng.choice("o:st:s", [("filled", 0.4), ("pending", 0.45), ("cancelled", 0.15)], k))
    )
    ttf = (
        F.when(F.col("order_type") == "market", rng.uniform("o:ttf", k) * 2)
        .when(F.col("order_type") == "limit", rng.exponential("o:ttf", 1800.0, k))
        .otherwise(rng.exponential("o:ttf", 6 * 3600.0, k))
    )
    df = df.select(
        "*",
        quantity.cast(DEC).alias("quantity"),
        price.cast(DEC).alias("price"),
        status.alias("status"),
        (F.col("_created_s") + F.greatest(F.lit(1.0), ttf)).cast("long").alias("_updated_s"),
    )
    filled = (
        F.when(F.col("status") == "filled", F.col("quantity"))
        .when(
            F.col("status") == "partial",
            F.round(F.col("quantity") * (0.1 + 0.8 * rng.uniform("o:part", k)), 6),
        )
        .otherwise(F.lit(0.0))
    )
    return df.withColumn("filled_quantity", filled.cast(DEC)).where(F.col("quantity") > 0)


def _order_versions(orders: DataFrame) -> DataFrame:
    """The order feed: non-market orders first appear as pending, then again with their final status (CDC)."""
    created = F.struct(
        F.lit("pending").alias("status"),
        F.lit(0).cast(DEC).alias("filled_quantity"),
        F.col("_created_s").alias("_ts"),
        F.lit(0).alias("v"),
    )
    final = F.struct(
        F.col("status").alias("status"),
        F.col("filled_quantity").alias("filled_quantity"),
        F.col("_updated_s").alias("_ts"),
        F.lit(1).alias("v"),
    )
    versions = (
        F.when(F.col("order_type") == "market", F.array(final))
        .when(F.col("status") == "pending", F.array(created))
        .otherwise(F.array(created, final))
    )
    df = orders.select("*", F.explode(versions).alias("ver"))
    return df.select(
        "order_id",
        "user_id",
        "pair",
        "order_type",
        "side",
        F.col("ver.status").alias("status"),
        "quantity",
        "price",
        F.col("ver.filled_quantity").alias("filled_quantity"),
        F.timestamp_seconds("_created_s").alias("created_at"),
        F.timestamp_seconds("ver._ts").alias("updated_at"),
        F.col("ver._ts").alias("_ts"),
        F.concat("order_id", F.lit("#"), F.col("ver.v").cast("string")).alias("_rid"),
    )


def _trades(p: GeneratorParams, rng: Rng, orders: DataFrame) -> DataFrame:
    filled = orders.where(F.col("status").isin("filled", "partial"))
    k = F.col("order_id")
    n_fills = F.when((F.col("status") == "filled") & rng.bernoulli("t:split", 0.3, k), F.lit(2)).otherwise(F.lit(1))
    df = filled.withColumn("fill", F.explode(F.sequence(F.lit(1), n_fills))).withColumn("_n", n_fills)
    first_share = 0.3 + 0.4 * rng.uniform("t:share", k)
    share = F.when(F.col("_n") == 1, F.lit(1.0)).when(F.col("fill") == 1, first_share).otherwise(1 - first_share)
    tk = F.concat(k, F.lit("-"), F.col("fill").cast("string"))
    executed = (F.col("_created_s") + (F.col("_updated_s") - F.col("_created_s")) * F.col("fill") / F.col("_n")).cast(
        "long"
    )
    side_sign = F.when(F.col("side") == "buy", F.lit(1.0)).otherwise(F.lit(-1.0))
    slip_scale = F.when(F.col("order_type") == "market", F.lit(0.0008)).otherwise(F.lit(0.0002))
    exec_price = reference_price(F.col("pair"), executed) * (
        1 + side_sign * F.abs(rng.normal("t:slip", tk)) * slip_scale
    )
    qty = F.round(F.col("filled_quantity").cast("double") * share, 8)
    fee_rate = lookup(TAKER_FEE, F.col("tier"))
    native_fee = rng.bernoulli("t:native", 0.1, tk)
    quote = F.substring_index(F.col("pair"), "/", -1)
    fee = F.when(native_fee, qty * exec_price * fee_rate * 0.75).otherwise(qty * exec_price * fee_rate)
    return df.select(
        F.concat(F.lit("EXT-"), F.substring(k, 5, 40), F.lit("-"), F.col("fill").cast("string")).alias("trade_id"),
        "order_id",
        "user_id",
        "pair",
        "side",
        qty.cast(DEC).alias("quantity"),
        exec_price.cast(DEC).alias("price"),
        fee.cast(DEC).alias("fee"),
        F.when(native_fee, F.lit("MLT")).otherwise(quote).alias("fee_asset"),
        F.timestamp_seconds(executed).alias("executed_at"),
        rng.choice("t:liq", [("taker", 0.6), ("maker", 0.4)], tk).alias("liquidity"),
        executed.alias("_ts"),
        tk.alias("_rid"),
    )


def _wallet_transactions(p: GeneratorParams, rng: Rng, user_days: DataFrame) -> DataFrame:
    rate = F.lit(float(p.volumes["exchange_wallet_tx_per_active_user_day"])) * F.col("_intensity")
    n = _counts(rng, "w:n", rate, F.col("uid"), F.col("day"))
    df = user_days.withColumn("k", F.explode(F.sequence(F.lit(0), n - 1))).where(n > 0)
    key = F.concat_ws(
        "-", F.lit("w"), F.col("uid").cast("string"), F.col("day").cast("string"), F.col("k").cast("string")
    )
    df = df.withColumn("_key", key)
    k = F.col("_key")
    tx_type = rng.choice(
        "w:type", [("deposit", 0.35), ("withdrawal", 0.2), ("trade", 0.3), ("fee", 0.1), ("reward", 0.05)], k
    )
    initial = rng.lognormal("w:initial", 2000.0, 0.8, F.col("uid"))
    amount = (
        F.when(tx_type == "deposit", rng.lognormal("w:dep", 500.0, 1.2, k))
        .when(tx_type == "withdrawal", -initial * (0.05 + 0.2 * rng.uniform("w:wd", k)))
        .when(tx_type == "trade", rng.normal("w:trade", k) * 200.0)
        .when(tx_type == "fee", -rng.uniform("w:fee", k) * 2.0)
        .otherwise(1.0 + rng.uniform("w:reward", k) * 19.0)
    )
    created = (F.col("_day_s") + rng.uniform("w:t", k) * DAY_S).cast("long")
    regular = df.where(~(F.col("_launders") & (tx_type == "withdrawal"))).select(
        "uid",
        "user_id",
        k.alias("_rid"),
        tx_type.alias("tx_type"),
        F.round(amount, 8).alias("_amount"),
        created.alias("_ts"),
        initial.alias("_initial_balance"),
    )
    # The compliance pattern: a large deposit, then most of it withdrawn within a day.
    launder_days = user_days.where(F.col("_launders") & (F.col("day") == F.pmod(F.col("uid"), F.lit(p.days))))
    lk = F.concat(F.lit("l-"), F.col("uid").cast("string"))
    big = 15000.0 + 35000.0 * rng.uniform("w:big", lk)
    dep_t = (F.col("_day_s") + rng.uniform("w:big_t", lk) * DAY_S / 2).cast("long")
    pattern = launder_days.select(
        "uid",
        "user_id",
        F.explode(
            F.array(
                F.struct(
                    F.concat(lk, F.lit("-d")).alias("_rid"),
                    F.lit("deposit").alias("tx_type"),
                    F.round(big, 2).alias("_amount"),
                    dep_t.alias("_ts"),
                ),
                F.struct(
                    F.concat(lk, F.lit("-w")).alias("_rid"),
                    F.lit("withdrawal").alias("tx_type"),
                    F.round(-big * (0.9 + 0.08 * rng.uniform("w:big_w", lk)), 2).alias("_amount"),
                    (dep_t + 3600 + rng.uniform("w:big_wt", lk) * 20 * 3600).cast("long").alias("_ts"),
                ),
            )
        ).alias("x"),
        rng.lognormal("w:initial", 2000.0, 0.8, F.col("uid")).alias("_initial_balance"),
    ).select("uid", "user_id", "x._rid", "x.tx_type", "x._amount", "x._ts", "_initial_balance")
    txs = regular.unionByName(pattern)
    w = Window.partitionBy("uid").orderBy("_ts", "_rid").rowsBetween(Window.unboundedPreceding, -1)
    before = F.round(F.col("_initial_balance") + F.coalesce(F.sum("_amount").over(w), F.lit(0.0)), 8)
    txs = txs.withColumn("_before", before)
    on_chain = F.col("tx_type").isin("deposit", "withdrawal")
    return txs.select(
        F.concat(F.lit("WTX-"), F.upper(F.substring(F.sha2(F.col("_rid"), 256), 1, 16))).alias("tx_id"),
        "user_id",
        F.lit("USDT").alias("asset"),
        "tx_type",
        F.col("_amount").cast(DEC).alias("amount"),
        F.col("_before").cast(DEC).alias("balance_before"),
        (F.col("_before") + F.col("_amount")).cast(DEC).alias("balance_after"),
        F.when(on_chain, F.concat(F.lit("0x"), F.sha2(F.concat(F.lit("chain"), F.col("_rid")), 256))).alias("tx_hash"),
        F.timestamp_seconds("_ts").alias("created_at"),
        "_ts",
        "_rid",
    )


def _logins(p: GeneratorParams, rng: Rng, user_days: DataFrame) -> DataFrame:
    rate = F.lit(float(p.volumes["exchange_logins_per_active_user_day"])) * (0.3 + F.col("_intensity"))
    n = _counts(rng, "l:n", rate, F.col("uid"), F.col("day"))
    df = user_days.withColumn("k", F.explode(F.sequence(F.lit(0), n - 1))).where(n > 0)
    k = F.concat_ws(
        "-", F.lit("l"), F.col("uid").cast("string"), F.col("day").cast("string"), F.col("k").cast("string")
    )
    home = F.pmod(F.xxhash64(F.lit(p.seed), F.col("uid")), F.lit(1 << 24))
    roaming = rng.bernoulli("l:roam", 0.2, k)
    net = F.when(roaming, F.pmod(F.xxhash64(k), F.lit(1 << 24))).otherwise(home)
    ip = F.concat_ws(
        ".",
        (F.floor(net / 65536) % 223 + 1).cast("string"),
        (F.floor(net / 256) % 256).cast("string"),
        (net % 256).cast("string"),
        rng.randint("l:host", 1, 254, k).cast("string"),
    )
    ts = (F.col("_day_s") + rng.uniform("l:t", k) * DAY_S).cast("long")
    return df.select(
        F.concat(F.lit("LG-"), F.upper(F.substring(F.sha2(k, 256), 1, 16))).alias("login_id"),
        "user_id",
        ip.alias("ip_address"),
        rng.choice("l:device", [("ios", 0.35), ("android", 0.35), ("web", 0.3)], k).alias("device"),
        F.when(rng.bernoulli("l:abroad", 0.03, k), F.lit("SG")).otherwise(F.col("country")).alias("country"),
        rng.bernoulli("l:ok", 0.96, k).alias("success"),
        F.timestamp_seconds(ts).alias("login_at"),
        ts.alias("_ts"),
        k.alias("_rid"),
    )


def generate(spark: SparkSession, p: GeneratorParams) -> dict[str, DataFrame]:
    """Clean records per exchange entity: contract columns (+ drift columns), `_ts` and `_rid`."""
    rng = Rng(p.seed)
    users = _users(spark, p, rng).persist()
    user_days = _user_days(spark, p, users).persist()
    orders = _orders(p, rng, user_days).persist()
    pairs = spark.createDataFrame(
        [(name, v[0], v[1], v[4], v[5], "trading") for name, v in PAIRS.items()],
        "pair string, base_asset string, quote_asset string, tick_size double, min_quantity double, status string",
    ).select(
        "*",
        F.timestamp_seconds(F.lit(p.start_s - 400 * DAY_S)).alias("listed_at"),
        F.lit(p.start_s).alias("_ts"),
        F.col("pair").alias("_rid"),
    )
    user_records = users.select(
        "user_id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "country",
        "tier",
        "referral_code",
        "referred_by",
        "status",
        "kyc_status",
        "kyc_completed_at",
        "registered_at",
        F.col("registered_at").alias("updated_at"),
        F.greatest(F.col("_registered_s"), F.lit(p.start_s)).alias("_ts"),
        F.col("user_id").alias("_rid"),
    )
    return {
        "users": user_records,
        "trading_pairs": pairs,
        "orders": _amounts_as_strings(_order_versions(orders)),
        "trades": _amounts_as_strings(_trades(p, rng, orders)),
        "wallet_transactions": _amounts_as_strings(_wallet_transactions(p, rng, user_days)),
        "logins": _logins(p, rng, user_days),
    }


def _amounts_as_strings(df: DataFrame) -> DataFrame:
    """Exchange APIs send amounts as fixed-point strings ("0.00100000"), which keeps DECIMAL(20,8) exact."""
    decimals = {f.name for f in df.schema.fields if f.dataType.typeName() == "decimal"}
    return df.select(*[F.col(c).cast("string").alias(c) if c in decimals else F.col(c) for c in df.columns])


DRIFT_COLUMNS = {"trades": ("liquidity",)}
