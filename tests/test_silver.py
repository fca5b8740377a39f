"""Silver steps on small explicit frames: platform payloads conform to one standard order, the keyed PII hash is
HMAC-SHA256, trend signals, and the job's one-line errors."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Callable
from datetime import date, datetime, timedelta

import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from marketlake.bronze import bronze_schema
from marketlake.config import load_settings
from marketlake.errors import ConfigError
from marketlake.silver import conform
from marketlake.silver.privacy import hmac_sha256, pii_key
from tests.conftest import run_job

KEY = b"test-key"
FX = {"USD": 1.0, "EUR": 1.1}
SOURCES = load_settings("local").sources["commerce"]
NOW = datetime(2026, 3, 1)


def bronze(spark: SparkSession, entity: str, record: dict[str, object]) -> DataFrame:
    source = SOURCES[entity]
    values = {k: v if isinstance(v, str) or v is None else json.dumps(v) for k, v in record.items()}
    meta = {
        "_batch_id": "b",
        "_landing_date": NOW.date(),
        "_source_file": f"f-{entity}",
        "_source_size": 1,
        "_line_no": 1,
        "_ingest_ts": NOW,
        "_source_format": "jsonl",
        "_raw_record": json.dumps(record),
    }
    row = tuple({**meta, **values}.get(f.name) for f in bronze_schema(source).fields)
    return spark.createDataFrame([row], bronze_schema(source)).withColumn("_retry", F.lit(False))


SHOPIFY = {
    "id": "4500000000123",
    "name": "#1123",
    "customer": {"id": "C1", "email": "Mia@Example.com", "first_name": "Mia", "last_name": "Chen", "phone": "+1-555"},
    "email": "mia@example.com",
    "total_price": "46.05",
    "subtotal_price": "40.05",
    "total_discounts": "9.95",
    "currency": "EUR",
    "line_items": [
        {"sku": "SKU-A", "title": "Vase", "quantity": 1, "price": "30.06", "compare_at_price": "40.01"},
        {"sku": "sku-b", "title": "Tote", "quantity": 3, "price": "3.33", "compare_at_price": "3.33"},
    ],
    "shipping_address": {"address1": "1 Oak St", "city": "Leeds", "zip": "LS1", "country_code": "gb"},
    "financial_status": "paid",
    "fulfillment_status": "fulfilled",
    "created_at": "2026-02-01T10:00:00Z",
    "updated_at": "2026-02-02T08:00:00Z",
}
AMAZON = {
    "AmazonOrderId": "123-4567890-1234567",
    "BuyerEmail": "mia@example.com ",
    "BuyerInfo": {"BuyerName": "Mia Chen", "BuyerCustomerId": "C1"},
    "OrderTotal": {"Amount": "46.05", "CurrencyCode": "EUR"},
    "items": [
        {
            "SellerSKU": "SKU-A",
            "Title": "Vase",
            "QuantityOrdered": 1,
            "ItemPrice": {"Amount": "30.06", "CurrencyCode": "EUR"},
            "ListPrice": {"Amount": "40.01", "CurrencyCode": "EUR"},
        },
        {
            "SellerSKU": "SKU-B",
            "Title": "Tote",
            "QuantityOrdered": 3,
            "ItemPrice": {"Amount": "9.99", "CurrencyCode": "EUR"},
            "ListPrice": {"Amount": "3.33", "CurrencyCode": "EUR"},
        },
    ],
    "ShippingAddress": {
        "AddressLine1": "1 Oak St",
        "City": "Leeds",
        "PostalCode": "LS1",
        "CountryCode": "GB",
        "Phone": "+1-555",
    },
    "SalesChannel": "Amazon.com",
    "OrderStatus": "Shipped",
    "PurchaseDate": "2026-02-01T10:00:00Z",
    "LastUpdateDate": "2026-02-02T08:00:00Z",
}
# What identifies the payload on its platform, and what only one platform sends.
PLATFORM_COLUMNS = ["order_id", "platform", "source_order_id", "order_number", "channel", "session_id", "device"]


def test_two_platform_payloads_of_one_order_conform_to_the_same_standard_row(spark: SparkSession) -> None:
    products = spark.createDataFrame([("SKU-A", "P1"), ("SKU-B", "P2")], "sku string, product_id string")
    payloads = [
        conform.shopify_orders(bronze(spark, "orders_shopify", SHOPIFY), SOURCES["orders_shopify"]),
        conform.amazon_orders(bronze(spark, "orders_amazon", AMAZON), SOURCES["orders_amazon"]),
    ]
    orders = conform.standard_orders(payloads, products, FX, KEY)
    internal = [c for c in orders.columns if c.startswith("_") or c in conform.ORDER_PII]
    standard = orders.drop(*internal)
    shopify = standard.where("platform = 'shopify'").drop(*PLATFORM_COLUMNS)
    amazon = standard.where("platform = 'amazon'").drop(*PLATFORM_COLUMNS)
    assert_df_equality(shopify, amazon)
    row = shopify.first()
    assert row is not None
    assert (row["status"], row["currency"], str(row["order_total"]), str(row["subtotal"])) == (
        "shipped",
        "EUR",
        "46.05",
        "40.05",
    )
    assert (str(row["discount_total"]), str(row["shipping_total"]), str(row["order_total_usd"])) == (
        "9.95",
        "6.00",
        "50.66",
    )
    assert [(li["product_id"], li["quantity"], str(li["unit_price"])) for li in row["lines"]] == [
        ("P1", 1, "30.06"),
        ("P2", 3, "3.33"),
    ]
    assert row["email_hash"] == hmac.new(KEY, b"mia@example.com", hashlib.sha256).hexdigest()
    assert (row["customer_name_masked"], row["ship_postcode_masked"], row["ship_country"]) == ("M***", "L***", "GB")


def test_the_keyed_hash_is_hmac_sha256(spark: SparkSession) -> None:
    values = ["a@b.com", "ünïcode@例え.jp", "", None]
    long_key = b"k" * 100  # keys longer than a block are hashed first (RFC 2104)
    df = spark.createDataFrame([(v,) for v in values], "v string")
    got = df.select(hmac_sha256(F.col("v"), KEY).alias("a"), hmac_sha256(F.col("v"), long_key).alias("b")).collect()
    expected = [
        (None, None)
        if v is None
        else tuple(hmac.new(k, v.encode(), hashlib.sha256).hexdigest() for k in (KEY, long_key))
        for v in values
    ]
    assert [(r["a"], r["b"]) for r in got] == expected


def test_the_pii_key_comes_from_the_environment_or_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    privacy = {"key_env": "ML_TEST_KEY", "allow_dev_key": False, "dev_key": "dev"}
    monkeypatch.setenv("ML_TEST_KEY", "s3cret")
    assert pii_key(privacy) == b"s3cret"
    monkeypatch.delenv("ML_TEST_KEY")
    assert pii_key({**privacy, "allow_dev_key": True}) == b"dev"
    with pytest.raises(ConfigError, match="set the environment variable ML_TEST_KEY"):
        pii_key(privacy)


TELEMETRY = (
    "event_id string, trend_id string, product_id string, creator_id string, platform string, views long, "
    "likes long, comments long, shares long, engagement_velocity double, comment_sentiment double, "
    "observed_at timestamp, event_date date"
)


def test_trend_signals_cap_spikes_and_use_only_the_past(spark: SparkSession) -> None:
    """Day 0 sets the caps for day 1 (p50 here: views 250, likes 25, comments and shares 2.5, velocity 25); day 0
    itself has no earlier day and is not capped."""
    day0, day1 = date(2026, 2, 28), date(2026, 3, 1)
    rows = [
        *[
            (f"d{i}", "T0", "P0", "C0", "reels", 100 * i, 10 * i, i, i, 10.0 * i, 0.2 * i,
             datetime(2026, 2, 28, i - 1), day0)
            for i in range(1, 5)
        ],
        ("e1", "T1", "P1", "C1", "reels", 100, 10, 1, 1, 10.0, 0.2, datetime(2026, 3, 1, 0), day1),
        ("e2", "T1", "P1", "C1", "reels", 200, 20, 2, 2, 40.0, 0.4, datetime(2026, 3, 1, 1), day1),
        ("e3", "T1", "P1", "C1", "reels", 9_000, 30, 3, 3, 400.0, 0.6, datetime(2026, 3, 1, 2), day1),
        ("e4", "T1", "P1", "C1", "reels", 300, 35, 3, 4, 20.0, 0.8, datetime(2026, 3, 1, 4), day1),
    ]  # fmt: skip
    telemetry = spark.createDataFrame(rows, TELEMETRY)
    signals = conform.trend_signals(telemetry, percentile=0.5).select(
        "event_id",
        "views_capped",
        "velocity",
        "bot_spike",
        "engagement_per_hour",
        "velocity_peak_to_date",
        "decay_ratio",
        "sentiment_z",
    )
    # Day 1 engagement (likes + comments + shares, capped and rounded) 12, 24, 31, 31 over 1, 1 and 2 hours;
    # sentiment z against the creator's mean and sample deviation so far.
    z = [None, 0.7071067811865475, 1.0, 1.161895003862225]
    expected = spark.createDataFrame(
        [
            *[
                (f"d{i}", 100 * i, 10.0 * i, False, None if i == 1 else 12.0, 10.0 * i, 1.0, z[i - 1])
                for i in range(1, 5)
            ],
            ("e1", 100, 10.0, False, None, 10.0, 1.0, z[0]),
            ("e2", 200, 25.0, True, 12.0, 25.0, 1.0, z[1]),
            ("e3", 250, 25.0, True, 7.0, 25.0, 1.0, z[2]),
            ("e4", 250, 20.0, True, 0.0, 25.0, 0.8, z[3]),
        ],
        "event_id string, views_capped long, velocity double, bot_spike boolean, engagement_per_hour double, "
        "velocity_peak_to_date double, decay_ratio double, sentiment_z double",
    )
    assert_approx_df_equality(signals, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


def test_trend_signals_since_a_day_equal_the_whole_recomputation(spark: SparkSession) -> None:
    """The daily run recomputes signals from the earliest changed day on, continuing from the stored earlier days:
    the result must be what recomputing the whole telemetry gives, for trends and creators that started long
    before (peaks, previous readings and creator baselines come from the stored days) and caps that reach back."""
    rng = random.Random(3)
    start = date(2026, 1, 1)
    rows = []
    for t in range(12):
        first = rng.randrange(0, 30)
        for d in range(first, min(first + rng.randrange(5, 25), 45)):
            for reading in range(rng.randrange(1, 4)):
                at = datetime(2026, 1, 1, 3 + 6 * reading, rng.randrange(60)) + timedelta(days=d)
                views = rng.randrange(50, 5000) * (20 if rng.random() < 0.03 else 1)
                rows.append(
                    (f"e{t}-{d}-{reading}", f"T{t}", f"P{t % 5}", f"C{t % 4}", ("reels", "shorts")[t % 2], views,
                     views // rng.randrange(5, 20), rng.randrange(0, 50), rng.randrange(0, 30),
                     rng.uniform(0, 300), rng.uniform(-1, 1), at, at.date())
                )  # fmt: skip
    telemetry = spark.createDataFrame(rows, TELEMETRY)
    whole = conform.trend_signals(telemetry)
    for since in (start + timedelta(days=20), start + timedelta(days=33)):
        stored = conform.trend_signals(telemetry.where(F.col("event_date") < since))
        recomputed = conform.trend_signals_since(telemetry, stored, since)
        expected = whole.where(F.col("event_date") >= since)
        assert recomputed.count() == expected.count() > 20
        assert_df_equality(recomputed, expected, ignore_row_order=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--domain", "shop"], "error: unknown domain 'shop'"),
        (["--domain", "all", "--start", "2026-03-05"], "error: give both --start and --end"),
        (["--domain", "all", "--start", "2026-03-05", "--end", "2026-03-01"], "error: --start 2026-03-05 is after"),
        (["--domain", "all", "--start", "2026-13-01", "--end", "2026-03-01"], "error: --start '2026-13-01' is not"),
    ],
)
def test_user_mistakes_get_one_clear_line(
    job_in_process: Callable[..., tuple[int, str, str]], args: list[str], message: str
) -> None:
    code, _, err = job_in_process("silver_build.py", *args)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_a_user_mistake_is_one_clear_line_from_a_real_process() -> None:
    result = run_job("silver_build.py", "--domain", "shop", check=False)
    assert result.returncode == 2
    assert "error: unknown domain 'shop'" in result.stderr and "Traceback" not in result.stderr
