"""Conform bronze records (every value a string, as it arrived) to silver's typed, standard rows.

Every conformed frame keeps the raw value of each contract field as `_raw_<field>` (for the type and presence
rules), its lineage (`_source_entity`, `_batch_id`, `_landing_date`, `_source_file`, `_line_no`), the original
record and any drifted columns; build.py drops what silver does not store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from marketlake.config import SourceSpec
from marketlake.silver.privacy import protect, protected_name
from marketlake.silver.spec import ColumnSpec

LINEAGE = ("_source_entity", "_batch_id", "_landing_date", "_source_file", "_line_no")
RECORD = ("_raw_record", "_rescued_data", "_parseable", "_retry")
MONEY = "decimal(12,2)"
RATE = "decimal(12,6)"


def typed(value: Column, type_: str, enum: str | None = None) -> Column:
    """A bronze string as `type_`: blank is null, a value that does not convert is null (a type rule reports it),
    timestamps are read as UTC (ISO-8601 with a zone, or 'yyyy-MM-dd HH:mm:ss')."""
    text = F.nullif(F.trim(value), F.lit(""))
    if type_ == "string":
        if enum == "lower":
            return F.lower(text)
        return F.upper(text) if enum == "upper" else text
    return text.try_cast(type_)


def lineage(entity: str) -> list[Column]:
    return [
        F.lit(entity).alias("_source_entity"),
        "_batch_id",
        "_landing_date",
        "_source_file",
        "_line_no",
        "_raw_record",
        "_rescued_data",
        F.when(F.col("_parse_error").isNull(), F.lit(True)).alias("_parseable"),
        "_retry",
    ]


def raw_fields(source: SourceSpec) -> list[Column]:
    return [F.col(f"`{c}`").alias(f"_raw_{c}") for c in source.columns]


def with_pii(columns: Mapping[str, str], key: bytes) -> Callable[[DataFrame], DataFrame]:
    """Add the protected form of each PII column (column -> hash | mask | ip) beside the raw value; the raw value
    is dropped before anything is written to silver."""

    def _(df: DataFrame) -> DataFrame:
        return df.withColumns({protected_name(c, t): protect(F.col(c), t, key) for c, t in columns.items()})

    return _


def conform_columns(source: SourceSpec, columns: Sequence[ColumnSpec], key: bytes) -> Callable[[DataFrame], DataFrame]:
    """The declared columns of a one-source table, typed and normalised, with PII protected beside the raw."""

    def _(bronze: DataFrame) -> DataFrame:
        values = [
            typed(F.expr(c.expr) if c.expr else F.col(f"`{c.source or c.name}`"), c.type, c.enum).alias(c.name)
            for c in columns
        ]
        df = bronze.select(*values, *raw_fields(source), *lineage(source.entity))
        return df.transform(with_pii({c.name: c.pii for c in columns if c.pii}, key))

    return _


# ---- platform order payloads -> one standard order (with its lines) -------------------------------------------

ORDER_PII = {
    "email": "hash",
    "phone": "hash",
    "customer_name": "mask",
    "ship_address_line": "hash",
    "ship_postcode": "mask",
}
# The payload fields of each platform source that carry PII (JSON objects, or an email): the conform steps below read
# what silver keeps of them into ORDER_PII's protected columns and store none of the fields themselves. Declared PII
# for the detection over bronze (marketlake.privacy.detection).
PAYLOAD_PII = {
    "orders_shopify": ("customer", "email", "shipping_address", "client_details"),
    "orders_amazon": ("BuyerEmail", "BuyerInfo", "ShippingAddress"),
}
SHOPIFY_STATUS = {"fulfilled": "shipped", "partial": "shipped", "delivered": "delivered", "restocked": "cancelled"}
AMAZON_STATUS = {
    "pending": "placed",
    "unshipped": "placed",
    "partiallyshipped": "shipped",
    "shipped": "shipped",
    "delivered": "delivered",
    "canceled": "cancelled",
    "cancelled": "cancelled",
}


def _literal_map(mapping: Mapping[str, object], value_type: str = "string") -> Column:
    return F.create_map(*[x for k, v in sorted(mapping.items()) for x in (F.lit(k), F.lit(v).cast(value_type))])


def _mapped(value: Column, mapping: Mapping[str, str]) -> Column:
    """Map a (lower-cased) platform value to the standard vocabulary; an unknown value passes through so the
    status rule can name it."""
    return F.coalesce(F.try_element_at(_literal_map(mapping), F.lower(value)), F.lower(value))


def _json(column: str, schema: str) -> Column:
    return F.from_json(F.col(f"`{column}`"), schema)


def _money(value: Column) -> Column:
    return typed(value, MONEY)


def shopify_orders(bronze: DataFrame, source: SourceSpec) -> DataFrame:
    customer = _json("customer", "id string, email string, first_name string, last_name string, phone string")
    address = _json("shipping_address", "address1 string, city string, zip string, country_code string")
    client = _json("client_details", "session_id string, device_type string")
    items = _json(
        "line_items", "array<struct<sku:string,title:string,quantity:string,price:string,compare_at_price:string>>"
    )
    lines = F.transform(
        items,
        lambda li, i: F.struct(
            (i + 1).alias("line_no"),
            F.upper(F.trim(li["sku"])).alias("sku"),
            li["title"].alias("title"),
            li["quantity"].try_cast("int").alias("quantity"),
            _money(li["price"]).alias("unit_price"),
            _money(F.coalesce(li["compare_at_price"], li["price"])).alias("unit_list_price"),
        ),
    )
    return bronze.select(
        F.lit("shopify").alias("platform"),
        F.col("id").alias("source_order_id"),
        F.col("name").alias("order_number"),
        customer["id"].alias("customer_id"),
        F.lower(F.trim(F.coalesce(customer["email"], F.col("email")))).alias("email"),
        customer["phone"].alias("phone"),
        F.concat_ws(" ", customer["first_name"], customer["last_name"]).alias("customer_name"),
        _mapped(F.coalesce(F.col("fulfillment_status"), F.lit("placed")), SHOPIFY_STATUS).alias("status"),
        F.upper(F.trim(F.col("currency"))).alias("currency"),
        F.col("total_price").alias("_raw_order_total"),
        _money(F.col("total_price")).alias("order_total"),
        _money(F.col("subtotal_price")).alias("subtotal"),
        _money(F.col("total_discounts")).alias("_discounts"),
        F.lower(F.col("source_name")).alias("channel"),
        client["session_id"].alias("session_id"),
        F.lower(client["device_type"]).alias("device"),
        address["address1"].alias("ship_address_line"),
        address["city"].alias("ship_city"),
        address["zip"].alias("ship_postcode"),
        F.upper(address["country_code"]).alias("ship_country"),
        typed(F.col("created_at"), "timestamp").alias("created_at"),
        typed(F.col("updated_at"), "timestamp").alias("updated_at"),
        lines.alias("_lines"),
        *raw_fields(source),
        *lineage(source.entity),
    )


def amazon_orders(bronze: DataFrame, source: SourceSpec) -> DataFrame:
    money = "struct<Amount:string,CurrencyCode:string>"
    buyer = _json("BuyerInfo", "BuyerName string, BuyerCustomerId string")
    total = _json("OrderTotal", money)
    address = _json(
        "ShippingAddress", "AddressLine1 string, City string, PostalCode string, CountryCode string, Phone string"
    )
    items = _json(
        "items",
        f"array<struct<SellerSKU:string,Title:string,QuantityOrdered:string,ItemPrice:{money},ListPrice:{money}>>",
    )

    def line(li: Column, i: Column) -> Column:
        quantity = li["QuantityOrdered"].try_cast("int")
        item_total = _money(li["ItemPrice"]["Amount"])  # Amazon prices the line (unit price x quantity)
        return F.struct(
            (i + 1).alias("line_no"),
            F.upper(F.trim(li["SellerSKU"])).alias("sku"),
            li["Title"].alias("title"),
            quantity.alias("quantity"),
            F.try_divide(item_total, quantity).cast(MONEY).alias("unit_price"),
            _money(li["ListPrice"]["Amount"]).alias("unit_list_price"),
        )

    return bronze.select(
        F.lit("amazon").alias("platform"),
        F.col("AmazonOrderId").alias("source_order_id"),
        F.col("AmazonOrderId").alias("order_number"),
        buyer["BuyerCustomerId"].alias("customer_id"),
        F.lower(F.trim(F.col("BuyerEmail"))).alias("email"),
        address["Phone"].alias("phone"),
        buyer["BuyerName"].alias("customer_name"),
        _mapped(F.col("OrderStatus"), AMAZON_STATUS).alias("status"),
        F.upper(F.trim(total["CurrencyCode"])).alias("currency"),
        total["Amount"].alias("_raw_order_total"),
        _money(total["Amount"]).alias("order_total"),
        F.lit(None).cast(MONEY).alias("subtotal"),
        F.lit(None).cast(MONEY).alias("_discounts"),
        F.lit(None).cast("string").alias("channel"),
        F.lit(None).cast("string").alias("session_id"),
        F.lit(None).cast("string").alias("device"),
        address["AddressLine1"].alias("ship_address_line"),
        address["City"].alias("ship_city"),
        address["PostalCode"].alias("ship_postcode"),
        F.upper(address["CountryCode"]).alias("ship_country"),
        typed(F.col("PurchaseDate"), "timestamp").alias("created_at"),
        typed(F.col("LastUpdateDate"), "timestamp").alias("updated_at"),
        F.transform(items, line).alias("_lines"),
        *raw_fields(source),
        *lineage(source.entity),
    )


def standard_orders(
    payloads: Sequence[DataFrame], products: DataFrame | None, fx_usd: Mapping[str, float], key: bytes
) -> DataFrame:
    """Platform payloads (shopify_orders / amazon_orders output) as standard orders: product ids resolved by SKU
    (null when unknown), totals completed from the lines, amounts also in USD, PII protected beside the raw."""
    raw_columns = sorted({c for p in payloads for c in p.columns if c.startswith("_raw_")})
    orders = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), payloads)  # each has its own _raw_*
    lines = orders.select(*LINEAGE, F.explode_outer("_lines").alias("_line"))
    if products is not None:
        skus = products.select(F.col("sku").alias("_sku"), F.col("product_id").alias("_product_id")).distinct()
        lines = lines.join(F.broadcast(skus), F.col("_line.sku") == F.col("_sku"), "left")
    else:
        lines = lines.withColumn("_product_id", F.lit(None).cast("string"))
    line = F.col("_line")
    resolved = (
        lines.where(line.isNotNull())
        .groupBy(*LINEAGE)
        .agg(
            F.sort_array(
                F.collect_list(
                    F.struct(
                        line["line_no"].alias("line_no"),
                        F.col("_product_id").alias("product_id"),
                        line["sku"].alias("sku"),
                        line["title"].alias("title"),
                        line["quantity"].alias("quantity"),
                        line["unit_price"].alias("unit_price"),
                        line["unit_list_price"].alias("unit_list_price"),
                        (line["unit_list_price"] - line["unit_price"]).cast(MONEY).alias("unit_discount"),
                        (line["unit_price"] * line["quantity"]).cast(MONEY).alias("line_total"),
                    )
                )
            ).alias("lines")
        )
    )
    orders = orders.join(resolved, list(LINEAGE), "left")
    total = "decimal(20,2)"
    line_sum = F.aggregate("lines", F.lit(0).cast(total), lambda acc, li: (acc + li["line_total"]).cast(total))
    discount_sum = F.aggregate(
        "lines", F.lit(0).cast(total), lambda acc, li: (acc + li["unit_discount"] * li["quantity"]).cast(total)
    )
    rates = _literal_map(fx_usd, RATE)
    subtotal = F.coalesce(F.col("subtotal"), line_sum).cast(MONEY)
    fx = F.try_element_at(rates, F.col("currency"))
    return orders.select(
        F.concat(F.col("platform"), F.lit(":"), F.col("source_order_id")).alias("order_id"),
        "platform",
        "source_order_id",
        "order_number",
        "customer_id",
        "email",
        "phone",
        "customer_name",
        "status",
        "currency",
        subtotal.alias("subtotal"),
        F.coalesce(F.col("_discounts"), discount_sum).cast(MONEY).alias("discount_total"),
        (F.col("order_total") - subtotal).cast(MONEY).alias("shipping_total"),
        "order_total",
        fx.alias("fx_usd_rate"),
        (F.col("order_total") * fx).cast(MONEY).alias("order_total_usd"),
        F.coalesce(F.size("lines"), F.lit(0)).alias("line_count"),
        F.aggregate("lines", F.lit(0), lambda acc, li: acc + li["quantity"]).alias("units"),
        "channel",
        "session_id",
        "device",
        "ship_address_line",
        "ship_city",
        "ship_postcode",
        "ship_country",
        "created_at",
        "updated_at",
        "lines",
        *raw_columns,
        *LINEAGE,
        *RECORD,
    ).transform(with_pii(ORDER_PII, key))


def order_lines(orders: DataFrame) -> DataFrame:
    """One row per order line of standard orders (the order's time and currency carried along)."""
    li = F.col("_line")
    return orders.select(
        "order_id",
        "platform",
        "customer_id",
        "currency",
        "fx_usd_rate",
        "created_at",
        "updated_at",
        F.explode("lines").alias("_line"),
    ).select(
        "order_id",
        li["line_no"].alias("line_no"),
        "platform",
        "customer_id",
        li["product_id"].alias("product_id"),
        li["sku"].alias("sku"),
        li["title"].alias("title"),
        li["quantity"].alias("quantity"),
        li["unit_price"].alias("unit_price"),
        li["unit_list_price"].alias("unit_list_price"),
        li["unit_discount"].alias("unit_discount"),
        li["line_total"].alias("line_total"),
        "currency",
        (li["line_total"] * F.col("fx_usd_rate")).cast(MONEY).alias("line_total_usd"),
        "created_at",
        "updated_at",
    )


# ---- trend telemetry -> cleaned signals ------------------------------------------------------------------------

CAPPED = ("views", "likes", "comments", "shares", "engagement_velocity")


def trend_signals(telemetry: DataFrame, percentile: float = 0.99, cap_days: int = 28) -> DataFrame:
    """Cleaned trend signals, one row per observation:
    - each engagement metric capped at its p99 per platform over the cap_days before the observation's day (bot
      spikes), `bot_spike` when any was capped; a platform's first day has no history and is not capped;
    - `engagement_per_hour`: growth of capped likes + comments + shares since the trend's previous observation;
    - `velocity` (capped engagement velocity), `velocity_peak_to_date` and `decay_ratio` = velocity / peak so far
      (1 at the peak, falling towards 0 as the trend fades) and `hours_since_peak`;
    - `sentiment_z`: comment sentiment standardised against the creator's own observations up to that moment.
    Every value of a row uses only observations at or before it (caps: only earlier days), so telemetry that
    arrives later never changes a signal a purchase was linked to.
    """
    return windowed_signals(capped_observations(telemetry, telemetry, percentile, cap_days))


def trend_signals_since(
    telemetry: DataFrame,
    stored: DataFrame,
    since: date,
    percentile: float = 0.99,
    cap_days: int = 28,
) -> DataFrame:
    """The signals of the observations dated `since` or later, equal to what trend_signals gives for them over the
    whole telemetry, without recomputing earlier days: no value depends on a later observation, so the `stored`
    signals before `since` stand, and they carry the capped values the windows of the affected trends and
    creators continue from. Reads the telemetry of the cap window before `since` onwards only."""
    day = F.col("event_date")
    fresh = telemetry.where(day >= F.lit(since))
    history = telemetry.where(day >= F.date_sub(F.lit(since), cap_days))
    capped = capped_observations(fresh, history, percentile, cap_days)
    trends = fresh.select("trend_id").distinct().withColumn("_trend", F.lit(True))
    creators = fresh.select("creator_id").distinct().withColumn("_creator", F.lit(True))
    earlier = (
        stored.where(day < F.lit(since))
        .select(*capped.columns)
        .join(trends, "trend_id", "left")
        .join(creators, "creator_id", "left")
        .where(F.col("_trend") | F.col("_creator"))
        .select(*capped.columns)
    )
    return windowed_signals(earlier.unionByName(capped)).where(day >= F.lit(since))


def capped_observations(rows: DataFrame, history: DataFrame, percentile: float, cap_days: int) -> DataFrame:
    """`rows` with each engagement metric capped at its `percentile` per platform over the observations of
    `history` in the cap_days before the row's day, and `bot_spike` where any was capped."""
    days = rows.select("platform", F.col("event_date").alias("_day")).distinct()
    seen = history.select(F.col("platform").alias("_platform"), F.col("event_date").alias("_seen"), *CAPPED)
    earlier = (F.col("_platform") == F.col("platform")) & F.col("_seen").between(
        F.date_sub("_day", cap_days), F.date_sub("_day", 1)
    )
    caps = (
        days.join(seen, earlier)
        .groupBy(F.col("platform").alias("_cap_platform"), "_day")
        .agg(*[F.percentile(F.col(c).cast("double"), percentile).alias(f"_cap_{c}") for c in CAPPED])
    )
    on = (F.col("platform") == F.col("_cap_platform")) & (F.col("event_date") == F.col("_day"))
    df = rows.join(caps, on, "left")
    capped = {c: F.least(F.col(c).cast("double"), F.col(f"_cap_{c}")) for c in CAPPED}
    spike = F.greatest(*[F.col(c).cast("double") > F.col(f"_cap_{c}") for c in CAPPED])
    return df.select(
        "event_id",
        "trend_id",
        "product_id",
        "creator_id",
        "platform",
        "observed_at",
        "event_date",
        *[F.round(capped[c]).cast("long").alias(f"{c}_capped") for c in CAPPED if c != "engagement_velocity"],
        capped["engagement_velocity"].alias("velocity"),
        F.coalesce(spike, F.lit(False)).alias("bot_spike"),
        "comment_sentiment",
    )


def windowed_signals(df: DataFrame) -> DataFrame:
    """Capped observations -> signals: growth since the trend's previous observation, peak so far, decay, and
    sentiment against the creator's observations so far."""
    by_trend = Window.partitionBy("trend_id").orderBy("observed_at", "event_id")
    so_far = by_trend.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    by_creator = (
        Window.partitionBy("creator_id")
        .orderBy("observed_at", "event_id")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    engagement = F.col("likes_capped") + F.col("comments_capped") + F.col("shares_capped")
    hours = (F.col("observed_at").cast("long") - F.lag("observed_at").over(by_trend).cast("long")) / 3600.0
    growth = F.try_divide(engagement - F.lag(engagement).over(by_trend), hours)  # null for a trend's first reading
    peak = F.max("velocity").over(so_far)
    peak_at = F.max_by(F.col("observed_at"), F.col("velocity")).over(so_far)
    mean = F.avg("comment_sentiment").over(by_creator)
    std = F.stddev_samp("comment_sentiment").over(by_creator)
    return df.select(
        "*",
        F.when(growth.isNotNull(), F.greatest(F.lit(0.0), growth)).alias("engagement_per_hour"),
        peak.alias("velocity_peak_to_date"),
        F.try_divide(F.col("velocity"), peak).alias("decay_ratio"),
        ((F.col("observed_at").cast("long") - peak_at.cast("long")) / 3600.0).alias("hours_since_peak"),
        F.try_divide(F.col("comment_sentiment") - mean, F.nullif(std, F.lit(0.0))).alias("sentiment_z"),
    )
