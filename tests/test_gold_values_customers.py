"""Commerce RFM per person against pandas: one email buying on Shopify and on Amazon is one customer, an order
without an email finds its person through the shop's customer record, a customer known only by a platform id stays
on their own, and the 90-day window's edges hold."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from marketlake.config import CONF_DIR
from marketlake.gold.customers import commerce_rfm
from marketlake.gold.spec import load_gold
from tests.frames import to_spark
from tests.test_gold_customers import ntile

PARAMS = load_gold(CONF_DIR).params
AS_OF = date(2026, 4, 1)
ORDERS = (
    "order_id string, platform string, customer_id string, email_hash string, order_total_usd decimal(18,2), "
    "event_date date"
)
CUSTOMERS = "customer_id string, email_hash string"


def _orders() -> pd.DataFrame:
    rows = [
        ("s1", "shopify", "C1", "h-mia", "120.00", 3),  # Mia on Shopify ...
        ("a1", "amazon", "AMZ-77", "h-mia", "80.00", 10),  # ... and on Amazon under another id: one person
        ("s2", "shopify", "C2", None, "40.00", 1),  # Ben: no email on the order, his customer record has one
        ("a2", "amazon", "AMZ-5", "h-ben", "60.00", 90),  # exactly 90 days before: inside the window
        ("a3", "amazon", "AMZ-9", None, "15.50", 20),  # a guest known only by a platform id
        ("a4", "amazon", "AMZ-9", None, "15.50", 20),
        ("s3", "shopify", "C3", "h-zoe", "300.00", 91),  # 91 days before: outside
        ("s4", "shopify", "C3", "h-zoe", "300.00", 0),  # on the as-of date: not yet
        ("s5", "shopify", "C4", "h-lea", "40.00", 1),  # ties Ben on recency and monetary
        ("s6", "shopify", "C5", "h-kai", "999.99", 45),
        ("s7", "shopify", None, None, "10.00", 5),  # nobody: no id, no email
    ]
    df = pd.DataFrame(rows, columns=["order_id", "platform", "customer_id", "email_hash", "total", "days_before"])
    return df.assign(
        order_total_usd=df["total"].map(Decimal),
        event_date=[AS_OF - timedelta(days=int(d)) for d in df["days_before"]],
    )


CUSTOMER_ROWS = pd.DataFrame(
    {"customer_id": ["C1", "C2", "C3", "C4", "C5"], "email_hash": ["h-mia", "h-ben", "h-zoe", "h-lea", "h-kai"]}
)


def _oracle(orders: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    on_record = orders["customer_id"].map(dict(zip(customers["customer_id"], customers["email_hash"], strict=True)))
    email = orders["email_hash"].fillna(on_record)
    key = np.where(email.notna(), "email:" + email.fillna(""), "id:" + orders["customer_id"].fillna(""))
    orders = orders.assign(customer_key=key)
    orders = orders[email.notna() | orders["customer_id"].notna()]
    window = orders[(orders["event_date"] < AS_OF) & (orders["event_date"] >= AS_OF - timedelta(days=90))]
    g = window.groupby("customer_key").agg(
        customer_id=("customer_id", "min"),
        platforms=("platform", lambda p: sorted(set(p))),
        last=("event_date", "max"),
        frequency=("order_id", "count"),
        monetary_usd=("order_total_usd", "sum"),
    )
    g = g.reset_index()
    g["recency_days"] = [(AS_OF - d).days for d in g["last"]]
    g["r_score"] = ntile(g.sort_values(["recency_days", "customer_key"], ascending=[False, True]))
    g["f_score"] = ntile(g.sort_values(["frequency", "customer_key"]))
    g["m_score"] = ntile(g.sort_values(["monetary_usd", "customer_key"]))
    r, f, m = g["r_score"], g["f_score"], g["m_score"]
    g["rfm_code"] = r.astype(str) + f.astype(str) + m.astype(str)
    g["segment"] = np.select(
        [(r >= 4) & (f >= 4) & (m >= 4), (r >= 3) & (f >= 3) & (m >= 3), (r <= 2) & (f <= 2)],
        ["Champions", "Loyal", "At Risk"],
        "Developing",
    )
    return g.assign(as_of_date=AS_OF)


def test_commerce_rfm_resolves_one_person_across_platforms(spark: SparkSession) -> None:
    orders = _orders()
    inputs = {
        "commerce_orders": to_spark(spark, orders, ORDERS),
        "commerce_customers": to_spark(spark, CUSTOMER_ROWS, CUSTOMERS),
    }
    got = commerce_rfm(inputs, AS_OF, AS_OF, PARAMS)
    schema = (
        "as_of_date date, customer_key string, customer_id string, platforms array<string>, recency_days int, "
        "frequency long, monetary_usd decimal(20,2), r_score int, f_score int, m_score int, rfm_code string, "
        "segment string"
    )
    expected = to_spark(spark, _oracle(orders, CUSTOMER_ROWS), schema)
    assertDataFrameEqual(got, expected)
    people = {r["customer_key"]: r for r in got.collect()}
    assert set(people) == {"email:h-mia", "email:h-ben", "id:AMZ-9", "email:h-lea", "email:h-kai"}
    mia = people["email:h-mia"]
    assert (mia["frequency"], mia["monetary_usd"], mia["customer_id"], mia["platforms"]) == (
        2, Decimal("200.00"), "AMZ-77", ["amazon", "shopify"],
    )  # fmt: skip
    assert people["email:h-ben"]["frequency"] == 2  # the email-less Shopify order joined his Amazon one
