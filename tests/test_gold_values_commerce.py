"""Gold commerce marts and the trend purchase outcomes, value for value, against an independent computation of the
documented definitions (README "Gold", DOMAIN.md) in plain Python and pandas, on small hand-shaped inputs that
hit the edges: empty days, ties, band limits, every movement type, returns on day 30 and 31. The expected side
never calls marketlake; it reads only the business parameters from conf/gold.yaml."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual
from scipy.stats import norm

from marketlake.config import CONF_DIR
from marketlake.gold import commerce, trends
from marketlake.gold.spec import load_gold
from tests.frames import to_spark

PARAMS = load_gold(CONF_DIR).params
CENT = Decimal("0.01")

ORDERS = (
    "order_id string, customer_id string, channel string, platform string, device string, "
    "order_total_usd decimal(12,2), created_at timestamp, event_date date"
)
SESSIONS = "session_id string, channel string, started_at timestamp, event_date date"
RETURNS = (
    "return_id string, order_id string, product_id string, reason_code string, requested_at timestamp, event_date date"
)


def at(day: str, clock: str = "12:00:00") -> datetime:
    """A zone-aware UTC time, e.g. at("2026-01-12", "08:30:00")."""
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=UTC)


def names(ddl: str) -> list[str]:
    return [c.strip().split()[0] for c in re.split(r",(?![^()]*\))", ddl)]


def records(ddl: str, rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows as dicts keyed by the DDL's column names (the oracle's view of an input)."""
    cols = names(ddl)
    return [dict(zip(cols, r, strict=True)) for r in rows]


def spark_frame(spark: SparkSession, ddl: str, rows: Sequence[dict[str, Any]]) -> DataFrame:
    cols = names(ddl)
    return spark.createDataFrame([tuple(r[c] for c in cols) for r in rows], ddl)


def expected_frame(spark: SparkSession, rows: Sequence[dict[str, Any]], ddl: str) -> DataFrame:
    return to_spark(spark, pd.DataFrame(rows, columns=names(ddl), dtype=object), ddl)


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def order(order_id: str, channel: str | None, total: str, when: datetime, platform: str = "shopify") -> tuple:
    return (order_id, "k1", channel, platform, "mobile", Decimal(total), when, when.date())


# ---- commerce_daily_kpis -----------------------------------------------------------------------------------------

KPIS = (
    "date date, channel string, revenue_usd decimal(20,2), orders long, aov_usd decimal(20,2), sessions long, "
    "conversion_rate double, returns long, return_rate double, revenue_prev_week_usd decimal(20,2), "
    "wow_revenue_change double"
)


def kpis_oracle(
    orders: list[dict[str, Any]], sessions: list[dict[str, Any]], returns: list[dict[str, Any]], start: date, end: date
) -> list[dict[str, Any]]:
    """One row per day and channel with an order, a session or a return that day. Channel = the web order's
    channel, else its platform. Revenue 0 and orders 0 on a day without orders; AOV = revenue / orders (cents,
    half up), conversion = orders / sessions, return rate = returns / orders, each undefined (null) on a zero
    denominator. A return counts on the day it is requested, for the channel of the order it names (however old);
    a return naming no known order counts nowhere. Previous week = the channel's revenue on the same weekday a
    week earlier (null when it had no order then); week over week = (revenue - previous) / previous."""
    channel_of = {o["order_id"]: o["channel"] or o["platform"] for o in orders}
    revenue: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    count: dict[tuple[date, str], int] = defaultdict(int)
    visits: dict[tuple[date, str], int] = defaultdict(int)
    returned: dict[tuple[date, str], int] = defaultdict(int)
    for o in orders:
        key = (o["event_date"], channel_of[o["order_id"]])
        revenue[key] += o["order_total_usd"]
        count[key] += 1
    for s in sessions:
        visits[(s["event_date"], s["channel"])] += 1
    for r in returns:
        if r["order_id"] in channel_of:
            returned[(r["event_date"], channel_of[r["order_id"]])] += 1
    rows = []
    for day, channel in sorted({k for k in [*count, *visits, *returned] if start <= k[0] <= end}):
        key, week_ago = (day, channel), (day - timedelta(days=7), channel)
        n, rev = count.get(key, 0), revenue.get(key, Decimal("0.00"))
        prev = revenue[week_ago] if count.get(week_ago) else None
        rows.append(
            {
                "date": day,
                "channel": channel,
                "revenue_usd": rev,
                "orders": n,
                "aov_usd": (rev / n).quantize(CENT, ROUND_HALF_UP) if n else None,
                "sessions": visits.get(key, 0),
                "conversion_rate": n / visits[key] if visits.get(key) else None,
                "returns": returned.get(key, 0),
                "return_rate": returned.get(key, 0) / n if n else None,
                "revenue_prev_week_usd": prev,
                "wow_revenue_change": float((rev - prev) / prev) if prev else None,
            }
        )
    return rows


def check_kpis(spark: SparkSession, orders: list, sessions: list, returns: list, start: date, end: date) -> None:
    o, s, r = records(ORDERS, orders), records(SESSIONS, sessions), records(RETURNS, returns)
    inputs = {
        "commerce_orders": spark_frame(spark, ORDERS, o),
        "commerce_web_sessions": spark_frame(spark, SESSIONS, s),
        "commerce_returns": spark_frame(spark, RETURNS, r),
    }
    actual = commerce.daily_kpis(inputs, start, end, PARAMS)
    assertDataFrameEqual(actual, expected_frame(spark, kpis_oracle(o, s, r, start, end), KPIS))


def session_rows(channel: str, day: str, n: int) -> list[tuple]:
    return [
        (f"s-{channel}-{day}-{i}", channel, at(day, f"{9 + i % 10:02d}:00:00"), date.fromisoformat(day))
        for i in range(n)
    ]


def test_daily_kpis_by_channel_equal_the_definition(spark: SparkSession) -> None:
    """Mon 12 .. Wed 14 January 2026. Orders without sessions (amazon, search), two channels tied on revenue, a
    channel only the week before (no row), a previous week of revenue 0 (week over week undefined), returns of an
    order from 33 days before, of an unknown order, two returns of one order on one day, and a session and order
    before the range that must not count."""
    start, end = date(2026, 1, 12), date(2026, 1, 14)
    orders = [
        order("shopify:1", "social", "100.00", at("2026-01-12", "09:00:00")),
        order("shopify:2", "social", "50.50", at("2026-01-12", "23:59:59")),
        order("shopify:3", "email", "20.00", at("2026-01-12", "00:00:00")),
        order("amazon:A1", None, "20.00", at("2026-01-12", "11:00:00"), "amazon"),
        order("amazon:A2", None, "35.35", at("2026-01-13", "11:00:00"), "amazon"),
        order("amazon:A3", None, "10.01", at("2026-01-13", "12:00:00"), "amazon"),
        order("amazon:A4", None, "10.00", at("2026-01-13", "13:00:00"), "amazon"),
        order("shopify:4", "social", "30.00", at("2026-01-13", "10:00:00")),
        order("shopify:5", "search", "40.00", at("2026-01-14", "10:00:00")),
        order("shopify:6", "social", "12.34", at("2026-01-14", "08:00:00")),
        # the week before: social and email on Monday, a referral channel seen only then, search at 0 on Wednesday
        order("shopify:w1", "social", "200.00", at("2026-01-05", "10:00:00")),
        order("shopify:w2", "social", "1.00", at("2026-01-05", "11:00:00")),
        order("shopify:w3", "email", "10.00", at("2026-01-05", "12:00:00")),
        order("shopify:w4", "referral", "99.00", at("2026-01-06", "12:00:00")),
        order("shopify:w5", "search", "0.00", at("2026-01-07", "12:00:00")),
        order("amazon:w6", None, "70.70", at("2026-01-06", "12:00:00"), "amazon"),
        order("shopify:old", "social", "80.00", at("2025-12-10", "12:00:00")),
        order("shopify:late", "social", "5.00", at("2026-01-15", "00:00:00")),  # after the range
    ]
    sessions = [
        *session_rows("social", "2026-01-12", 4),
        *session_rows("email", "2026-01-12", 3),
        *session_rows("social", "2026-01-13", 2),
        *session_rows("social", "2026-01-14", 1),
        *session_rows("email", "2026-01-11", 5),  # before the range
    ]
    returns = [
        ("r1", "shopify:old", "p1", "SIZE_FIT", at("2026-01-12", "10:00:00"), date(2026, 1, 12)),
        ("r2", "shopify:1", "p1", "DEFECTIVE", at("2026-01-13", "10:00:00"), date(2026, 1, 13)),
        ("r3", "shopify:1", "p2", "IMPULSE", at("2026-01-13", "10:05:00"), date(2026, 1, 13)),
        ("r4", "shopify:unknown", "p1", "SIZE_FIT", at("2026-01-13", "10:00:00"), date(2026, 1, 13)),
        ("r5", "amazon:A1", "p3", "CHANGED_MIND", at("2026-01-13", "15:00:00"), date(2026, 1, 13)),
        ("r6", "shopify:w3", "p3", "CHANGED_MIND", at("2026-01-11", "15:00:00"), date(2026, 1, 11)),  # before
    ]
    check_kpis(spark, orders, sessions, returns, start, end)


def test_daily_kpis_day_with_sessions_but_no_orders(spark: SparkSession) -> None:
    """Email has 4 sessions on Tuesday 13 January and no order; it sold 15.00 the Tuesday before: conversion is
    0 / 4 = 0.0 and revenue moved from 15.00 to 0.00, a week-over-week change of -100 %."""
    orders = [
        order("shopify:w1", "email", "15.00", at("2026-01-06", "10:00:00")),
        order("shopify:1", "social", "10.00", at("2026-01-13", "10:00:00")),
    ]
    sessions = [*session_rows("email", "2026-01-13", 4), *session_rows("social", "2026-01-13", 2)]
    check_kpis(spark, orders, sessions, [], date(2026, 1, 13), date(2026, 1, 13))


def test_daily_kpis_count_a_return_on_a_day_without_orders_or_sessions(spark: SparkSession) -> None:
    """An Amazon order of Monday is returned on Wednesday, a day without Amazon orders (Amazon has no web
    sessions): the return is requested that day for the channel's order, so Wednesday has an amazon row with
    1 return (return rate undefined, 0 orders)."""
    orders = [
        order("amazon:A1", None, "20.00", at("2026-01-12", "10:00:00"), "amazon"),
        order("shopify:1", "social", "10.00", at("2026-01-14", "10:00:00")),
    ]
    returns = [("r1", "amazon:A1", "p1", "SIZE_FIT", at("2026-01-14", "09:00:00"), date(2026, 1, 14))]
    check_kpis(spark, orders, session_rows("social", "2026-01-14", 1), returns, date(2026, 1, 14), date(2026, 1, 14))


# ---- commerce_fulfillment_daily ----------------------------------------------------------------------------------

EVENTS = (
    "event_id string, order_id string, status string, warehouse string, estimated_cost decimal(12,2), "
    "actual_cost decimal(12,2), promised_at timestamp, items_correct boolean, event_at timestamp, event_date date"
)
FULFILLMENT = (
    "date date, warehouse string, orders_shipped long, orders_delivered long, avg_fulfillment_hours double, "
    "fulfillment_band string, on_time_rate double, on_time_target_met boolean, accuracy_pct double, "
    "accuracy_band string, cost_per_order_usd decimal(20,2), cost_target_met boolean, "
    "shipping_cost_variance_pct double, shipping_cost_band string"
)


def limits(kpi: str) -> tuple[Fraction, Fraction, Fraction]:
    bounds = PARAMS["commerce"]["bands"][kpi]
    return tuple(Fraction(str(bounds[k])) for k in ("excellent", "good", "average"))  # type: ignore[return-value]


def band_low(value: Fraction | None, kpi: str) -> str | None:
    """Lower is better (DOMAIN: excellent < 2 h, good 2-4, average 4-8, poor > 8). A value on a middle limit is in
    the band that limit starts (4 h is average); poor is strictly beyond the last limit, as written (8 h is
    average)."""
    if value is None:
        return None
    excellent, good, average = limits(kpi)
    return "excellent" if value < excellent else "good" if value < good else "average" if value <= average else "poor"


def band_high(value: Fraction | None, kpi: str) -> str | None:
    """Higher is better (DOMAIN: excellent > 99.5 %, good 99.0-99.5, average 98-99, poor < 98), the same reading:
    99.0 is average, 98.0 is average, below 98 is poor."""
    if value is None:
        return None
    excellent, good, average = limits(kpi)
    return "excellent" if value > excellent else "good" if value > good else "average" if value >= average else "poor"


def fulfillment_oracle(
    events: list[dict[str, Any]], orders: list[dict[str, Any]], start: date, end: date
) -> list[dict[str, Any]]:
    """Per day and warehouse with a shipment or a delivery that day. Shipments of the day: distinct orders, mean
    hours from order creation to shipment (orders of unknown creation left out), mean actual cost (cents, half
    up), |sum actual - sum estimated| / sum estimated in %. Deliveries of the day: distinct orders, on-time rate =
    delivered at or before the promise of the order's shipment / deliveries with a known promise, accuracy =
    deliveries with correct items / deliveries where that is known, in %. Targets (DOMAIN): on time > 95 %, cost
    per order < $2.50."""
    targets = PARAMS["commerce"]["targets"]
    created = {o["order_id"]: o["created_at"] for o in orders}
    promised = {e["order_id"]: e["promised_at"] for e in events if e["status"] == "shipped"}
    groups: dict[tuple[date, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for e in events:
        if e["status"] in ("shipped", "delivered") and start <= e["event_date"] <= end:
            groups[(e["event_date"], e["warehouse"])][e["status"]].append(e)
    rows = []
    for (day, warehouse), by_status in sorted(groups.items()):
        shipped, delivered = by_status["shipped"], by_status["delivered"]
        hours = [
            Fraction(int((e["event_at"] - created[e["order_id"]]).total_seconds()), 3600)
            for e in shipped
            if e["order_id"] in created
        ]
        actual = [e["actual_cost"] for e in shipped if e["actual_cost"] is not None]
        estimated = [e["estimated_cost"] for e in shipped if e["estimated_cost"] is not None]
        known_promise = [e for e in delivered if promised.get(e["order_id"]) is not None]
        on_time = [e for e in known_promise if e["event_at"] <= promised[e["order_id"]]]
        checked = [e for e in delivered if e["items_correct"] is not None]
        avg_hours = sum(hours) / len(hours) if hours else None
        cost = (sum(actual) / len(actual)).quantize(CENT, ROUND_HALF_UP) if actual else None
        variance = Fraction(abs(sum(actual) - sum(estimated))) / Fraction(sum(estimated)) * 100 if shipped else None
        on_time_rate = Fraction(len(on_time), len(known_promise)) if known_promise else None
        accuracy = Fraction(sum(e["items_correct"] for e in checked), len(checked)) * 100 if checked else None
        rows.append(
            {
                "date": day,
                "warehouse": warehouse,
                "orders_shipped": len({e["order_id"] for e in shipped}),
                "orders_delivered": len({e["order_id"] for e in delivered}),
                "avg_fulfillment_hours": None if avg_hours is None else float(avg_hours),
                "fulfillment_band": band_low(avg_hours, "fulfillment_hours"),
                "on_time_rate": None if on_time_rate is None else float(on_time_rate),
                "on_time_target_met": None
                if on_time_rate is None
                else on_time_rate > Fraction(str(targets["on_time_rate"])),
                "accuracy_pct": None if accuracy is None else float(accuracy),
                "accuracy_band": band_high(accuracy, "accuracy_pct"),
                "cost_per_order_usd": cost,
                "cost_target_met": None if cost is None else cost < Decimal(str(targets["cost_per_order_usd"])),
                "shipping_cost_variance_pct": None if variance is None else float(variance),
                "shipping_cost_band": band_low(variance, "shipping_cost_variance_pct"),
            }
        )
    return rows


def event(
    event_id: str,
    order_id: str,
    status: str,
    warehouse: str,
    when: datetime,
    costs: tuple[str, str] | None = None,
    promised: datetime | None = None,
    correct: bool | None = None,
) -> tuple:
    estimated, actual = (Decimal(costs[0]), Decimal(costs[1])) if costs else (None, None)
    return (event_id, order_id, status, warehouse, estimated, actual, promised, correct, when, when.date())


def shipment(order_id: str, warehouse: str, created: datetime, hours: float, costs: tuple[str, str]) -> tuple:
    """An order created at `created`, shipped `hours` later: (order row, shipped event)."""
    shipped = created + timedelta(hours=hours)
    return (
        order(order_id, "social", "10.00", created),
        event(f"e-{order_id}", order_id, "shipped", warehouse, shipped, costs, shipped + timedelta(days=2)),
    )


def deliveries(
    prefix: str, warehouse: str, day: str, n: int, late: int, wrong: int, no_promise: int = 0
) -> list[tuple]:
    """n orders shipped two days before `day` from `warehouse` with a promise of `day` 18:00 (none for the last
    `no_promise`), delivered on `day`: one exactly at the promise, `late` after it, `wrong` with wrong items."""
    promise = at(day, "18:00:00")
    shipped_at = promise - timedelta(days=2, hours=6)
    rows = []
    for i in range(n):
        when = promise + timedelta(hours=2) if i >= n - late else promise if i == 0 else promise - timedelta(hours=3)
        oid = f"{prefix}{i}"
        rows.append(
            event(f"s-{oid}", oid, "shipped", warehouse, shipped_at, ("2.00", "2.00"),
                  None if i >= n - no_promise else promise)
        )  # fmt: skip
        rows.append(event(f"d-{oid}", oid, "delivered", warehouse, when, correct=i >= wrong))
    return rows


def check_fulfillment(
    spark: SparkSession, shipments: list[tuple], other_events: list[tuple], start: date, end: date
) -> None:
    orders = records(ORDERS, [o for o, _ in shipments])
    events = records(EVENTS, [e for _, e in shipments] + other_events)
    inputs = {
        "commerce_fulfillment_events": spark_frame(spark, EVENTS, events),
        "commerce_orders": spark_frame(spark, ORDERS, orders),
    }
    actual = commerce.fulfillment_daily(inputs, start, end, PARAMS)
    assertDataFrameEqual(actual, expected_frame(spark, fulfillment_oracle(events, orders, start, end), FULFILLMENT))


def test_fulfillment_daily_kpis_and_bands_equal_the_definition(spark: SparkSession) -> None:
    """12-13 January. WA: hours exactly 2 (1 h and 3 h: good), cost variance exactly 2 % (good), 200 deliveries
    with one wrong (accuracy exactly 99.5 %: good), one delivered exactly at the promise, late ones, two without a
    promise. WB: hours exactly 4 and variance exactly 5 % (average), a shipment of an order of unknown creation,
    an in-transit event, no deliveries. WC: deliveries only (late, missing promise, no shipment, unknown
    correctness). WD: accuracy exactly 99.0 % (average), on time 96 %. WA on the 13th: poor hours and variance."""
    start, end = date(2026, 1, 12), date(2026, 1, 13)
    d1 = "2026-01-12"
    shipments = [
        shipment("wa-1", "WA", at(d1, "08:00:00"), 1, ("1.00", "1.02")),
        shipment("wa-2", "WA", at(d1, "07:00:00"), 3, ("1.00", "1.02")),
        *[shipment(f"wb-{i}", "WB", at(d1, "06:00:00"), 4, ("2.00", "2.10")) for i in range(3)],
        shipment("wa-3", "WA", at(d1, "22:00:00"), 12, ("2.00", "1.50")),
        shipment("we-1", "WE", at("2026-01-13", "04:30:00"), 5.5, ("3.00", "3.10")),
        shipment("wa-4", "WA", at("2026-01-14", "04:30:00"), 1, ("3.00", "3.10")),  # after the range
    ]
    events = [
        *deliveries("wa-d", "WA", d1, 200, late=40, wrong=1, no_promise=2),
        event("e-wb-x", "wb-unknown", "shipped", "WB", at(d1, "11:00:00"), ("2.00", "2.10")),
        event("t-wb-0", "wb-0", "in_transit", "WB", at(d1, "15:00:00"), ("9.00", "9.00")),
        event("s-wc-1", "wc-1", "shipped", "WC", at("2026-01-11"), ("2.00", "2.00"), at(d1, "12:00:00")),
        event("d-wc-1", "wc-1", "delivered", "WC", at(d1, "11:00:00"), correct=True),
        event("s-wc-2", "wc-2", "shipped", "WC", at("2026-01-11"), ("2.00", "2.00"), at(d1, "12:00:00")),
        event("d-wc-2", "wc-2", "delivered", "WC", at(d1, "13:00:00"), correct=True),
        event("s-wc-3", "wc-3", "shipped", "WC", at("2026-01-11"), ("2.00", "2.00"), None),
        event("d-wc-3", "wc-3", "delivered", "WC", at(d1, "09:00:00"), correct=None),
        event("d-wc-4", "wc-4", "delivered", "WC", at(d1, "10:00:00"), correct=False),
        *deliveries("wd-d", "WD", "2026-01-13", 100, late=4, wrong=1),
    ]
    check_fulfillment(spark, shipments, events, start, end)


def test_fulfillment_values_on_the_poor_limits_are_average(spark: SparkSession) -> None:
    """DOMAIN: poor is > 8 h, < 98 % accuracy, > 10 % cost variance, so exactly 8 h, 98.0 % and 10 % are
    average, not poor."""
    d1 = "2026-01-12"
    shipments = [shipment("w-1", "WA", at(d1, "02:00:00"), 8, ("2.00", "2.20"))]
    events = deliveries("w-d", "WA", d1, 50, late=0, wrong=1)
    check_fulfillment(spark, shipments, events, date(2026, 1, 12), date(2026, 1, 12))


def test_fulfillment_targets_on_their_limits_are_not_met(spark: SparkSession) -> None:
    """DOMAIN targets: on-time delivery > 95 %, cost per order < $2.50: exactly 95 % on time and exactly $2.50
    per order miss them."""
    d1 = "2026-01-12"
    shipments = [shipment("w-1", "WA", at(d1, "08:00:00"), 1, ("2.50", "2.50"))]
    events = deliveries("w-d", "WA", d1, 20, late=1, wrong=0)
    check_fulfillment(spark, shipments, events, date(2026, 1, 12), date(2026, 1, 12))


# ---- commerce_inventory_daily ------------------------------------------------------------------------------------

MOVEMENTS = (
    "movement_id string, product_id string, warehouse string, movement_type string, quantity long, "
    "reference string, moved_at timestamp, event_date date"
)
PRODUCTS = "product_id string, unit_cost decimal(12,2)"
OPENING = "product_id string, stock long"
INVENTORY = (
    "date date, product_id string, closing_stock long, units_out_window long, mean_daily_demand double, "
    "demand_std double, turnover_annual double, turnover_band string, days_of_inventory double, "
    "safety_stock double, reorder_point double, eoq double, reorder_now boolean"
)
SIGN = {"in": 1, "out": -1, "adjustment": -1, "transfer": -1}  # README: transfer and adjustment remove stock


def opening_oracle(movements: list[dict[str, Any]], before: date) -> dict[str, int]:
    stock: dict[str, int] = defaultdict(int)
    for m in movements:
        if m["event_date"] < before:
            stock[m["product_id"]] += SIGN[m["movement_type"]] * m["quantity"]
    return dict(stock)


def inventory_oracle(
    movements: list[dict[str, Any]],
    products: dict[str, Decimal | None],
    opening: dict[str, int],
    start: date,
    end: date,
) -> list[dict[str, Any]]:
    """Every product (of the catalogue or the opening stock) on every day: closing stock = opening + in - out -
    adjustment - transfer since start; demand = units of `out` only on each of the demand_days days ending that
    day (days without sales are 0): their mean and population standard deviation; turnover = 365 * mean / stock
    and days of inventory = stock / mean (undefined on a zero denominator); safety stock = z(service level) *
    sigma * sqrt(lead time), reorder point = mean * lead time + safety stock, reorder when stock <= reorder point;
    EOQ = sqrt(2 * 365 * mean * ordering cost / (holding rate * unit cost))."""
    conf = PARAMS["commerce"]["inventory"]
    window, lead = int(conf["demand_days"]), float(conf["lead_time_days"])
    z = float(norm.ppf(float(conf["service_level"])))
    rows = []
    for day in days(start, end):
        for product in sorted(set(products) | set(opening)):
            mine = [m for m in movements if m["product_id"] == product]
            stock = opening.get(product, 0) + sum(
                SIGN[m["movement_type"]] * m["quantity"] for m in mine if start <= m["event_date"] <= day
            )
            daily = [
                sum(m["quantity"] for m in mine if m["movement_type"] == "out" and m["event_date"] == d)
                for d in days(day - timedelta(days=window - 1), day)
            ]
            mean, sigma = sum(daily) / window, float(np.std(daily))
            safety = z * sigma * math.sqrt(lead)
            cost = products.get(product)
            turnover = Fraction(365 * sum(daily), window * stock) if stock else None
            eoq = (
                math.sqrt(
                    2 * 365 * mean * float(conf["ordering_cost_usd"]) / (float(conf["holding_cost_rate"]) * float(cost))
                )
                if cost
                else None
            )
            rows.append(
                {
                    "date": day,
                    "product_id": product,
                    "closing_stock": stock,
                    "units_out_window": sum(daily),
                    "mean_daily_demand": mean,
                    "demand_std": sigma,
                    "turnover_annual": None if turnover is None else float(turnover),
                    "turnover_band": band_high(turnover, "inventory_turnover"),
                    "days_of_inventory": stock / mean if mean else None,
                    "safety_stock": safety,
                    "reorder_point": mean * lead + safety,
                    "eoq": eoq,
                    "reorder_now": stock <= mean * lead + safety,
                }
            )
    return rows


def movement(movement_id: str, product: str, kind: str, quantity: int, day: str, warehouse: str = "W1") -> tuple:
    when = at(day, "10:00:00")
    return (movement_id, product, warehouse, kind, quantity, None, when, when.date())


def check_inventory(
    spark: SparkSession,
    rows: list[tuple],
    products: dict[str, Decimal | None],
    carried: dict[str, int],
    start: date,
    end: date,
) -> None:
    """inventory_daily against the oracle, with the opening stock every movement before start gives plus
    `carried` (stock carried forward from a previous partition for products without movements)."""
    movements = records(MOVEMENTS, rows)
    opening = {**opening_oracle(movements, start), **carried}
    inputs = {
        "commerce_inventory_movements": spark_frame(spark, MOVEMENTS, movements),
        "commerce_products": spark.createDataFrame(list(products.items()), PRODUCTS),
    }
    opening_df = spark.createDataFrame(list(opening.items()), OPENING)
    actual = commerce.inventory_daily(inputs, start, end, PARAMS, opening_df)
    expected = inventory_oracle(movements, products, opening, start, end)
    assertDataFrameEqual(actual, expected_frame(spark, expected, INVENTORY))


INVENTORY_START, INVENTORY_END = date(2026, 2, 2), date(2026, 2, 4)
INVENTORY_ROWS = [
    # P1: every movement type, before the range (opening stock) and in it; the 28-day window of 2 February
    # starts on 6 January (5 January is just outside, 6 January drops out on the 3rd); two sales on one day;
    # a transfer answered by the receiving warehouse's `in` and one that is not.
    movement("m01", "P1", "in", 500, "2025-12-20"),
    movement("m02", "P1", "out", 9, "2026-01-05"),
    movement("m03", "P1", "out", 6, "2026-01-06"),
    movement("m04", "P1", "out", 4, "2026-01-07"),
    movement("m05", "P1", "out", 30, "2026-01-20"),
    movement("m06", "P1", "out", 5, "2026-01-20"),
    movement("m07", "P1", "adjustment", 5, "2026-01-20"),
    movement("m08", "P1", "transfer", 15, "2026-01-20"),
    movement("m09", "P1", "out", 10, "2026-02-01"),
    movement("m10", "P1", "in", 40, "2026-02-01"),
    movement("m11", "P1", "out", 12, "2026-02-02"),
    movement("m12", "P1", "in", 100, "2026-02-02"),
    movement("m13", "P1", "adjustment", 3, "2026-02-02"),
    movement("m14", "P1", "transfer", 7, "2026-02-03"),
    movement("m15", "P1", "in", 7, "2026-02-03", "W2"),
    movement("m16", "P1", "out", 2, "2026-02-03"),
    movement("m17", "P1", "out", 8, "2026-02-04"),
    movement("m18", "P1", "adjustment", 1, "2026-02-04"),
    movement("m19", "P1", "out", 50, "2026-02-05"),  # after the range
    # P2: 336 sold in the window, 365 in stock: turnover exactly 12 (good, not excellent).
    movement("m20", "P2", "in", 701, "2026-01-10"),
    movement("m21", "P2", "out", 336, "2026-01-15"),
    # P3: 224 sold, 365 in stock: turnover exactly 8 (average, the band that limit starts).
    movement("m22", "P3", "in", 589, "2026-01-10"),
    movement("m23", "P3", "out", 224, "2026-01-12"),
    # P6: sold before any stock arrived (negative stock, reorder).
    movement("m24", "P6", "out", 3, "2026-02-03"),
]


def test_opening_stock_nets_every_movement_before_the_date(spark: SparkSession) -> None:
    movements = records(MOVEMENTS, INVENTORY_ROWS)
    actual = commerce.opening_stock(spark_frame(spark, MOVEMENTS, movements), INVENTORY_START)
    expected = pd.DataFrame(list(opening_oracle(movements, INVENTORY_START).items()), columns=["product_id", "stock"])
    assertDataFrameEqual(actual, to_spark(spark, expected, OPENING))


def test_inventory_daily_equals_the_definition(spark: SparkSession) -> None:
    """P1 every movement type; P2/P3 turnover exactly 12 and 8; P4 in the catalogue without movements (no
    demand, no stock); P5 only in the carried-forward opening stock (no unit cost: EOQ undefined); P6 oversold."""
    products = {"P1": Decimal("10.00"), "P2": Decimal("4.00"), "P3": Decimal("20.00"), "P4": Decimal("5.00"),
                "P6": Decimal("8.00")}  # fmt: skip
    check_inventory(spark, INVENTORY_ROWS, products, {"P5": 7}, INVENTORY_START, INVENTORY_END)


def test_inventory_units_out_window_counts_every_unit(spark: SparkSession) -> None:
    """61 units sold in the 28-day window: units_out_window is 61 (61 / 28 * 28 is 60.99999999999999 in floating
    point, which must not be truncated to 60)."""
    rows = [movement("m1", "P7", "in", 100, "2026-01-10"), movement("m2", "P7", "out", 61, "2026-01-20")]
    check_inventory(spark, rows, {"P7": Decimal("10.00")}, {}, INVENTORY_START, INVENTORY_START)


def test_inventory_turnover_on_the_poor_limit_is_average(spark: SparkSession) -> None:
    """DOMAIN: turnover average 4-8, poor < 4: 112 units sold in 28 days with 365 in stock is exactly 4x a year,
    average."""
    rows = [movement("m1", "P8", "in", 477, "2026-01-10"), movement("m2", "P8", "out", 112, "2026-01-15")]
    check_inventory(spark, rows, {"P8": Decimal("10.00")}, {}, INVENTORY_START, INVENTORY_START)


# ---- fact_trend_purchase_outcomes --------------------------------------------------------------------------------

LINES = (
    "order_id string, line_no int, customer_id string, product_id string, quantity int, unit_price decimal(12,2), "
    "unit_list_price decimal(12,2), line_total_usd decimal(12,2), created_at timestamp, event_date date"
)
SIGNALS = (
    "event_id string, trend_id string, product_id string, creator_id string, platform string, velocity double, "
    "decay_ratio double, hours_since_peak double, sentiment_z double, bot_spike boolean, observed_at timestamp, "
    "event_date date"
)
OUTCOMES = (
    "purchase_date date, order_id string, line_no int, customer_id string, product_id string, "
    "purchased_at timestamp, quantity int, line_total_usd decimal(12,2), trend_id string, creator_id string, "
    "trend_platform string, trend_observed_at timestamp, hours_since_reading double, trend_velocity double, "
    "velocity_24h double, half_life_hours double, hours_since_peak double, decay_ratio double, sentiment_z double, "
    "bot_spike boolean, creator_prior_purchases long, creator_regret_rate double, customer_prior_orders_90d long, "
    "customer_prior_return_rate_90d double, customer_days_since_prior_order double, customer_prior_aov_usd double, "
    "discount_pct double, hour_of_day int, device string, channel string, velocity_x_discount double, "
    "return_kind string, excluded_reason string, returned_within_30d boolean, label_complete boolean"
)
HOUR = timedelta(hours=1)


def hours(delta: timedelta) -> float:
    return delta / HOUR


def outcomes_oracle(
    lines: list[dict[str, Any]],
    orders: list[dict[str, Any]],
    returns: list[dict[str, Any]],
    signals: list[dict[str, Any]],
    start: date,
    end: date,
) -> list[dict[str, Any]]:
    """README "Gold" / DOMAIN "Trends and return regret", one purchase (order line with a product) at a time:
    - the trend reading = the product's latest reading at or before the purchase; velocity_24h = mean velocity
      of the product's readings in the 24 h up to and including that reading; half-life = hours since peak *
      ln 2 / -ln(decay) (decay strictly between 0 and 1, a peak in the past); hours since peak counted to the
      purchase;
    - creator: the creator's linked purchases in the 90 days before the purchase, and the share of them with a
      regret return (the line's first return) requested before the purchase;
    - customer: the customer's orders in the 90 days before the order, returns (any kind) the customer requested
      in those 90 days per such order, days since the latest of them, their mean order total;
    - discount = (list - paid) / list in [0, 1]; velocity x discount with no velocity counted as 0;
    - label: the line's first return; a defect or fraud return within 30 days excludes the purchase (null label),
      else returned_within_30d = a regret return requested within 30 days (false without one);
      label_complete = the 30 days end no later than the last purchase date in the data."""
    conf = PARAMS["trends"]
    window = timedelta(days=float(conf["creator_window_days"]))
    customer_window = timedelta(days=float(conf["customer_window_days"]))
    label_window = timedelta(days=int(conf["return_window_days"]))
    velocity_window = timedelta(hours=float(conf["velocity_window_hours"]))
    kind_of = {code: kind for kind, codes in conf["return_kinds"].items() for code in codes}
    order_of = {o["order_id"]: o for o in orders}
    purchases = [li for li in lines if li["product_id"] is not None]

    def reading(li: dict[str, Any]) -> dict[str, Any] | None:
        before = [s for s in signals if s["product_id"] == li["product_id"] and s["observed_at"] <= li["created_at"]]
        return max(before, key=lambda s: s["observed_at"]) if before else None

    def first_return(li: dict[str, Any]) -> dict[str, Any] | None:
        mine = [r for r in returns if (r["order_id"], r["product_id"]) == (li["order_id"], li["product_id"])]
        return min(mine, key=lambda r: (r["requested_at"], r["return_id"])) if mine else None

    linked = {(li["order_id"], li["line_no"]): reading(li) for li in purchases}
    creator_of = {k: (s["creator_id"] if s else None) for k, s in linked.items()}
    first = {(li["order_id"], li["line_no"]): first_return(li) for li in purchases}
    horizon = max(li["event_date"] for li in lines)
    rows = []
    for li in purchases:
        if not start <= li["event_date"] <= end:
            continue
        key, t = (li["order_id"], li["line_no"]), li["created_at"]
        s, ret, o = linked[key], first[key], order_of[li["order_id"]]
        row: dict[str, Any] = {
            "purchase_date": li["event_date"],
            **{c: li[c] for c in ("order_id", "line_no", "customer_id", "product_id", "quantity", "line_total_usd")},
            "purchased_at": t,
        }
        # the trend live at the purchase
        if s is None:
            row.update(dict.fromkeys(["trend_id", "creator_id", "trend_platform", "trend_observed_at"]))
            row.update(dict.fromkeys(["hours_since_reading", "trend_velocity", "velocity_24h", "half_life_hours"]))
            row.update(dict.fromkeys(["hours_since_peak", "decay_ratio", "sentiment_z", "bot_spike"]))
            row.update(creator_prior_purchases=None, creator_regret_rate=None)
        else:
            recent = [
                x["velocity"]
                for x in signals
                if x["product_id"] == li["product_id"]
                and s["observed_at"] - velocity_window <= x["observed_at"] <= s["observed_at"]
            ]
            decay, since_peak = s["decay_ratio"], s["hours_since_peak"]
            row.update(
                trend_id=s["trend_id"],
                creator_id=s["creator_id"],
                trend_platform=s["platform"],
                trend_observed_at=s["observed_at"],
                hours_since_reading=hours(t - s["observed_at"]),
                trend_velocity=s["velocity"],
                velocity_24h=sum(recent) / len(recent),
                half_life_hours=since_peak * math.log(2) / -math.log(decay)
                if 0 < decay < 1 and since_peak > 0
                else None,
                hours_since_peak=hours(t - s["observed_at"]) + since_peak,
                decay_ratio=decay,
                sentiment_z=s["sentiment_z"],
                bot_spike=s["bot_spike"],
            )
            prior = [
                k
                for k, other in zip(linked, purchases, strict=True)
                if creator_of[k] == s["creator_id"] and t - window <= other["created_at"] < t
            ]
            regrets = [
                k
                for k in prior
                if first[k] is not None
                and kind_of.get(first[k]["reason_code"]) == "regret"
                and first[k]["requested_at"] < t
            ]
            row.update(
                creator_prior_purchases=len(prior), creator_regret_rate=len(regrets) / len(prior) if prior else None
            )
        # the customer before the order
        t_order, customer = o["created_at"], o["customer_id"]
        earlier = [
            p for p in orders if p["customer_id"] == customer and t_order - customer_window <= p["created_at"] < t_order
        ]
        theirs = {p["order_id"] for p in orders if p["customer_id"] == customer}
        returned = [
            r for r in returns if r["order_id"] in theirs and t_order - customer_window <= r["requested_at"] < t_order
        ]
        row.update(
            customer_prior_orders_90d=len(earlier),
            customer_prior_return_rate_90d=len(returned) / len(earlier) if earlier else None,
            customer_days_since_prior_order=(
                (t_order - max(p["created_at"] for p in earlier)) / timedelta(days=1) if earlier else None
            ),
            customer_prior_aov_usd=float(sum(p["order_total_usd"] for p in earlier) / len(earlier))
            if earlier
            else None,
        )
        # the purchase
        paid, listed = li["unit_price"], li["unit_list_price"]
        discount = min(max(float((listed - paid) / listed), 0.0), 1.0) if listed else None
        row.update(
            discount_pct=discount,
            hour_of_day=t.hour,
            device=o["device"] or "unknown",
            channel=o["channel"] or o["platform"],
            velocity_x_discount=None if discount is None else (row["velocity_24h"] or 0.0) * discount,
        )
        # the label
        kind = kind_of.get(ret["reason_code"]) if ret else None
        within = ret is not None and ret["requested_at"] <= t + label_window
        excluded = kind if kind in ("defect", "fraud") and within else None
        row.update(
            return_kind=kind,
            excluded_reason=excluded,
            returned_within_30d=None if excluded else kind == "regret" and within,
            label_complete=li["event_date"] + label_window <= horizon,
        )
        rows.append(row)
    return rows


def line(
    order_id: str,
    line_no: int,
    customer: str,
    product: str | None,
    when: datetime,
    paid: str = "50.00",
    listed: str | None = "50.00",
    quantity: int = 1,
) -> tuple:
    total, list_price = Decimal(paid) * quantity, None if listed is None else Decimal(listed)
    return (order_id, line_no, customer, product, quantity, Decimal(paid), list_price, total, when, when.date())


def buyer_order(
    order_id: str,
    customer: str,
    when: datetime,
    total: str,
    channel: str | None = "social",
    device: str | None = "mobile",
) -> tuple:
    platform = "shopify" if channel else "amazon"
    return (order_id, customer, channel, platform, device, Decimal(total), when, when.date())


def signal(
    event_id: str,
    trend: str,
    product: str,
    creator: str,
    when: datetime,
    velocity: float,
    decay: float,
    since_peak: float,
    sentiment: float = 0.0,
    bot: bool = False,
) -> tuple:
    return (event_id, trend, product, creator, "reels", velocity, decay, since_peak, sentiment, bot, when, when.date())


def giveback(return_id: str, order_id: str, product: str, reason: str, when: datetime) -> tuple:
    return (return_id, order_id, product, reason, when, when.date())


def check_outcomes(
    spark: SparkSession, lines: list, orders: list, returns: list, signals: list, start: date, end: date
) -> None:
    li, od, rt, sg = (
        records(LINES, lines),
        records(ORDERS, orders),
        records(RETURNS, returns),
        records(SIGNALS, signals),
    )
    inputs = {
        "commerce_order_lines": spark_frame(spark, LINES, li),
        "commerce_orders": spark_frame(spark, ORDERS, od),
        "commerce_returns": spark_frame(spark, RETURNS, rt),
        "trends_trend_signals": spark_frame(spark, SIGNALS, sg),
    }
    actual = trends.purchase_outcomes(inputs, start, end, PARAMS)
    assertDataFrameEqual(actual, expected_frame(spark, outcomes_oracle(li, od, rt, sg, start, end), OUTCOMES))


def test_purchase_outcomes_equal_the_definition(spark: SparkSession) -> None:
    """Purchases on 10-11 March 2026. Product A has readings at 10:00 the day before (one second outside the 24 h
    of the 14:00 reading, and one exactly 24 h before it), 08:00, 14:00 and 20:00; a purchase at 15:30 takes the
    14:00 reading, one exactly at 14:00 too, one the next morning the 20:00 reading. Product B's first reading is
    after one of its purchases; product C has none; one line has no product. Returns: a regret return exactly 30
    days after, one 31 days after, defect then regret (excluded), regret then damage (a regret), fraud within 30
    days (excluded) and after 31 days (not excluded, a negative), none. History: the creator's earlier purchases
    (one more than 90 days before), a regret return requested after a later purchase, two orders of one customer
    at the same instant, a customer order exactly 90 days before and one a second earlier."""
    a = "2026-03-10"
    signals = [
        signal("s1", "tA1", "A", "c1", at("2025-11-20", "10:00:00"), 5.0, 1.0, 0.0),
        signal("s2", "tA2", "A", "c1", at("2026-02-01", "10:00:00"), 4.0, 1.0, 0.0, 0.3),
        signal("s3", "tA3", "A", "c1", at("2026-03-09", "13:59:59"), 30.0, 1.0, 0.0),
        signal("s4", "tA3", "A", "c1", at("2026-03-09", "14:00:00"), 20.0, 0.5, 24.0),
        signal("s5", "tA3", "A", "c1", at(a, "08:00:00"), 10.0, 0.25, 18.0, -0.5),
        signal("s6", "tA3", "A", "c1", at(a, "14:00:00"), 6.0, 0.2, 24.0, 1.25),
        signal("s7", "tA4", "A", "c3", at(a, "20:00:00"), 50.0, 1.0, 0.0, 2.0, True),
        signal("s8", "tB1", "B", "c2", at(a, "09:00:00"), 8.0, 0.0, 4.5, -1.5),
    ]
    orders = [
        buyer_order("o-h2", "k4", at("2025-12-05", "10:00:00"), "40.00"),
        buyer_order("o-h1", "k1", at("2026-02-05", "10:00:00"), "45.00"),
        buyer_order("o-h6", "k6", at("2026-03-01", "10:00:00"), "50.00"),
        buyer_order("o-h3", "k3", at("2025-12-11", "10:00:00"), "20.00"),
        buyer_order("o-h4", "k3", at("2025-12-11", "09:59:59"), "999.00"),
        buyer_order("o3", "k1", at(a, "08:00:00"), "30.00", None, None),
        buyer_order("o-h5", "k5", at(a, "14:00:00"), "50.00", "search", "desktop"),
        buyer_order("o2", "k2", at(a, "14:00:00"), "120.00"),
        buyer_order("o6", "k2", at(a, "14:00:00"), "10.00", "email", "tablet"),
        buyer_order("o1", "k1", at(a, "15:30:00"), "100.00"),
        buyer_order("o5", "k2", at("2026-03-11", "09:00:00"), "50.00"),
        buyer_order("o4", "k3", at("2026-03-11", "10:00:00"), "25.00"),
        buyer_order("o-late", "k7", at("2026-04-09", "10:00:00"), "50.00"),
    ]
    lines = [
        line("o-h2", 1, "k4", "A", at("2025-12-05", "10:00:00"), "40.00", "40.00"),
        line("o-h1", 1, "k1", "A", at("2026-02-05", "10:00:00"), "45.00", "50.00"),
        line("o-h6", 1, "k6", "A", at("2026-03-01", "10:00:00")),
        line("o3", 1, "k1", "B", at(a, "08:00:00"), "30.00", "40.00"),
        line("o-h5", 1, "k5", "A", at(a, "14:00:00")),
        line("o2", 1, "k2", "A", at(a, "14:00:00"), "120.00", "100.00"),
        line("o6", 1, "k2", "C", at(a, "14:00:00"), "10.00", "12.50"),
        line("o1", 1, "k1", "A", at(a, "15:30:00"), "60.00", "100.00"),
        line("o1", 2, "k1", "B", at(a, "15:30:00"), "20.00", "25.00", quantity=2),
        line("o5", 1, "k2", "A", at("2026-03-11", "09:00:00"), "25.00", "100.00", quantity=2),
        line("o4", 1, "k3", "C", at("2026-03-11", "10:00:00"), "18.00", "20.00"),
        line("o4", 2, "k3", None, at("2026-03-11", "10:00:00"), "25.00", "25.00"),
        line("o-late", 1, "k7", "C", at("2026-04-09", "10:00:00")),
    ]
    returns = [
        giveback("r-h2", "o-h2", "A", "SIZE_FIT", at("2025-12-08", "10:00:00")),  # before every creator window
        giveback("r-h1", "o-h1", "A", "IMPULSE", at("2026-02-10", "10:00:00")),
        giveback("r-h6", "o-h6", "A", "CHANGED_MIND", at("2026-03-11", "08:00:00")),  # after the 10 March purchases
        giveback("r1", "o1", "A", "IMPULSE", at("2026-04-09", "15:30:00")),  # exactly 30 days
        giveback("r2", "o1", "B", "CHANGED_MIND", at("2026-04-10", "15:30:00")),  # 31 days
        giveback("r3", "o2", "A", "DEFECTIVE", at("2026-03-12", "10:00:00")),
        giveback("r4", "o2", "A", "SIZE_FIT", at("2026-03-15", "10:00:00")),
        giveback("r5", "o3", "B", "FRAUD_SUSPECTED", at("2026-03-20", "10:00:00")),
        giveback("r6", "o5", "A", "NOT_AS_EXPECTED", at("2026-03-13", "10:00:00")),
        giveback("r7", "o5", "A", "DAMAGED", at("2026-03-14", "10:00:00")),
        giveback("r8", "o6", "C", "FRAUD_SUSPECTED", at("2026-04-10", "14:00:00")),  # 31 days
    ]
    check_outcomes(spark, lines, orders, returns, signals, date(2026, 3, 10), date(2026, 3, 11))


def test_creator_regret_rate_counts_returns_of_the_window_purchases_only(spark: SparkSession) -> None:
    """Two purchases through creator c1 more than 90 days before, each regret-returned inside the 90 days; one
    purchase through c1 inside the 90 days, not returned. Of the creator's purchases in the window (1), none
    was regret-returned: creator_regret_rate = 0.0 (a rate, never above 1)."""
    a = "2026-03-10"
    signals = [signal("s1", "t1", "A", "c1", at("2025-11-01", "10:00:00"), 5.0, 1.0, 0.0)]
    orders = [
        buyer_order("o-old1", "k1", at("2025-11-20", "10:00:00"), "10.00"),
        buyer_order("o-old2", "k2", at("2025-11-21", "10:00:00"), "10.00"),
        buyer_order("o-mid", "k3", at("2026-02-01", "10:00:00"), "10.00"),
        buyer_order("o1", "k4", at(a, "10:00:00"), "10.00"),
    ]
    lines = [
        line("o-old1", 1, "k1", "A", at("2025-11-20", "10:00:00"), "10.00", "10.00"),
        line("o-old2", 1, "k2", "A", at("2025-11-21", "10:00:00"), "10.00", "10.00"),
        line("o-mid", 1, "k3", "A", at("2026-02-01", "10:00:00"), "10.00", "10.00"),
        line("o1", 1, "k4", "A", at(a, "10:00:00"), "10.00", "10.00"),
    ]
    returns = [
        giveback("r1", "o-old1", "A", "SIZE_FIT", at("2025-12-15", "10:00:00")),
        giveback("r2", "o-old2", "A", "IMPULSE", at("2025-12-16", "10:00:00")),
    ]
    check_outcomes(spark, lines, orders, returns, signals, date(2026, 3, 10), date(2026, 3, 10))


def test_discount_is_undefined_without_a_list_price(spark: SparkSession) -> None:
    """discount % = (list - paid) / list: a line listed at 0.00, or with no list price, has no discount % (null),
    and so no velocity x discount, rather than a discount of 0."""
    a = "2026-03-10"
    signals = [signal("s1", "t1", "A", "c1", at(a, "08:00:00"), 5.0, 1.0, 0.0)]
    orders = [buyer_order("o1", "k1", at(a, "10:00:00"), "0.00"), buyer_order("o2", "k2", at(a, "11:00:00"), "9.00")]
    lines = [
        line("o1", 1, "k1", "A", at(a, "10:00:00"), "0.00", "0.00"),
        line("o2", 1, "k2", "A", at(a, "11:00:00"), "9.00", None),
    ]
    check_outcomes(spark, lines, orders, [], signals, date(2026, 3, 10), date(2026, 3, 10))
