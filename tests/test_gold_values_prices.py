"""USD values in the exchange marts against pandas: a trade or wallet amount in a non-USD asset is valued at the
price of the last trade of the asset's USD-stable pair at or before it (pandas merge_asof), never left null where
a price exists; where none exists yet the row is counted or flagged as unpriced."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from marketlake.config import CONF_DIR
from marketlake.gold import customers, exchange
from marketlake.gold.spec import load_gold
from tests.frames import plain, to_spark

PARAMS = load_gold(CONF_DIR).params
FIXED = {"USDT": 1.0, "USDC": 1.0, "USD": 1.0, "MLT": 1.0}
DAY0, DAY1 = date(2026, 1, 1), date(2026, 1, 2)
TRADES = (
    "trade_id string, order_id string, user_id string, pair string, side string, quantity decimal(28,8), "
    "price decimal(28,8), fee decimal(28,8), fee_asset string, executed_at timestamp, event_date date"
)
LOGINS = "user_id string, success boolean, login_at timestamp, event_date date"
WALLET = (
    "tx_id string, user_id string, asset string, tx_type string, amount decimal(28,8), created_at timestamp, "
    "event_date date"
)


def at(day: date, hhmm: str) -> datetime:
    h, m = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, h, m, tzinfo=UTC)


def _trades() -> pd.DataFrame:
    rows = [
        # BTC's USD price: two trades at the same instant (the later trade id wins), then the next day
        ("b1", "u1", "BTC/USDT", "0.5", "60000", "15", "USDT", at(DAY0, "09:00")),
        ("b2", "u2", "BTC/USDT", "0.25", "62000", "3.1", "USDT", at(DAY0, "12:00")),
        ("b3", "u1", "BTC/USDT", "0.25", "61000", "3.05", "MLT", at(DAY0, "12:00")),
        ("b4", "u2", "BTC/USDT", "1", "64000", "64", "USDT", at(DAY1, "10:00")),
        ("h1", "u3", "ETH/USDT", "2", "3000", "6", "USDT", at(DAY0, "07:00")),
        # ETH/BTC: before any BTC price, exactly at one, after the tie, the next morning (yesterday's price), later
        ("e0", "u1", "ETH/BTC", "1", "0.05", "0.0001", "BTC", at(DAY0, "08:00")),
        ("e1", "u1", "ETH/BTC", "2", "0.05", "0.0002", "BTC", at(DAY0, "09:00")),
        ("e2", "u2", "ETH/BTC", "4", "0.0475", "0.004", "ETH", at(DAY0, "12:30")),
        ("e3", "u3", "ETH/BTC", "1", "0.05", "0.0001", "BTC", at(DAY1, "09:00")),
        ("e4", "u3", "ETH/BTC", "3", "0.05", "0.3", "MLT", at(DAY1, "11:00")),
        # eight decimals on both sides: the notional needs all sixteen of its decimals
        ("e5", "u3", "ETH/BTC", "0.0311381", "0.05164803", "0", "MLT", at(DAY1, "11:30")),
        # SOL is never traded against a USD stablecoin: its BTC fee can be valued, its SOL fee cannot
        ("s1", "u2", "SOL/BTC", "10", "0.0025", "0.01", "SOL", at(DAY1, "12:00")),
    ]
    df = pd.DataFrame(rows, columns=["trade_id", "user_id", "pair", "quantity", "price", "fee", "fee_asset", "at"])
    for c in ("quantity", "price", "fee"):
        df[c] = df[c].map(Decimal)
    return df.assign(
        order_id=df["trade_id"], side="buy", executed_at=df["at"], event_date=df["at"].map(lambda t: t.date())
    )


def _wallet() -> pd.DataFrame:
    rows = [
        ("w1", "u1", "BTC", "deposit", "0.2", at(DAY1, "10:30")),  # 0.2 x 64000 = 12800 > 10000
        ("w2", "u1", "BTC", "withdrawal", "-0.17", at(DAY1, "11:00")),  # 10880, and 85 % of w1 within 24 h
        ("w3", "u2", "USDT", "deposit", "10000", at(DAY1, "09:00")),  # exactly the threshold: not over it
        ("w4", "u2", "USDT", "deposit", "10000.01", at(DAY1, "09:30")),
        ("w5", "u3", "SOL", "deposit", "1", at(DAY1, "13:00")),  # no SOL price at all
        ("w6", "u3", "ETH", "deposit", "4", at(DAY1, "14:00")),  # 4 x 3000 = 12000 (ETH/USDT the day before)
        ("w7", "u2", "BTC", "deposit", "0.1", at(DAY0, "08:30")),  # before BTC's first price
    ]
    df = pd.DataFrame(rows, columns=["tx_id", "user_id", "asset", "tx_type", "amount", "created_at"])
    df["amount"] = df["amount"].map(Decimal)
    return df.assign(event_date=df["created_at"].map(lambda t: t.date()))


def _usd_rate(frame: pd.DataFrame, asset: str, time: str, trades: pd.DataFrame) -> pd.Series:
    """USD per unit of frame[asset] at frame[time]: fixed for stablecoins and MLT, else the price of the asset's
    last */USDT trade at or before the time (of trades at one instant, the last by trade id)."""
    usd_pairs = trades[trades["pair"].str.endswith("/USDT")]
    prices = pd.DataFrame(
        {
            "_asset": usd_pairs["pair"].str.split("/").str[0],
            "_at": usd_pairs["executed_at"],
            "_usd": usd_pairs["price"].astype(float),
            "_id": usd_pairs["trade_id"],
        }
    ).sort_values(["_at", "_id"])
    left = frame.assign(_row=range(len(frame)), _key=frame[asset]).sort_values(time)
    merged = pd.merge_asof(left, prices, left_on=time, right_on="_at", left_by="_key", right_by="_asset")
    merged = merged.sort_values("_row").reset_index(drop=True)
    return merged[asset].map(FIXED).fillna(merged["_usd"]).astype(float)


def _money(x: float) -> Decimal | None:
    return None if pd.isna(x) else Decimal(repr(float(x))).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _usd_trades(trades: pd.DataFrame) -> pd.DataFrame:
    quote_rate = _usd_rate(trades.assign(_q=trades["pair"].str.split("/").str[1]), "_q", "executed_at", trades)
    fee_rate = _usd_rate(trades, "fee_asset", "executed_at", trades)
    notional = (trades["quantity"] * trades["price"]).astype(float)
    return trades.assign(
        volume_usd=notional.values * quote_rate.values,
        fee_usd=trades["fee"].astype(float).values * fee_rate.values,
        notional=trades["quantity"] * trades["price"],
    )


@pytest.fixture(scope="module")
def inputs(spark: SparkSession) -> dict:
    users = pd.DataFrame({"user_id": ["u1", "u2"], "tier": ["basic", "vip"]})  # u3 has no user record
    return {
        "exchange_trades": to_spark(spark, _trades(), TRADES),
        "exchange_wallet_transactions": to_spark(spark, _wallet(), WALLET),
        "exchange_users": to_spark(spark, users, "user_id string, tier string"),
    }


def test_pair_daily_values_btc_quoted_trades_at_the_as_of_price(spark: SparkSession, inputs: dict) -> None:
    t = _usd_trades(_trades())
    t = t[t["event_date"] == DAY1]
    got = exchange.pair_daily(inputs, DAY1, DAY1, PARAMS)
    rows = []
    for pair, g in t.groupby("pair"):
        vwap = (g["notional"].sum() / g["quantity"].sum()).quantize(Decimal("0.00000001"), ROUND_HALF_UP)
        unpriced = int((g["volume_usd"].isna() | (g["fee"].notna() & g["fee_usd"].isna())).sum())
        rows.append((DAY1, pair, _money(g["volume_usd"].sum(min_count=1)), len(g), vwap,
                     _money(g["fee_usd"].sum(min_count=1)), g["user_id"].nunique(), unpriced))  # fmt: skip
    schema = (
        "date date, pair string, volume_usd decimal(20,2), trade_count long, vwap decimal(28,8), "
        "fees_usd decimal(20,2), distinct_traders long, unpriced_trades long"
    )
    expected = spark.createDataFrame(rows, schema)
    assertDataFrameEqual(got, expected)
    # the numbers themselves: ETH/BTC's USD volume is its BTC volume times BTC/USDT as of each trade
    eth = got.where("pair = 'ETH/BTC'").first()
    e5 = Decimal("0.0311381") * Decimal("0.05164803") * 64000  # 102.926...: rounded notional would give 102.91
    assert eth["volume_usd"] == (Decimal("3050") + Decimal("9600") + e5).quantize(Decimal("0.01"), ROUND_HALF_UP)
    vwap = (Decimal("0.2") + e5 / 64000) / Decimal("4.0311381")
    assert eth["vwap"] == vwap.quantize(Decimal("1e-8"), ROUND_HALF_UP) == Decimal("0.05001273")
    assert got.where("volume_usd IS NULL").count() == 0
    assert got.where("pair = 'SOL/BTC'").first()["unpriced_trades"] == 1  # its SOL fee has no price


def test_first_trades_before_any_price_are_flagged_not_dropped(spark: SparkSession, inputs: dict) -> None:
    day0 = exchange.pair_daily(inputs, DAY0, DAY0, PARAMS).where("pair = 'ETH/BTC'").first()
    # e0 (08:00) precedes BTC's first price; e1 at exactly 09:00 takes it; e2 takes the later trade id at 12:00
    assert (day0["trade_count"], day0["unpriced_trades"]) == (3, 1)
    assert day0["volume_usd"] == Decimal("6000.00") + Decimal("11590.00")  # 0.1 x 60000 + 0.19 x 61000
    assert day0["fees_usd"] == Decimal("12.00") + Decimal("12.00")  # 0.0002 BTC x 60000; 0.004 ETH x 3000


def test_fee_tiers_count_every_fee_in_usd(spark: SparkSession, inputs: dict) -> None:
    t = _usd_trades(_trades())
    t = t[t["event_date"] == DAY1].merge(pd.DataFrame({"user_id": ["u1", "u2"], "tier": ["basic", "vip"]}), "left")
    t["tier"] = t["tier"].fillna("unknown")
    nominal = {"basic": 0.0025, "pro": 0.0015, "vip": 0.0010}
    rows = []
    for tier, g in t.groupby("tier"):
        fees, volume = _money(g["fee_usd"].sum(min_count=1)), _money(g["volume_usd"].sum(min_count=1))
        paying = g.loc[g["fee_usd"] > 0, "user_id"].nunique()
        unpriced = int((g["volume_usd"].isna() | (g["fee"].notna() & g["fee_usd"].isna())).sum())
        rows.append((DAY1, tier, fees, volume, paying, unpriced, float(fees) / paying if paying else None,
                     float(fees) / float(volume) if volume else None, nominal.get(tier)))  # fmt: skip
    schema = (
        "date date, tier string, fee_revenue_usd decimal(20,2), volume_usd decimal(20,2), paying_users long, "
        "unpriced_trades long, revenue_per_paying_user_usd double, effective_fee_rate double, nominal_fee_rate double"
    )
    assertDataFrameEqual(exchange.fee_tiers_daily(inputs, DAY1, DAY1, PARAMS), spark.createDataFrame(rows, schema))


def test_compliance_values_wallet_amounts_as_of_their_time(spark: SparkSession, inputs: dict) -> None:
    w = _wallet()
    w["amount_usd"] = w["amount"].map(abs).astype(float) * _usd_rate(w, "asset", "created_at", _trades()).values
    today = w[w["event_date"] == DAY1]
    columns = ["tx_id", "user_id", "tx_type", "asset", "amount", "amount_usd", "created_at"]
    flagged = []
    for r in today.itertuples():
        base = (r.event_date, *[plain(getattr(r, c)) for c in columns])
        if pd.isna(r.amount_usd):
            flagged.append((*base, "unpriced_transaction", None))
        elif r.amount_usd > 10000:
            flagged.append((*base, "large_transaction", None))
        if r.tx_type == "withdrawal":
            deposits = w[(w["user_id"] == r.user_id) & (w["asset"] == r.asset) & (w["tx_type"] == "deposit")]
            hits = deposits[
                (deposits["created_at"] <= r.created_at)
                & ((r.created_at - deposits["created_at"]).dt.total_seconds() <= 24 * 3600)
                & (abs(r.amount) >= deposits["amount"] * Decimal("0.8"))
            ]
            if len(hits):
                flagged.append((*base, "rapid_withdrawal", hits.sort_values("created_at").iloc[-1]["tx_id"]))
    schema = (
        "date date, tx_id string, user_id string, tx_type string, asset string, amount decimal(28,8), "
        "amount_usd double, created_at timestamp, flag string, related_tx_id string"
    )
    expected = spark.createDataFrame(flagged, schema)
    got = exchange.compliance_flags(inputs, DAY1, DAY1, PARAMS)
    assertDataFrameEqual(got, expected)
    assert sorted((r["tx_id"], r["flag"]) for r in got.collect()) == [
        ("w1", "large_transaction"), ("w2", "large_transaction"), ("w2", "rapid_withdrawal"),
        ("w4", "large_transaction"), ("w5", "unpriced_transaction"), ("w6", "large_transaction"),
    ]  # fmt: skip


def test_rfm_and_churn_volumes_include_non_usd_quotes(spark: SparkSession, inputs: dict) -> None:
    as_of = date(2026, 1, 3)
    t = _usd_trades(_trades())
    monetary = t.groupby("user_id")["volume_usd"].sum(min_count=1).map(_money)
    rfm = {r["user_id"]: r["monetary_usd"] for r in customers.exchange_rfm(inputs, as_of, as_of, PARAMS).collect()}
    assert (
        rfm == monetary.to_dict() == {"u1": Decimal("51250.00"), "u2": Decimal("92690.00"), "u3": Decimal("18752.93")}
    )
    registered = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "registered_at": at(DAY0, "00:00"), "tier": "basic",
                               "kyc_status": "verified", "status": "active"})  # fmt: skip
    logins = pd.DataFrame({"user_id": [], "success": [], "login_at": [], "event_date": []})
    churn_inputs = {
        **inputs,
        "exchange_users": to_spark(
            spark, registered, "user_id string, registered_at timestamp, tier string, kyc_status string, status string"
        ),
        "exchange_logins": to_spark(
            spark, logins, "user_id string, success boolean, login_at timestamp, event_date date"
        ),
    }
    features = {r["user_id"]: r for r in customers.churn_features(churn_inputs, as_of, as_of, PARAMS).collect()}
    w = _wallet()
    w["value"] = w["amount"].astype(float) * _usd_rate(w, "asset", "created_at", _trades()).values
    flows = w[w["tx_type"].isin(["deposit", "withdrawal"])].groupby("user_id")["value"].sum()
    for user in ("u1", "u2", "u3"):
        assert features[user]["volume_usd_30d"] == pytest.approx(t.loc[t.user_id == user, "volume_usd"].sum())
        assert features[user]["net_flow_usd_30d"] == pytest.approx(flows.get(user, 0.0))
