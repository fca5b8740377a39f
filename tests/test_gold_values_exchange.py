"""Exchange gold marts against an independent computation of their documented definitions (README "Gold",
conf/gold.yaml `about`, DOMAIN.md): small hand-made inputs that sit on every edge (window boundaries, empty days,
thresholds, nested steps, as-of cut-offs), the expected frame worked out in plain Python/pandas from the
definition, and the builder's whole frame compared with it.

Inputs are limited to the dates the build reads for the range (lookback before, lookahead after, as
conf/gold.yaml declares), except where noted: a builder is always called with silver as `gold_build` reads it.
Which day data is "in" for the *_complete flags is the last date the inputs hold; each test ends its data with a
trade on that date, so the silver tables agree on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from marketlake.config import CONF_DIR
from marketlake.gold import customers, exchange
from marketlake.gold.spec import load_gold
from tests.frames import to_spark

PARAMS = load_gold(CONF_DIR).params

USERS = (
    "user_id string, tier string, kyc_status string, kyc_completed_at timestamp, registered_at timestamp, status string"
)
TRADES = (
    "trade_id string, order_id string, user_id string, pair string, side string, quantity decimal(28,8), "
    "price decimal(28,8), fee decimal(28,8), fee_asset string, executed_at timestamp, event_date date"
)
ORDERS = (
    "order_id string, user_id string, pair string, order_type string, side string, status string, "
    "quantity decimal(28,8), price decimal(28,8), filled_quantity decimal(28,8), created_at timestamp, event_date date"
)
LOGINS = "login_id string, user_id string, success boolean, login_at timestamp, event_date date"
WALLET = (
    "tx_id string, user_id string, asset string, tx_type string, amount decimal(28,8), created_at timestamp, "
    "event_date date"
)


def t(text: str) -> datetime:
    """A zone-aware UTC time from 'YYYY-MM-DD[ HH:MM:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def d(text: str) -> date:
    return date.fromisoformat(text)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def ratio(numerator: float, denominator: float) -> float | None:
    return None if not denominator else numerator / denominator


# Silver rows. Every event table gets event_date = the UTC date of its time column, as silver partitions it.


def users(*rows: tuple) -> pd.DataFrame:
    """(user_id, registered_at, tier, kyc_status, kyc_completed_at)."""
    frame = pd.DataFrame(rows, columns=["user_id", "registered_at", "tier", "kyc_status", "kyc_completed_at"])
    return frame.assign(status="active")


def _dated(frame: pd.DataFrame, time: str) -> pd.DataFrame:
    return frame.assign(event_date=[x.date() for x in frame[time]])


def trades(*rows: tuple) -> pd.DataFrame:
    """(trade_id, order_id, user_id, pair, side, quantity, price, executed_at); fee 0.1 USDT."""
    columns = ["trade_id", "order_id", "user_id", "pair", "side", "quantity", "price", "executed_at"]
    frame = pd.DataFrame(rows, columns=columns).astype(object)
    frame["quantity"] = [Decimal(str(q)) for q in frame["quantity"]]
    frame["price"] = [Decimal(str(p)) for p in frame["price"]]
    return _dated(frame.assign(fee=Decimal("0.1"), fee_asset="USDT"), "executed_at")


def orders(*rows: tuple) -> pd.DataFrame:
    """(order_id, pair, order_type, side, price or None, created_at); user, status and quantities filled in."""
    frame = pd.DataFrame(rows, columns=["order_id", "pair", "order_type", "side", "price", "created_at"]).astype(object)
    frame["price"] = [None if p is None else Decimal(str(p)) for p in frame["price"]]
    frame = frame.assign(user_id="u1", status="filled", quantity=Decimal(1), filled_quantity=Decimal(1))
    return _dated(frame, "created_at")


def logins(*rows: tuple) -> pd.DataFrame:
    """(user_id, success, login_at)."""
    frame = pd.DataFrame(rows, columns=["user_id", "success", "login_at"])
    frame["login_id"] = [f"l{i}" for i in range(len(frame))]
    return _dated(frame, "login_at")


def wallet(*rows: tuple) -> pd.DataFrame:
    """(user_id, tx_type, amount in USDT, created_at)."""
    frame = pd.DataFrame(rows, columns=["user_id", "tx_type", "amount", "created_at"]).astype(object)
    frame["amount"] = [Decimal(str(a)) for a in frame["amount"]]
    frame["tx_id"] = [f"w{i}" for i in range(len(frame))]
    return _dated(frame.assign(asset="USDT"), "created_at")


def read(frame: pd.DataFrame, first: date, last: date) -> pd.DataFrame:
    """The rows a build reads from a date-partitioned silver table: event_date in [first, last]."""
    return frame[frame["event_date"].map(lambda x: first <= x <= last).astype(bool)]


def spark_inputs(spark: SparkSession, **frames: pd.DataFrame) -> dict[str, DataFrame]:
    schemas = {"users": USERS, "trades": TRADES, "orders": ORDERS, "logins": LOGINS, "wallet_transactions": WALLET}
    return {f"exchange_{name}": to_spark(spark, frame, schemas[name]) for name, frame in frames.items()}


def activity(trade: pd.DataFrame, login: pd.DataFrame, tx: pd.DataFrame) -> list[tuple[str, datetime]]:
    """(user, time) of every activity: a trade, a successful login, a wallet transaction."""
    return (
        list(zip(trade["user_id"], trade["executed_at"], strict=True))
        + [(u, at) for u, ok, at in zip(login["user_id"], login["success"], login["login_at"], strict=True) if ok]
        + list(zip(tx["user_id"], tx["created_at"], strict=True))
    )


def check(actual: DataFrame, expected: Iterable[dict], schema: str, spark: SparkSession) -> None:
    columns = [c.strip().split()[0] for c in schema.split(",")]
    frame = pd.DataFrame(list(expected), columns=columns)
    assertDataFrameEqual(actual, to_spark(spark, frame, schema), checkRowOrder=False)


# 1. Active users: DAU, MAU over the 30 days ending on the date, DAU/MAU.

ACTIVE_SCHEMA = "date date, dau bigint, mau bigint, dau_mau_ratio double"


def active_users_oracle(events: list[tuple[str, datetime]], first: date, last: date) -> list[dict]:
    rows = []
    for day in days(first, last):
        dau = {u for u, at in events if at.date() == day}
        mau = {u for u, at in events if day - timedelta(days=29) <= at.date() <= day}
        rows.append({"date": day, "dau": len(dau), "mau": len(mau), "dau_mau_ratio": ratio(len(dau), len(mau))})
    return rows


def test_active_users_daily_equals_the_definition(spark: SparkSession) -> None:
    # The range starts on a day nobody was active in the 30 days ending on it (zeros, null ratio); the inputs are
    # passed whole (older activity than the build reads must not count either).
    first, last = d("2026-03-01"), d("2026-04-05")
    trade = trades(
        ("t1", "o1", "old", "BTC/USDT", "buy", 1, 100, t("2026-01-10 12:00:00")),
        # 30 days before the first date: just outside its MAU.
        ("t2", "o2", "old", "BTC/USDT", "buy", 1, 100, t("2026-01-30 23:59:59")),
        # Active on 03-02 only: in the MAU of 03-31 (29 days later), not of 04-01 (30 days later).
        ("t3", "o3", "u29", "BTC/USDT", "buy", 1, 100, t("2026-03-02 10:00:00")),
        # A trade, a login and a wallet transaction the same day: one daily active user.
        ("t4", "o4", "multi", "ETH/USDT", "sell", 1, 10, t("2026-03-04 08:00:00")),
        # The last and the first second of a UTC day.
        ("t5", "o5", "late", "ETH/USDT", "sell", 1, 10, t("2026-03-04 23:59:59")),
        ("t6", "o6", "early", "ETH/USDT", "sell", 1, 10, t("2026-03-05 00:00:00")),
        ("t7", "o7", "multi", "ETH/USDT", "sell", 1, 10, t("2026-03-15 09:00:00")),
        ("t8", "o8", "u29", "BTC/USDT", "buy", 1, 100, t("2026-04-05 10:00:00")),
    )
    login = logins(
        ("multi", True, t("2026-03-04 09:00:00")),
        ("onlyfail", False, t("2026-03-05 10:00:00")),
        ("onlyfail", False, t("2026-03-06 10:00:00")),
        ("mixed", False, t("2026-03-07 10:00:00")),
        ("mixed", True, t("2026-03-08 10:00:00")),
        ("login", True, t("2026-03-20 00:00:00")),
    )
    tx = wallet(
        ("multi", "deposit", 100, t("2026-03-04 10:00:00")),
        ("walletonly", "reward", 1, t("2026-03-12 13:00:00")),
    )
    inputs = spark_inputs(spark, trades=trade, logins=login, wallet_transactions=tx)
    result = exchange.active_users_daily(inputs, first, last, PARAMS)
    expected = active_users_oracle(activity(trade, login, tx), first, last)
    # The edges are really in the data: a zero day, a day with DAU 0 under a non-zero MAU, the 29/30-day boundary.
    by_day = {r["date"]: r for r in expected}
    assert by_day[first]["mau"] == 0 and by_day[d("2026-03-10")]["dau"] == 0 < by_day[d("2026-03-10")]["mau"]
    assert by_day[d("2026-03-31")]["mau"] - by_day[d("2026-04-01")]["mau"] >= 1
    check(result, expected, ACTIVE_SCHEMA, spark)


# 2. Execution quality per pair and day.

EXECUTION_SCHEMA = (
    "date date, pair string, orders_placed bigint, trades bigint, order_to_trade_ratio double, "
    "median_time_to_fill_s double, avg_time_to_fill_s double, slippage_bps double"
)
EXECUTION_LOOKBACK = PARAMS["exchange"]["execution"]["order_lookback_days"]


def execution_oracle(order: pd.DataFrame, trade: pd.DataFrame, first: date, last: date) -> list[dict]:
    """Orders placed by creation day; trades by execution day; time to fill = first trade - creation for the orders
    first filled that day and created within the 7 days before it; slippage = (trade price - order price) / order
    price * (+1 buy, -1 sell) in bps, weighted by the trade's notional, over the trades with an order price."""
    by_id = {r.order_id: r for r in order.itertuples()}
    first_fill: dict[str, datetime] = {}
    for r in trade.sort_values(["executed_at", "trade_id"]).itertuples():
        first_fill.setdefault(r.order_id, r.executed_at)
    keys = {(r.event_date, r.pair) for r in order.itertuples()} | {(r.event_date, r.pair) for r in trade.itertuples()}
    rows = []
    for day, pair in sorted(k for k in keys if first <= k[0] <= last):
        placed = sum(1 for r in order.itertuples() if r.event_date == day and r.pair == pair)
        done = [r for r in trade.itertuples() if r.event_date == day and r.pair == pair]
        fills = [
            (at - by_id[o].created_at).total_seconds()
            for o, at in first_fill.items()
            if at.date() == day
            and by_id[o].pair == pair
            and day - timedelta(days=EXECUTION_LOOKBACK) <= by_id[o].created_at.date() <= day
        ]
        weighted, weights = 0.0, 0.0
        for r in done:
            ordered = by_id.get(r.order_id)
            if ordered is None or pd.isna(ordered.price):
                continue
            if ordered.created_at.date() < day - timedelta(days=EXECUTION_LOOKBACK):
                continue
            sign = 1 if ordered.side == "buy" else -1
            bps = float(r.price - ordered.price) / float(ordered.price) * sign * 10_000
            notional = float(r.quantity * r.price)
            weighted, weights = weighted + bps * notional, weights + notional
        rows.append(
            {
                "date": day,
                "pair": pair,
                "orders_placed": placed,
                "trades": len(done),
                "order_to_trade_ratio": ratio(placed, len(done)),
                "median_time_to_fill_s": float(pd.Series(fills).median()) if fills else None,
                "avg_time_to_fill_s": sum(fills) / len(fills) if fills else None,
                "slippage_bps": ratio(weighted, weights),
            }
        )
    return rows


def run_execution(
    spark: SparkSession, order: pd.DataFrame, trade: pd.DataFrame, first: date, last: date
) -> tuple[DataFrame, list[dict]]:
    since = first - timedelta(days=EXECUTION_LOOKBACK)
    inputs = spark_inputs(spark, orders=read(order, since, last), trades=read(trade, since, last))
    return exchange.execution_daily(inputs, first, last, PARAMS), execution_oracle(order, trade, first, last)


def test_execution_daily_equals_the_definition(spark: SparkSession) -> None:
    first, last = d("2026-03-10"), d("2026-03-11")
    order = orders(
        # Two fills on two days: its time to fill (100 s) belongs to the first day only.
        ("o1", "BTC/USDT", "limit", "buy", 100, t("2026-03-10 10:00:00")),
        # Created before the range (2 days before its first fill).
        ("o2", "BTC/USDT", "limit", "sell", 200, t("2026-03-08 12:00:00")),
        # Never filled.
        ("o3", "BTC/USDT", "limit", "buy", 100, t("2026-03-10 14:00:00")),
        # A market order: no price, so no slippage, but a time to fill.
        ("o4", "BTC/USDT", "market", "buy", None, t("2026-03-10 15:00:00")),
        ("o5", "BTC/USDT", "limit", "sell", 100, t("2026-03-10 16:00:00")),
        ("o6", "BTC/USDT", "limit", "buy", 50, t("2026-03-11 08:00:00")),
        # Two fills the same day: only the first is its time to fill, both are weighed for slippage.
        ("o7", "BTC/USDT", "limit", "sell", 300, t("2026-03-11 10:00:00")),
        # Created 5 days before its first fill, at midnight.
        ("o8", "ETH/USDT", "limit", "buy", 10, t("2026-03-05 00:00:00")),
        ("o10", "ETH/USDT", "limit", "buy", 9, t("2026-03-10 23:59:59")),
        # Placed, no trade that day on the pair: ratio and times null.
        ("o9", "ETH/USDT", "limit", "sell", 12, t("2026-03-11 23:59:59")),
    )
    trade = trades(
        ("t1", "o1", "u1", "BTC/USDT", "buy", 1, 101, t("2026-03-10 10:01:40")),  # buy above: +100 bps
        ("t2", "o1", "u1", "BTC/USDT", "buy", 1, 100, t("2026-03-11 09:00:00")),  # at the order price: 0 bps
        ("t3", "o2", "u1", "BTC/USDT", "sell", "0.5", 198, t("2026-03-10 12:05:00")),  # sell below: +100 bps
        ("t4", "o4", "u1", "BTC/USDT", "buy", 2, 102, t("2026-03-10 15:00:02")),
        ("t5", "o5", "u1", "BTC/USDT", "sell", 1, 101, t("2026-03-10 16:10:00")),  # sell above: -100 bps
        ("t6", "o7", "u1", "BTC/USDT", "sell", 1, 297, t("2026-03-11 10:00:30")),
        ("t7", "o7", "u1", "BTC/USDT", "sell", 3, 303, t("2026-03-11 10:05:00")),
        ("t8", "o8", "u1", "ETH/USDT", "buy", 1, "9.9", t("2026-03-10 00:00:00")),  # buy below: -100 bps
    )
    result, expected = run_execution(spark, order, trade, first, last)
    by_key = {(r["date"], r["pair"]): r for r in expected}
    btc = by_key[(first, "BTC/USDT")]
    assert (btc["orders_placed"], btc["trades"], btc["median_time_to_fill_s"]) == (4, 4, 350.0)
    assert abs(btc["slippage_bps"] - 9900 / 301) < 1e-9
    check(result, expected, EXECUTION_SCHEMA, spark)


def test_execution_order_to_trade_ratio_is_zero_on_a_day_with_trades_and_no_orders_placed(
    spark: SparkSession,
) -> None:
    """Orders placed / trades executed: 0 orders over 1 trade is 0, not unknown (only 0 trades leaves it null)."""
    day = d("2026-03-11")
    order = orders(
        ("o1", "BTC/USDT", "limit", "buy", 100, t("2026-03-10 10:00:00")),
        ("o2", "ETH/USDT", "limit", "buy", 10, t("2026-03-11 10:00:00")),
    )
    trade = trades(("t1", "o1", "u1", "BTC/USDT", "buy", 1, 100, t("2026-03-11 10:00:00")))
    result, expected = run_execution(spark, order, trade, day, day)
    assert [(r["pair"], r["order_to_trade_ratio"]) for r in expected] == [("BTC/USDT", 0.0), ("ETH/USDT", None)]
    check(result, expected, EXECUTION_SCHEMA, spark)


def test_execution_time_to_fill_leaves_out_orders_created_before_the_lookback_of_the_fill(
    spark: SparkSession,
) -> None:
    """A range build reads orders from the lookback (30 days) before its first date; for a later date in the
    range, that reaches further back than the lookback before the fill, and must not change which orders are timed
    or weighed for slippage."""
    first, last = d("2026-03-10"), d("2026-03-12")
    order = orders(
        ("o1", "BTC/USDT", "limit", "buy", 100, t("2026-03-04 23:00:00")),  # 6 days 2 h before its fill: timed
        ("o2", "BTC/USDT", "limit", "buy", 101, t("2026-02-08 10:00:00")),  # 31 days before its fill: not timed
        ("o3", "BTC/USDT", "limit", "buy", 90, t("2026-03-11 12:00:00")),
        ("o4", "BTC/USDT", "limit", "buy", 90, t("2026-03-12 12:00:00")),
    )
    trade = trades(
        ("t1", "o1", "u1", "BTC/USDT", "buy", 1, 100, t("2026-03-11 01:00:00")),
        ("t2", "o2", "u1", "BTC/USDT", "buy", 1, 100, t("2026-03-11 10:00:00")),
        ("t3", "o1", "u1", "BTC/USDT", "buy", 1, 100, t("2026-03-12 10:00:00")),
    )
    result, expected = run_execution(spark, order, trade, first, last)
    assert [r["avg_time_to_fill_s"] for r in expected if r["date"] == d("2026-03-11")] == [525600.0]
    check(result, expected, EXECUTION_SCHEMA, spark)


def test_execution_slippage_weighs_a_resting_order_filled_today(spark: SparkSession) -> None:
    """A resting limit order placed three weeks ago (inside the 30-day order lookback) and filled today: its trade
    is one of the day's trades, and (trade - order price) / order price is its slippage like any other's."""
    day = d("2026-03-11")
    order = orders(
        ("o1", "BTC/USDT", "limit", "buy", 100, t("2026-02-18 10:00:00")),
        ("o2", "BTC/USDT", "limit", "buy", 200, t("2026-03-11 09:00:00")),
    )
    trade = trades(
        ("t1", "o1", "u1", "BTC/USDT", "buy", 1, 102, t("2026-03-11 10:00:00")),  # +200 bps on 102
        ("t2", "o2", "u1", "BTC/USDT", "buy", 1, 200, t("2026-03-11 10:30:00")),  # 0 bps on 200
    )
    result, expected = run_execution(spark, order, trade, day, day)
    assert abs(expected[0]["slippage_bps"] - 200 * 102 / 302) < 1e-9
    check(result, expected, EXECUTION_SCHEMA, spark)


# 3. Funnel by registration day.

FUNNEL_SCHEMA = (
    "registration_date date, registered bigint, kyc_users bigint, deposit_users bigint, trade_users bigint, "
    "regular_users bigint, kyc_rate double, deposit_rate double, trade_rate double, regular_rate double, "
    "kyc_target double, deposit_target double, trade_target double, regular_target double, window_complete boolean"
)
FUNNEL_WINDOW = timedelta(days=30)
STEPS = ("kyc", "deposit", "trade", "regular")
TARGETS = {"kyc": 0.85, "deposit": 0.72, "trade": 0.65, "regular": 0.45}  # DOMAIN.md


def funnel_oracle(user: pd.DataFrame, tx: pd.DataFrame, trade: pd.DataFrame, first: date, last: date) -> list[dict]:
    """Per registration day with registrations: of its users, those who within 30 days of registering completed
    KYC, and of those who deposited, and of those who traded, and of those who made 5+ trades; rates over the
    previous step; the window is complete when the data holds every day the users' 30-day windows touch."""
    horizon = max([*tx["event_date"], *trade["event_date"]])
    rows = []
    for day in days(first, last):
        members = [u for u in user.itertuples() if u.registered_at.date() == day]
        if not members:
            continue
        reached = dict.fromkeys(STEPS, 0)
        for u in members:
            start, end = u.registered_at, u.registered_at + FUNNEL_WINDOW
            kyc = not pd.isna(u.kyc_completed_at) and start <= u.kyc_completed_at < end
            deposits = sum(
                1
                for r in tx.itertuples()
                if r.user_id == u.user_id and r.tx_type == "deposit" and start <= r.created_at < end
            )
            traded = sum(1 for r in trade.itertuples() if r.user_id == u.user_id and start <= r.executed_at < end)
            steps = {"kyc": kyc, "deposit": kyc and deposits > 0}
            steps["trade"] = steps["deposit"] and traded > 0
            steps["regular"] = steps["trade"] and traded >= 5
            for s in STEPS:
                reached[s] += steps[s]
        last_needed = max((u.registered_at + FUNNEL_WINDOW - timedelta(microseconds=1)).date() for u in members)
        counts = {"registered": len(members), **{f"{s}_users": reached[s] for s in STEPS}}
        previous = ["registered", "kyc_users", "deposit_users", "trade_users"]
        rows.append(
            {
                "registration_date": day,
                **counts,
                **{f"{s}_rate": ratio(reached[s], counts[p]) for s, p in zip(STEPS, previous, strict=True)},
                **{f"{s}_target": TARGETS[s] for s in STEPS},
                "window_complete": last_needed <= horizon,
            }
        )
    return rows


def run_funnel(
    spark: SparkSession, user: pd.DataFrame, tx: pd.DataFrame, trade: pd.DataFrame, first: date, last: date
) -> tuple[DataFrame, list[dict]]:
    until = last + timedelta(days=30)
    tx, trade = read(tx, first, until), read(trade, first, until)
    inputs = spark_inputs(spark, users=user, wallet_transactions=tx, trades=trade)
    return exchange.funnel_daily(inputs, first, last, PARAMS), funnel_oracle(user, tx, trade, first, last)


def _trade(user: str, at: str, n: int) -> tuple:
    return (f"t-{user}-{n}", f"o-{user}-{n}", user, "BTC/USDT", "buy", 1, 100, t(at))


def test_funnel_daily_equals_the_definition(spark: SparkSession) -> None:
    first, last = d("2026-03-02"), d("2026-03-04")
    user = users(
        ("before", t("2026-03-01 23:59:59"), "basic", "verified", t("2026-03-02 01:00:00")),
        # 5 trades in the window, the last one second before it closes: regular.
        ("a", t("2026-03-02 10:00:00"), "basic", "verified", t("2026-03-02 12:00:00")),
        # 4 trades in the window and one exactly when it closes: trader, not regular.
        ("b", t("2026-03-02 00:00:00"), "basic", "verified", t("2026-03-05 00:00:00")),
        # KYC exactly when the window closes: registered only, whatever it did later.
        ("c", t("2026-03-02 23:59:59"), "pro", "verified", t("2026-04-01 23:59:59")),
        # Deposit exactly when the window closes (a withdrawal inside it is no deposit): KYC only.
        ("d", t("2026-03-02 08:00:00"), "basic", "verified", t("2026-03-02 09:00:00")),
        # No KYC: registered only, though it deposited and traded.
        ("e", t("2026-03-02 11:00:00"), "basic", "pending", None),
        # KYC and trades but no deposit: the steps are nested, so KYC only.
        ("f", t("2026-03-02 12:00:00"), "basic", "verified", t("2026-03-03 00:00:00")),
        # The next registration day starts at midnight; deposited, never traded.
        ("g", t("2026-03-04 00:00:00"), "basic", "verified", t("2026-03-04 01:00:00")),
        ("h", t("2026-03-04 09:00:00"), "vip", "verified", t("2026-03-04 10:00:00")),
    )
    tx = wallet(
        ("before", "deposit", 100, t("2026-03-02 02:00:00")),
        ("a", "deposit", 100, t("2026-03-03 00:00:00")),
        ("b", "deposit", 100, t("2026-03-06 00:00:00")),
        ("c", "deposit", 100, t("2026-03-03 00:00:00")),
        ("d", "withdrawal", -50, t("2026-03-05 00:00:00")),
        ("d", "deposit", 100, t("2026-04-01 08:00:00")),
        ("e", "deposit", 100, t("2026-03-03 00:00:00")),
        ("g", "deposit", 100, t("2026-03-04 02:00:00")),
        ("h", "deposit", 100, t("2026-03-04 11:00:00")),
    )
    trade = trades(
        _trade("before", "2026-03-03 00:00:00", 1),
        *[_trade("a", f"2026-03-{10 + n:02d} 10:00:00", n) for n in range(4)],
        _trade("a", "2026-04-01 09:59:59", 4),
        *[_trade("b", f"2026-03-{10 + n:02d} 10:00:00", n) for n in range(4)],
        _trade("b", "2026-04-01 00:00:00", 4),
        *[_trade("c", f"2026-03-{10 + n:02d} 10:00:00", n) for n in range(6)],
        _trade("d", "2026-03-10 10:00:00", 1),
        _trade("e", "2026-03-10 10:00:00", 1),
        *[_trade("f", f"2026-03-{10 + n:02d} 10:00:00", n) for n in range(6)],
        *[_trade("h", f"2026-03-{10 + n:02d} 10:00:00", n) for n in range(6)],
    )
    result, expected = run_funnel(spark, user, tx, trade, first, last)
    # The data ends on 04-01: the window of 03-02 (up to 04-01 23:59:59) is complete, that of 03-04 is not.
    assert [(r["registration_date"], r["registered"], r["regular_users"], r["window_complete"]) for r in expected] == [
        (d("2026-03-02"), 6, 1, True),
        (d("2026-03-04"), 2, 1, False),
    ]
    check(result, expected, FUNNEL_SCHEMA, spark)


def test_funnel_window_complete_needs_the_day_the_30_days_end_on(spark: SparkSession) -> None:
    """Registered 03-03 10:00: the window runs to 04-02 10:00, so with data up to 04-01 it is not complete yet (a
    trade on 04-02 at 05:00 would still count). Registered 03-02 00:00: the window ends 04-01 00:00, complete."""
    first, last = d("2026-03-02"), d("2026-03-03")
    user = users(
        ("midnight", t("2026-03-02 00:00:00"), "basic", "verified", t("2026-03-02 01:00:00")),
        ("morning", t("2026-03-03 10:00:00"), "basic", "verified", t("2026-03-03 11:00:00")),
    )
    tx = wallet(("morning", "deposit", 100, t("2026-03-03 12:00:00")))
    trade = trades(_trade("other", "2026-04-01 12:00:00", 1))
    result, expected = run_funnel(spark, user, tx, trade, first, last)
    assert [r["window_complete"] for r in expected] == [True, False]
    check(result, expected, FUNNEL_SCHEMA, spark)


# 4. Monthly cohort retention.

COHORT_SCHEMA = (
    "cohort_month date, month_offset int, cohort_size bigint, active_users bigint, retention double, "
    "month_complete boolean"
)
COHORT_MONTHS = 6


def add_months(month: date, k: int) -> date:
    index = month.year * 12 + month.month - 1 + k
    return date(index // 12, index % 12 + 1, 1)


def cohort_oracle(
    user: pd.DataFrame, events: list[tuple[str, datetime]], horizon: date, first: date, last: date
) -> list[dict]:
    """Per sign-up month in the range with sign-ups and k = 0..6: cohort size, users active in calendar month k
    after the sign-up month, their share; the month is complete when its last day is in the data."""
    rows = []
    month = first.replace(day=1)
    while month <= last:
        cohort = {u.user_id for u in user.itertuples() if u.registered_at.date().replace(day=1) == month}
        for k in range(COHORT_MONTHS + 1) if cohort else ():
            start = add_months(month, k)
            active = {u for u, at in events if u in cohort and start <= at.date() < add_months(start, 1)}
            rows.append(
                {
                    "cohort_month": month,
                    "month_offset": k,
                    "cohort_size": len(cohort),
                    "active_users": len(active),
                    "retention": len(active) / len(cohort),
                    "month_complete": add_months(start, 1) - timedelta(days=1) <= horizon,
                }
            )
        month = add_months(month, 1)
    return rows


def test_cohort_retention_equals_the_definition(spark: SparkSession) -> None:
    # Months January..March; February has no sign-ups, so no cohort (and no rows). Inputs passed whole: the build
    # reads every day from January to 214 days after March.
    first, last = d("2026-01-10"), d("2026-03-20")
    user = users(
        ("dec", t("2025-12-31 23:59:59"), "basic", "verified", None),
        ("j_lastday", t("2026-01-31 23:59:59"), "basic", "verified", None),
        ("j_early", t("2026-01-05 08:00:00"), "basic", "verified", None),
        ("j_never", t("2026-01-20 00:00:00"), "basic", "verified", None),
        ("j_twice", t("2026-01-15 00:00:00"), "basic", "verified", None),
        ("m_first", t("2026-03-01 00:00:00"), "basic", "verified", None),
        ("m_last", t("2026-03-31 12:00:00"), "basic", "verified", None),
        ("april", t("2026-04-01 00:00:00"), "basic", "verified", None),
    )
    trade = trades(
        _trade("dec", "2026-01-02 10:00:00", 1),
        _trade("j_early", "2026-01-05 09:00:00", 1),  # month 0
        _trade("j_twice", "2026-01-15 10:00:00", 1),  # month 0, twice
        _trade("j_twice", "2026-01-31 23:59:59", 2),
        _trade("m_first", "2026-03-01 00:00:00", 1),  # month 0
        _trade("m_first", "2026-08-02 10:00:00", 2),  # month 5 of March: not complete yet
        _trade("april", "2026-04-02 10:00:00", 1),
        _trade("j_lastday", "2026-08-15 10:00:00", 1),  # month 7 of January: out of the table; the data's last day
    )
    login = logins(
        ("j_lastday", True, t("2026-02-01 00:00:30")),  # month 1 for a user registered on January's last second
        ("j_twice", True, t("2026-02-20 10:00:00")),  # month 1
        ("j_early", False, t("2026-04-10 10:00:00")),  # a failed login is no activity
        ("j_early", True, t("2026-07-31 23:59:59")),  # month 6
        ("m_last", True, t("2026-04-01 00:00:00")),  # month 1
        ("j_never", False, t("2026-01-21 10:00:00")),
    )
    tx = wallet(("j_early", "deposit", 100, t("2026-03-31 23:59:59")))  # month 2
    inputs = spark_inputs(spark, users=user, trades=trade, logins=login, wallet_transactions=tx)
    result = exchange.cohort_retention(inputs, first, last, PARAMS)
    expected = cohort_oracle(user, activity(trade, login, tx), d("2026-08-15"), first, last)
    by_key = {(r["cohort_month"], r["month_offset"]): r for r in expected}
    january, march = d("2026-01-01"), d("2026-03-01")
    assert [by_key[(january, k)]["active_users"] for k in range(7)] == [2, 2, 1, 0, 0, 0, 1]
    assert [by_key[(march, k)]["month_complete"] for k in range(7)] == [True] * 5 + [False] * 2
    assert len(expected) == 14
    check(result, expected, COHORT_SCHEMA, spark)


# 5. Churn risk as of a date.

RISK_SCHEMA = "as_of_date date, user_id string, last_activity_at timestamp, days_inactive int, risk_level string"
LOOKBACK = 90


def level(days_inactive: int | None) -> str:
    """DOMAIN.md: Active <= 14 days, Medium Risk > 14, High Risk > 30, Churned > 60 (none in 90 days: Churned)."""
    if days_inactive is None or days_inactive > 60:
        return "Churned"
    return "High Risk" if days_inactive > 30 else "Medium Risk" if days_inactive > 14 else "Active"


def last_seen(user: pd.DataFrame, events: list[tuple[str, datetime]], as_of: date) -> list[dict]:
    """Per user registered before the as-of date: the last activity in the 90 days before it, and the days from
    its date (else from a registration inside those 90 days) to the as-of date."""
    since = as_of - timedelta(days=LOOKBACK)
    rows = []
    for u in user.itertuples():
        registered = u.registered_at.date()
        if registered >= as_of:
            continue
        seen = [at for who, at in events if who == u.user_id and since <= at.date() < as_of]
        last = max(seen) if seen else None
        if last is not None:
            inactive = (as_of - last.date()).days
        elif registered >= since:
            inactive = (as_of - registered).days
        else:
            inactive = None
        rows.append({"as_of_date": as_of, "user_id": u.user_id, "last_activity_at": last, "days_inactive": inactive})
    return rows


def test_churn_risk_equals_the_definition(spark: SparkSession) -> None:
    # Two consecutive as-of dates: every band boundary is met on one side on 05-01 and on the other on 05-02.
    first, last = d("2026-05-01"), d("2026-05-02")
    long_ago = t("2025-06-01 00:00:00")
    user = users(
        *[
            (name, long_ago, "basic", "verified", None)
            for name in ("d14", "d30", "d60", "d90", "d91", "never", "failed", "mixed", "today_active")
        ],
        ("new40", t("2026-03-22 10:00:00"), "basic", "pending", None),  # registered inside the lookback, idle
        ("new90", t("2026-01-31 08:00:00"), "basic", "pending", None),  # registered 90 days before 05-01, idle
        ("registered_d1", t("2026-05-01 00:00:00"), "basic", "pending", None),  # no row as of 05-01
    )
    trade = trades(
        _trade("d14", "2026-04-17 18:00:00", 1),  # 14 days: Active, then 15: Medium Risk
        _trade("d90", "2026-01-31 00:00:00", 1),  # 90 days: in the lookback; the next day it is not
        _trade("d91", "2026-01-30 12:00:00", 1),  # only outside the lookback
        _trade("mixed", "2026-04-06 10:00:00", 1),
        _trade("today_active", "2026-04-28 10:00:00", 1),
        _trade("today_active", "2026-05-01 00:00:00", 2),  # on the as-of date: counts from the next one
    )
    login = logins(
        ("d30", True, t("2026-04-01 00:00:00")),  # 30 days: Medium Risk, then 31: High Risk
        ("failed", True, t("2026-04-11 10:00:00")),
        ("failed", False, t("2026-04-29 10:00:00")),  # failed logins are no activity
        ("mixed", True, t("2026-04-26 10:00:00")),
        ("registered_d1", True, t("2026-05-01 09:00:00")),
    )
    tx = wallet(
        ("d60", "deposit", 100, t("2026-03-02 23:59:59")),  # 60 days: High Risk, then 61: Churned
        ("mixed", "fee", -1, t("2026-04-21 10:00:00")),
    )
    since = first - timedelta(days=LOOKBACK)
    trade, login, tx = (read(f, since, last) for f in (trade, login, tx))
    inputs = spark_inputs(spark, users=user, trades=trade, logins=login, wallet_transactions=tx)
    result = customers.churn_risk(inputs, first, last, PARAMS)
    events = activity(trade, login, tx)
    expected = [
        {**r, "risk_level": level(r["days_inactive"])}
        for day in days(first, last)
        for r in last_seen(user, events, day)
    ]
    got = {(r["as_of_date"], r["user_id"]): (r["days_inactive"], r["risk_level"]) for r in expected}
    assert [got[(first, u)] for u in ("d14", "d30", "d60")] == [(14, "Active"), (30, "Medium Risk"), (60, "High Risk")]
    assert [got[(last, u)] for u in ("d14", "d30", "d60")] == [(15, "Medium Risk"), (31, "High Risk"), (61, "Churned")]
    assert (first, "registered_d1") not in got and got[(last, "registered_d1")] == (1, "Active")
    frame = pd.DataFrame(expected).astype({"days_inactive": "Int64"})
    assertDataFrameEqual(result, to_spark(spark, frame, RISK_SCHEMA), checkRowOrder=False)


# 6. The ML-ready churn table (USDT amounts only: USD valuation of other assets is tested with the prices).

FEATURES_SCHEMA = (
    "as_of_date date, user_id string, tier string, kyc_verified boolean, tenure_days int, days_inactive int, "
    "trades_30d bigint, trades_90d bigint, logins_30d bigint, logins_90d bigint, failed_logins_30d bigint, "
    "deposits_30d bigint, withdrawals_30d bigint, active_days_30d bigint, volume_usd_30d double, "
    "volume_usd_90d double, net_flow_usd_30d double, trade_share_last_30d double, churned boolean, "
    "label_complete boolean"
)
LABEL_DAYS = 30


def of_user(frame: pd.DataFrame, user_id: str, since: date, before: date) -> pd.DataFrame:
    """The user's rows with event_date in [since, before)."""
    return frame[(frame["user_id"] == user_id) & frame["event_date"].map(lambda x: since <= x < before).astype(bool)]


def churn_features_oracle(
    user: pd.DataFrame, trade: pd.DataFrame, login: pd.DataFrame, tx: pd.DataFrame, first: date, last: date
) -> list[dict]:
    """Per as-of date D and user active in the 90 days before D: counts and USD sums of the events in [D-30, D)
    and [D-90, D), tenure and days inactive in days, tier, KYC; churned = no activity in [D, D+30 days);
    label_complete = all of those 30 days are in the data."""
    horizon = max([*trade["event_date"], *login["event_date"], *tx["event_date"]])
    events = activity(trade, login, tx)
    rows = []
    for as_of in days(first, last):
        d30, d90 = as_of - timedelta(days=30), as_of - timedelta(days=LOOKBACK)
        for seen in last_seen(user, events, as_of):
            if seen["last_activity_at"] is None:
                continue
            who = seen["user_id"]
            u = user.set_index("user_id").loc[who]
            t30, t90 = of_user(trade, who, d30, as_of), of_user(trade, who, d90, as_of)
            l30, l90 = of_user(login, who, d30, as_of), of_user(login, who, d90, as_of)
            w30 = of_user(tx, who, d30, as_of)
            deposits = w30[w30["tx_type"] == "deposit"]
            withdrawals = w30[w30["tx_type"] == "withdrawal"]
            active_days = {at.date() for who_, at in events if who_ == who and d30 <= at.date() < as_of}
            ahead = [
                at for who_, at in events if who_ == who and as_of <= at.date() < as_of + timedelta(days=LABEL_DAYS)
            ]
            rows.append(
                {
                    "as_of_date": as_of,
                    "user_id": who,
                    "tier": u["tier"],
                    "kyc_verified": u["kyc_status"] == "verified",
                    "tenure_days": (as_of - u["registered_at"].date()).days,
                    "days_inactive": seen["days_inactive"],
                    "trades_30d": len(t30),
                    "trades_90d": len(t90),
                    "logins_30d": int(l30["success"].sum()),
                    "logins_90d": int(l90["success"].sum()),
                    "failed_logins_30d": int((~l30["success"].astype(bool)).sum()),
                    "deposits_30d": len(deposits),
                    "withdrawals_30d": len(withdrawals),
                    "active_days_30d": len(active_days),
                    "volume_usd_30d": float(sum(q * p for q, p in zip(t30["quantity"], t30["price"], strict=True))),
                    "volume_usd_90d": float(sum(q * p for q, p in zip(t90["quantity"], t90["price"], strict=True))),
                    # Silver amounts are signed (a withdrawal is negative): net flow = deposited - withdrawn.
                    "net_flow_usd_30d": float(sum(deposits["amount"]) - sum(abs(a) for a in withdrawals["amount"])),
                    "trade_share_last_30d": ratio(len(t30), len(t90)),
                    "churned": not ahead,
                    "label_complete": as_of + timedelta(days=LABEL_DAYS - 1) <= horizon,
                }
            )
    return rows


def run_churn_features(
    spark: SparkSession,
    user: pd.DataFrame,
    trade: pd.DataFrame,
    login: pd.DataFrame,
    tx: pd.DataFrame,
    first: date,
    last: date,
) -> tuple[DataFrame, list[dict]]:
    since, until = first - timedelta(days=LOOKBACK), last + timedelta(days=LABEL_DAYS)
    trade, login, tx = (read(f, since, until) for f in (trade, login, tx))
    inputs = spark_inputs(spark, users=user, trades=trade, logins=login, wallet_transactions=tx)
    result = customers.churn_features(inputs, first, last, PARAMS)
    return result, churn_features_oracle(user, trade, login, tx, first, last)


def test_churn_features_equal_the_definition(spark: SparkSession) -> None:
    # As of 05-01, 05-02 and 05-03 with data up to 05-31: the labels of 05-01 and 05-02 are complete, 05-03's not.
    first, last = d("2026-05-01"), d("2026-05-03")
    user = users(
        ("f1", t("2025-11-15 10:00:00"), "pro", "verified", t("2025-11-16 00:00:00")),
        ("f2", t("2026-04-20 23:00:00"), "basic", "pending", None),
        ("f3", t("2025-01-01 00:00:00"), "vip", "verified", t("2025-01-02 00:00:00")),
        ("f5", t("2026-04-01 00:00:00"), "basic", "pending", None),  # registered inside the lookback, idle: no row
        ("f6", t("2025-01-01 00:00:00"), "basic", "verified", t("2025-01-02 00:00:00")),
    )
    trade = trades(
        # On the first as-of date: not a feature of 05-01, but its label; a feature of 05-02 and 05-03.
        ("t1", "o1", "f1", "BTC/USDT", "buy", 1, 100, t("2026-05-01 00:00:00")),
        # Exactly 30 days before 05-01: in its 30 days; 31 days before 05-02: in the 90 days only.
        ("t2", "o2", "f1", "ETH/USDT", "sell", 2, 50, t("2026-04-01 12:00:00")),
        ("t3", "o3", "f1", "BTC/USDT", "buy", "0.5", 20, t("2026-03-31 23:59:59")),
        # Exactly 90 days before 05-01: in its 90 days; not in those of 05-02.
        ("t4", "o4", "f1", "BTC/USDT", "buy", 1, 1000, t("2026-01-31 06:00:00")),
        # Only activity of f3, exactly 90 days before 05-01: a row on 05-01 only.
        ("t5", "o5", "f3", "BTC/USDT", "sell", 1, 30, t("2026-01-31 15:00:00")),
        # 30 days after 05-01: outside its label window, inside those of 05-02 and 05-03; the data's last day.
        ("t6", "o6", "f2", "BTC/USDT", "buy", 1, 20, t("2026-05-31 10:00:00")),
        ("t7", "o7", "old", "BTC/USDT", "buy", 1, 20, t("2026-01-20 10:00:00")),  # before the lookback
    )
    login = logins(
        ("f1", True, t("2026-04-30 20:00:00")),
        ("f1", False, t("2026-04-30 20:05:00")),
        ("f1", True, t("2026-03-01 08:00:00")),  # in the 90 days only
        ("f2", True, t("2026-04-25 10:00:00")),
        ("f2", False, t("2026-04-25 10:01:00")),
        ("f2", False, t("2026-05-06 10:00:00")),  # a failed login in the label window is no activity
    )
    tx = wallet(
        ("f1", "deposit", 500, t("2026-04-26 10:00:00")),
        ("f1", "withdrawal", -200, t("2026-04-26 11:00:00")),
        ("f1", "fee", -1, t("2026-04-26 11:00:00")),  # activity, not a deposit or withdrawal
        ("f1", "withdrawal", -50, t("2026-03-20 10:00:00")),  # outside the 30 days
        ("f6", "reward", 5, t("2026-04-29 10:00:00")),
    )
    result, expected = run_churn_features(spark, user, trade, login, tx, first, last)
    got = {(r["as_of_date"], r["user_id"]): r for r in expected}
    assert sorted(got) == sorted(
        [(first, "f1"), (first, "f2"), (first, "f3"), (first, "f6")]
        + [(day, u) for day in days(d("2026-05-02"), last) for u in ("f1", "f2", "f6")]
    )
    f1 = got[(first, "f1")]
    assert (f1["trades_30d"], f1["trades_90d"], f1["volume_usd_90d"], f1["net_flow_usd_30d"]) == (1, 3, 1110.0, 300.0)
    assert not f1["churned"] and got[(d("2026-05-02"), "f1")]["churned"]
    assert got[(first, "f2")]["churned"] and not got[(d("2026-05-02"), "f2")]["churned"]
    assert [got[(day, "f2")]["label_complete"] for day in days(first, last)] == [True, True, False]
    check(result, expected, FEATURES_SCHEMA, spark)


def test_churn_features_count_only_days_with_activity_as_active_days(spark: SparkSession) -> None:
    """A day whose only event is a failed login is not an active day (activity = trade, successful login, wallet
    transaction), just as it does not reset days_inactive."""
    as_of = d("2026-05-01")
    user = users(("u", t("2025-11-15 10:00:00"), "basic", "verified", t("2025-11-16 00:00:00")))
    trade = trades(("t1", "o1", "u", "BTC/USDT", "buy", 1, 100, t("2026-04-21 10:00:00")))
    login = logins(("u", False, t("2026-04-28 10:00:00")))
    tx = wallet()
    result, expected = run_churn_features(spark, user, trade, login, tx, as_of, as_of)
    assert [(r["active_days_30d"], r["failed_logins_30d"], r["days_inactive"]) for r in expected] == [(1, 1, 10)]
    check(result, expected, FEATURES_SCHEMA, spark)
