"""Online shop + fulfillment sources: customers, products, web sessions, Shopify- and Amazon-like order payloads,
returns, fulfillment events and inventory movements.

Hidden causal structure: sessions follow daily/weekly seasonality with monthly growth; a flash sale lifts demand
and discounts, an outage cuts sessions. The probability that a purchase is returned for regret rises
super-linearly with (trend velocity live at purchase) x (discount depth); defect and fraud returns are independent
of both, and fraud claims come from expensive items bought several at a time or at night. The regret-intervention
experiment's planted effect (conf/base.yaml generator.experiment_effect) cuts the regret
probability for the purchases of treated customers with marketing consent.
"""

from __future__ import annotations

from typing import NamedTuple

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from marketlake.experiments.assign import assign_column
from marketlake.generator import trends as trend_gen
from marketlake.generator.params import DAY_S, GeneratorParams, PlantedEffect
from marketlake.generator.people import Person
from marketlake.generator.rand import Rng, element, lookup, pick

CATEGORIES = [
    ("apparel", 0.30),
    ("footwear", 0.15),
    ("beauty", 0.15),
    ("home", 0.15),
    ("electronics", 0.10),
    ("accessories", 0.15),
]
MEDIAN_PRICE = {
    "apparel": 45.0,
    "footwear": 90.0,
    "beauty": 25.0,
    "home": 60.0,
    "electronics": 150.0,
    "accessories": 30.0,
}
NOUNS = {
    "apparel": ["Hoodie", "Linen Shirt", "Cargo Pants", "Slip Dress"],
    "footwear": ["Runner", "Chelsea Boot", "Sandal"],
    "beauty": ["Serum", "Lip Tint", "Glow Mask"],
    "home": ["Throw Blanket", "Ceramic Vase", "LED Lamp"],
    "electronics": ["Earbuds", "Ring Light", "Mini Projector"],
    "accessories": ["Tote Bag", "Sunglasses", "Phone Grip"],
}
ADJECTIVES = ["Cloud", "Viral", "Everyday", "Retro", "Cozy", "Glow", "Urban", "Classic", "Minimal", "Bold"]
VENDORS = ["Northwind", "Acme Goods", "Lumen & Co", "Bright Basics", "Kite Studio", "Orbit Labs"]
CHANNELS = [
    ("organic", 0.30),
    ("paid_search", 0.20),
    ("social", 0.20),
    ("email", 0.10),
    ("direct", 0.15),
    ("affiliate", 0.05),
]
CONVERSION = {
    "organic": 0.045,
    "paid_search": 0.05,
    "social": 0.03,
    "email": 0.07,
    "direct": 0.055,
    "affiliate": 0.04,
}
DEVICE_CONVERSION = {"mobile": 0.8, "desktop": 1.3, "tablet": 1.0}
WEEKDAY_FACTOR = {1: 1.10, 2: 0.95, 3: 0.97, 4: 1.0, 5: 1.0, 6: 0.95, 7: 1.15}  # Spark dayofweek: 1 = Sunday
HOUR_WEIGHTS = [
    1,
    0.6,
    0.4,
    0.3,
    0.3,
    0.5,
    1,
    2,
    3,
    3.5,
    3.8,
    4,
    4.2,
    4,
    3.8,
    3.8,
    4,
    4.5,
    5.2,
    6,
    6.2,
    5.5,
    4,
    2,
]
CURRENCY = [("USD", 0.8), ("EUR", 0.12), ("GBP", 0.08)]
FX_FROM_USD = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79}
WAREHOUSES = {"WH-EAST": 0.8, "WH-WEST": 1.0, "WH-CENTRAL": 1.4}
CARRIERS = ["UPS", "FedEx", "DHL", "USPS"]
REGRET_REASONS = [("SIZE_FIT", 0.35), ("CHANGED_MIND", 0.3), ("NOT_AS_EXPECTED", 0.2), ("IMPULSE", 0.15)]
REASON_TEXT = {
    "SIZE_FIT": "Didn't fit",
    "CHANGED_MIND": "Changed my mind",
    "NOT_AS_EXPECTED": "Looked different in the video",
    "IMPULSE": "Bought on impulse",
    "DEFECTIVE": "Stopped working",
    "DAMAGED": "Arrived damaged",
    "FRAUD_SUSPECTED": "Item not received",
}
VELOCITY_REF = 60.0  # engagements/hour at which trend pressure saturates (the velocity of a top-decile trend)
# The customer facts every order payload carries.
CUSTOMER_FIELDS = (
    "customer_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "address_line",
    "city",
    "postcode",
    "country",
)


class Drawn(NamedTuple):
    customers: DataFrame
    products: DataFrame
    sessions: DataFrame
    lines: DataFrame


def _customers(spark: SparkSession, p: GeneratorParams, rng: Rng) -> DataFrame:
    n_existing = p.count("commerce_customers_existing")
    n_new = p.count("commerce_customers_new_per_day") * p.days
    cid = F.col("cid")
    history = 365 * DAY_S
    created = F.when(cid < n_existing, F.lit(p.start_s - history) + cid * (history / n_existing)).otherwise(
        F.lit(p.start_s) + (cid - n_existing) * (p.days * DAY_S / max(n_new, 1))
    )
    created = (created + rng.uniform("cu:t", cid) * 600).cast("long")
    person = Person(rng, cid, "commerce:customer")
    return (
        spark.range(n_existing + n_new)
        .withColumnRenamed("id", "cid")
        .select(
            cid,
            F.concat(F.lit("C"), F.lpad(cid.cast("string"), 8, "0")).alias("customer_id"),
            person.email.alias("email"),
            person.phone.alias("phone"),
            person.first_name.alias("first_name"),
            person.last_name.alias("last_name"),
            person.address_line.alias("address_line"),
            person.country.alias("country"),
            person.postcode.alias("postcode"),
            rng.bernoulli("cu:optin", 0.55, cid).alias("marketing_opt_in"),
            F.timestamp_seconds(created).alias("created_at"),
            created.alias("_created_s"),
        )
        .withColumn("city", Person(rng, cid, "commerce:customer").city(F.col("country")))
    )


def _products(spark: SparkSession, p: GeneratorParams, rng: Rng) -> DataFrame:
    pid = F.col("pid")
    category = rng.choice("pr:cat", CATEGORIES, pid)
    noun_options = F.create_map(*[x for c, ns in NOUNS.items() for x in (F.lit(c), F.array(*[F.lit(n) for n in ns]))])
    nouns = noun_options[category]
    noun = F.element_at(nouns, (F.floor(rng.uniform("pr:noun", pid) * F.size(nouns)) + 1).cast("int"))
    size = (
        F.when(
            category == "apparel",
            rng.choice("pr:size", [("XS", 1), ("S", 2), ("M", 3), ("L", 2), ("XL", 1)], pid),
        )
        .when(
            category == "footwear",
            (36 + F.floor(rng.uniform("pr:shoe", pid) * 10)).cast("int").cast("string"),
        )
        .otherwise(F.lit("one-size"))
    )
    list_price = F.round(lookup(MEDIAN_PRICE, category) * F.exp(0.5 * rng.normal("pr:price", pid)), 0) - 0.01
    weight = F.round(0.1 + 2.5 * rng.uniform("pr:w", pid), 2)
    created = (F.lit(p.start_s - 200 * DAY_S) + rng.uniform("pr:t", pid) * 190 * DAY_S).cast("long")
    return (
        spark.range(p.count("commerce_products"))
        .withColumnRenamed("id", "pid")
        .select(
            pid,
            F.concat(F.lit("P"), F.lpad(pid.cast("string"), 6, "0")).alias("product_id"),
            F.concat(
                F.lit("SKU-"),
                F.upper(F.substring(category, 1, 3)),
                F.lit("-"),
                F.lpad(pid.cast("string"), 6, "0"),
            ).alias("sku"),
            F.concat(element(ADJECTIVES, F.floor(rng.uniform("pr:adj", pid) * 10)), F.lit(" "), noun).alias("name"),
            category.alias("category"),
            element(VENDORS, F.floor(rng.uniform("pr:vendor", pid) * len(VENDORS))).alias("vendor"),
            size.alias("size"),
            F.greatest(F.lit(4.99), list_price).cast("decimal(12,2)").alias("list_price"),
            F.round(F.greatest(F.lit(4.99), list_price) * (0.3 + 0.3 * rng.uniform("pr:cost", pid)), 2)
            .cast("decimal(12,2)")
            .alias("unit_cost"),
            weight.alias("weight_kg"),
            F.round(10 + 40 * rng.uniform("pr:l", pid), 1).alias("length_cm"),
            F.round(8 + 25 * rng.uniform("pr:wd", pid), 1).alias("width_cm"),
            F.round(2 + 20 * rng.uniform("pr:h", pid), 1).alias("height_cm"),
            F.timestamp_seconds(created).alias("created_at"),
            F.timestamp_seconds(created).alias("updated_at"),
            F.lit(p.start_s).alias("_ts"),
            F.concat(F.lit("P"), pid.cast("string")).alias("_rid"),
        )
    )


def _daily_session_counts(p: GeneratorParams) -> list[int]:
    """Expected sessions per day: weekly seasonality, ~4 %/month growth, flash-sale and outage shocks."""
    import datetime as dt

    base = p.count("commerce_sessions_per_day")
    flash, outage = p.shock_day("flash_sale"), p.shock_day("outage")
    counts = []
    for day in range(p.days):
        d = p.start + dt.timedelta(days=day)
        factor = WEEKDAY_FACTOR[(d.isoweekday() % 7) + 1] * (1 + 0.04 * day / 30)
        if day == flash:
            factor *= float(p.shocks["flash_sale"]["demand"])
        if day == outage:
            factor *= float(p.shocks["outage"]["demand"])
        counts.append(round(base * factor))
    return counts


def _by_day(spark: SparkSession, counts: list[int]) -> DataFrame:
    """Rows (day, idx) with `counts[day]` rows per day, spread evenly over partitions."""
    offsets, total = [], 0
    for n in counts:
        offsets.append(total)
        total += n
    offsets_sql = ",".join(str(o) for o in offsets)
    day = F.expr(f"size(filter(array({offsets_sql}), x -> x <= id)) - 1")
    offset_of = F.element_at(F.array(*[F.lit(o) for o in offsets]), day + 1)
    return spark.range(total).select(day.alias("day"), (F.col("id") - offset_of).alias("idx"))


def _sessions(spark: SparkSession, p: GeneratorParams, rng: Rng, n_customers_by_time: Column) -> DataFrame:
    df = _by_day(spark, _daily_session_counts(p))
    k = F.concat_ws("-", F.lit("s"), F.col("day").cast("string"), F.col("idx").cast("string"))
    hour = pick(rng.uniform("s:hour", k), [(h, w) for h, w in enumerate(HOUR_WEIGHTS)])
    started = (F.lit(p.start_s) + F.col("day") * DAY_S + hour * 3600 + rng.uniform("s:min", k) * 3600).cast("long")
    df = df.select("day", k.alias("_rid"), started.alias("_ts"))
    k = F.col("_rid")
    known = rng.bernoulli("s:known", 0.45, k)
    n_customers = n_customers_by_time
    cust_idx = F.floor(rng.uniform("s:cust", k) * n_customers).cast("long")
    pages = (1 + F.floor(F.exp(1.2 * rng.uniform("s:pages", k) * 2.2))).cast("int")
    outage = p.shock_day("outage")
    return df.select(
        "*",
        F.concat(F.lit("WS-"), F.upper(F.substring(F.sha2(k, 256), 1, 20))).alias("session_id"),
        F.when(known, F.concat(F.lit("C"), F.lpad(cust_idx.cast("string"), 8, "0"))).alias("customer_id"),
        cust_idx.alias("_cust_idx"),
        rng.choice("s:channel", CHANNELS, k).alias("channel"),
        rng.choice("s:device", [("mobile", 0.6), ("desktop", 0.32), ("tablet", 0.08)], k).alias("device"),
        rng.choice(
            "s:landing", [("/", 0.4), ("/collections/trending", 0.25), ("/products", 0.25), ("/sale", 0.1)], k
        ).alias("landing_page"),
        pages.alias("pages_viewed"),
        (pages * (20 + rng.exponential("s:dur", 45.0, k))).cast("int").alias("duration_s"),
        F.timestamp_seconds("_ts").alias("started_at"),
        rng.choice("s:utm", [("spring_drop", 0.3), ("creator_collab", 0.4), ("retarget", 0.3)], k).alias(
            "utm_campaign"
        ),
        (F.col("day") == F.lit(-1 if outage is None else outage)).alias("_outage"),
    )


def _trend_arrays(trends: DataFrame) -> DataFrame:
    """Per product, its trends as an array of structs sorted by start (for point-in-time lookups)."""
    return trends.groupBy("product_id").agg(
        F.sort_array(F.collect_list(F.struct("start_s", "ramp_h", "peak_velocity", "half_life_h", "hype"))).alias(
            "_trends"
        )
    )


def _velocity_at_purchase(ts: Column) -> Column:
    """Velocity of the most recent trend that started at or before ts (0 when none)."""
    live = F.filter(F.col("_trends"), lambda t: t["start_s"] <= ts)
    latest = F.try_element_at(live, F.lit(-1))
    hours = (ts - latest["start_s"]) / 3600.0
    v = trend_gen.velocity_at(hours, latest["ramp_h"], latest["peak_velocity"], latest["half_life_h"])
    return F.when(F.size(live) > 0, v).otherwise(F.lit(0.0))


def _orders_and_lines(
    p: GeneratorParams,
    rng: Rng,
    sessions: DataFrame,
    products: DataFrame,
    customers: DataFrame,
    trends: DataFrame,
) -> DataFrame:
    """One row per order line, carrying its order's attributes and the hidden return decision."""
    k = F.col("_rid")
    flash = p.shock_day("flash_sale")
    is_flash = F.col("day") == F.lit(-1 if flash is None else flash)
    conv = lookup(CONVERSION, F.col("channel")) * lookup(DEVICE_CONVERSION, F.col("device"))
    conv = conv * F.when(is_flash, F.lit(1.6)).otherwise(F.lit(1.0))
    orders = sessions.where(rng.bernoulli("o:conv", conv, k) & ~F.col("_outage"))
    n_lines = rng.choice("o:lines", [(1, 0.55), (2, 0.25), (3, 0.13), (4, 0.07)], k)
    created = (F.col("_ts") + F.col("pages_viewed") * 40 + rng.uniform("o:t", k) * 120).cast("long")
    orders = orders.select(
        "day",
        F.col("_rid").alias("_order_key"),
        "channel",
        "device",
        "session_id",
        created.alias("_created_s"),
        F.coalesce(F.col("_cust_idx"), F.lit(0)).alias("cid"),
        rng.choice("o:platform", [("shopify", 0.7), ("amazon", 0.3)], k).alias("platform"),
        rng.choice("o:cur", CURRENCY, k).alias("currency"),
        is_flash.alias("_flash"),
        n_lines.alias("_n_lines"),
        rng.choice("o:wh", [(w, 1.0) for w in WAREHOUSES], k).alias("warehouse"),
    )
    orders = orders.join(customers.select("cid", *CUSTOMER_FIELDS, F.col("marketing_opt_in").alias("_opt_in")), "cid")
    lines = orders.withColumn("line_no", F.explode(F.sequence(F.lit(1), F.col("_n_lines"))))
    lk = F.concat(F.col("_order_key"), F.lit("#"), F.col("line_no").cast("string"))
    n_products = p.count("commerce_products")
    pid = F.floor(F.pow(rng.uniform("l:product", lk), F.lit(2.0)) * n_products).cast("long")
    boost = float(p.shocks.get("flash_sale", {}).get("discount_boost", 0.0)) if flash is not None else 0.0
    discounted = rng.bernoulli("l:disc?", 0.45, lk)
    discount = F.when(discounted, 0.05 + 0.45 * rng.uniform("l:disc", lk)).otherwise(F.lit(0.0))
    discount = F.least(F.lit(0.8), discount + F.when(F.col("_flash"), F.lit(boost)).otherwise(F.lit(0.0)))
    lines = lines.select(
        "*",
        lk.alias("_line_key"),
        pid.alias("pid"),
        F.round(discount, 3).alias("_discount"),
        (1 + F.floor(F.pow(rng.uniform("l:qty", lk), F.lit(3.0)) * 3)).cast("int").alias("quantity"),
    )
    lines = lines.join(
        F.broadcast(
            products.select("pid", "product_id", "sku", "name", "category", "vendor", "list_price", "weight_kg")
        ),
        "pid",
    )
    lines = lines.join(F.broadcast(_trend_arrays(trends)), "product_id", "left")
    velocity = _velocity_at_purchase(F.col("_created_s"))
    latest_hype = F.coalesce(
        F.try_element_at(F.filter(F.col("_trends"), lambda t: t["start_s"] <= F.col("_created_s")), F.lit(-1))["hype"],
        F.lit(1.0),
    )
    x = F.least(F.lit(1.0), velocity / VELOCITY_REF) * F.col("_discount")
    p_regret = 0.06 + 0.9 * F.pow(x, F.lit(1.5)) + 0.03 * F.greatest(F.lit(0.0), latest_hype - 1)
    p_regret = _with_effect(p.effect, p_regret)
    lk = F.col("_line_key")
    fraud = rng.bernoulli("r:fraud", _p_fraud(), lk)
    defect = rng.bernoulli("r:defect", 0.015, lk)
    regret = rng.bernoulli("r:regret", p_regret, lk)
    kind = F.when(fraud, F.lit("fraud")).when(defect, F.lit("defect")).when(regret, F.lit("regret"))
    fx = lookup(FX_FROM_USD, F.col("currency"))
    unit_list = F.round(F.col("list_price").cast("double") * fx, 2)
    unit_paid = F.round(unit_list * (1 - F.col("_discount")), 2)
    return lines.select(
        "*",
        velocity.alias("_velocity"),
        p_regret.alias("_p_regret"),
        kind.alias("_return_kind"),
        unit_list.alias("_unit_list"),
        unit_paid.alias("_unit_paid"),
    )


def _p_fraud() -> Column:
    """A line's chance of a fraudulent "item not received" claim: higher bought at night (UTC) and highest for an
    expensive item bought several at a time or at night."""
    night = F.hour(F.timestamp_seconds("_created_s")) < 6
    expensive = F.col("list_price").cast("double") >= 120
    risky = expensive & ((F.col("quantity") >= 2) | night)
    return F.when(risky, F.lit(0.08)).when(night, F.lit(0.01)).otherwise(F.lit(0.002))


def _with_effect(effect: PlantedEffect | None, p_regret: Column) -> Column:
    """P(regret) of a line with the experiment's planted effect: cut for a treated customer with marketing consent."""
    if effect is None:
        return p_regret
    treated = assign_column(effect.design, F.col("customer_id")).isin(*effect.treated) & F.col("_opt_in")
    return F.when(treated, p_regret * (1 - effect.relative_effect)).otherwise(p_regret)


def _order_timeline(p: GeneratorParams, rng: Rng, lines: DataFrame) -> DataFrame:
    """Per order: totals, fulfillment times and the line items as arrays."""
    ok = F.col("_order_key")
    agg = lines.groupBy(
        "_order_key",
        "day",
        "platform",
        "currency",
        "channel",
        "device",
        "session_id",
        "_created_s",
        "_flash",
        "warehouse",
        *CUSTOMER_FIELDS,
    ).agg(
        F.sort_array(
            F.collect_list(
                F.struct(
                    "line_no",
                    "product_id",
                    "sku",
                    "name",
                    "category",
                    "vendor",
                    "quantity",
                    "_unit_paid",
                    "_unit_list",
                    "weight_kg",
                )
            )
        ).alias("_lines"),
        F.round(F.sum(F.col("_unit_paid") * F.col("quantity")), 2).alias("_subtotal"),
        F.round(F.sum((F.col("_unit_list") - F.col("_unit_paid")) * F.col("quantity")), 2).alias("_discounts"),
        F.sum(F.col("weight_kg") * F.col("quantity")).alias("_weight"),
    )
    wh = lookup(WAREHOUSES, F.col("warehouse"))
    ff_hours = rng.lognormal("f:hours", 3.0, 0.6, ok) * wh * F.when(F.col("_flash"), F.lit(2.0)).otherwise(F.lit(1.0))
    shipped = F.col("_created_s") + (ff_hours * 3600).cast("long")
    delivered = shipped + ((1 + rng.uniform("f:transit", ok) * 4) * DAY_S).cast("long")
    shipping_est = F.round(4.0 + 1.8 * F.col("_weight"), 2)
    return agg.select(
        "*",
        F.pmod(F.xxhash64(F.lit(p.seed), ok), F.lit(10_000_000_000)).alias("_num"),
        shipped.alias("_shipped_s"),
        delivered.alias("_delivered_s"),
        (F.col("_created_s") + 4 * DAY_S).alias("_promised_s"),
        shipping_est.alias("_ship_est"),
        F.round(shipping_est * (1 + 0.02 + 0.05 * rng.normal("f:cost", ok)), 2).alias("_ship_actual"),
        element(CARRIERS, F.floor(rng.uniform("f:carrier", ok) * 4)).alias("carrier"),
        rng.bernoulli("f:accurate", 0.993, ok).alias("_items_correct"),
    )


def _platform_ref(df: DataFrame) -> Column:
    amazon_id = F.concat(
        F.lpad((F.col("_num") % 1000).cast("string"), 3, "1"),
        F.lit("-"),
        F.lpad((F.col("_num") % 10_000_000).cast("string"), 7, "0"),
        F.lit("-"),
        F.lpad(F.floor(F.col("_num") / 1000).cast("long").cast("string"), 7, "0").substr(1, 7),
    )
    shopify_id = (F.lit(4_500_000_000_000) + F.col("_num")).cast("string")
    return F.when(F.col("platform") == "amazon", amazon_id).otherwise(shopify_id)


def _versions(df: DataFrame) -> DataFrame:
    """Order CDC: created (pending), shipped, delivered, each re-sent with its update time."""
    return df.select(
        "*",
        F.explode(
            F.array(
                F.struct(F.lit(0).alias("v"), F.col("_created_s").alias("_ts")),
                F.struct(F.lit(1).alias("v"), F.col("_shipped_s").alias("_ts")),
                F.struct(F.lit(2).alias("v"), F.col("_delivered_s").alias("_ts")),
            )
        ).alias("ver"),
    ).select(
        "*",
        F.col("ver._ts").alias("_ts"),
        F.col("ver.v").alias("_v"),
        F.concat(F.col("_order_key"), F.lit("@"), F.col("ver.v").cast("string")).alias("_rid"),
    )


def _shopify_money(amount: Column) -> Column:
    """Shopify sends money as strings with two decimals ("123.40")."""
    return F.format_string("%.2f", amount.cast("double"))


def _amazon_money(amount: Column) -> Column:
    """Amazon's Money type: {"Amount": "123.40", "CurrencyCode": "USD"}."""
    return F.struct(
        F.format_string("%.2f", amount.cast("double")).alias("Amount"), F.col("currency").alias("CurrencyCode")
    )


def _shopify(orders: DataFrame) -> DataFrame:
    df = _versions(orders.where(F.col("platform") == "shopify"))
    items = F.transform(
        F.col("_lines"),
        lambda li: F.struct(
            (F.col("_num") * 10 + li["line_no"]).alias("id"),
            li["product_id"].alias("product_id"),
            li["sku"].alias("sku"),
            li["name"].alias("title"),
            li["quantity"].alias("quantity"),
            _shopify_money(li["_unit_paid"]).alias("price"),
            _shopify_money(li["_unit_list"]).alias("compare_at_price"),
            F.round(li["weight_kg"] * 1000).cast("int").alias("grams"),
            li["vendor"].alias("vendor"),
            li["category"].alias("product_type"),
        ),
    )
    status = (
        F.when(F.col("_v") == 0, F.lit(None).cast("string"))
        .when(F.col("_v") == 1, F.lit("fulfilled"))
        .otherwise(F.lit("delivered"))
    )
    total = F.col("_subtotal") + F.col("_ship_est")
    return df.select(
        F.col("_ref").cast("long").alias("id"),
        F.concat(F.lit("#"), (F.col("_num") % 1_000_000 + 1000).cast("string")).alias("name"),
        F.struct(F.col("customer_id").alias("id"), "email", "first_name", "last_name", "phone").alias("customer"),
        "email",
        _shopify_money(total).alias("total_price"),
        _shopify_money(F.col("_subtotal")).alias("subtotal_price"),
        _shopify_money(F.col("_discounts")).alias("total_discounts"),
        "currency",
        items.alias("line_items"),
        F.struct(
            F.col("address_line").alias("address1"),
            "city",
            F.col("postcode").alias("zip"),
            F.col("country").alias("country_code"),
            "phone",
        ).alias("shipping_address"),
        F.col("channel").alias("source_name"),
        F.struct("session_id", F.col("device").alias("device_type")).alias("client_details"),
        F.lit("paid").alias("financial_status"),
        status.alias("fulfillment_status"),
        F.timestamp_seconds("_created_s").alias("created_at"),
        F.timestamp_seconds("_ts").alias("updated_at"),
        "_ts",
        "_rid",
    )


def _amazon(orders: DataFrame) -> DataFrame:
    df = _versions(orders.where(F.col("platform") == "amazon"))
    items = F.transform(
        F.col("_lines"),
        lambda li: F.struct(
            li["sku"].alias("SellerSKU"),
            F.concat(F.lit("B0"), F.upper(F.substring(F.sha2(li["product_id"], 256), 1, 8))).alias("ASIN"),
            li["name"].alias("Title"),
            li["quantity"].alias("QuantityOrdered"),
            _amazon_money(li["_unit_paid"] * li["quantity"]).alias("ItemPrice"),
            _amazon_money(li["_unit_list"]).alias("ListPrice"),
        ),
    )
    status = (
        F.when(F.col("_v") == 0, F.lit("Pending"))
        .when(F.col("_v") == 1, F.lit("Shipped"))
        .otherwise(F.lit("Delivered"))
    )
    return df.select(
        F.col("_ref").alias("AmazonOrderId"),
        F.col("email").alias("BuyerEmail"),
        F.struct(
            F.concat_ws(" ", "first_name", "last_name").alias("BuyerName"),
            F.col("customer_id").alias("BuyerCustomerId"),
        ).alias("BuyerInfo"),
        _amazon_money(F.col("_subtotal") + F.col("_ship_est")).alias("OrderTotal"),
        items.alias("items"),
        F.struct(
            F.col("address_line").alias("AddressLine1"),
            F.col("city").alias("City"),
            F.col("postcode").alias("PostalCode"),
            F.col("country").alias("CountryCode"),
            F.col("phone").alias("Phone"),
        ).alias("ShippingAddress"),
        F.lit("Amazon.com").alias("SalesChannel"),
        status.alias("OrderStatus"),
        F.timestamp_seconds("_created_s").alias("PurchaseDate"),
        F.timestamp_seconds("_ts").alias("LastUpdateDate"),
        "_ts",
        "_rid",
    )


def _returns(rng: Rng, lines: DataFrame, orders: DataFrame) -> DataFrame:
    returned = lines.where(F.col("_return_kind").isNotNull()).join(
        orders.select("_order_key", "_ref", "_delivered_s"), "_order_key"
    )
    lk = F.col("_line_key")
    reason = (
        F.when(F.col("_return_kind") == "fraud", F.lit("FRAUD_SUSPECTED"))
        .when(
            F.col("_return_kind") == "defect",
            rng.choice("r:defect_reason", [("DEFECTIVE", 0.6), ("DAMAGED", 0.4)], lk),
        )
        .otherwise(rng.choice("r:regret_reason", REGRET_REASONS, lk))
    )
    after_days = (
        F.when(F.col("_return_kind") == "regret", 1 + rng.uniform("r:days", lk) * 12)
        .when(F.col("_return_kind") == "fraud", 1 + rng.uniform("r:days", lk) * 5)
        .otherwise(2 + rng.uniform("r:days", lk) * 20)
    )
    requested = (F.col("_delivered_s") + after_days * DAY_S).cast("long")
    return returned.select(
        F.concat(F.lit("RT-"), F.upper(F.substring(F.sha2(lk, 256), 1, 14))).alias("return_id"),
        F.col("_ref").alias("order_ref"),
        "platform",
        "product_id",
        "sku",
        "quantity",
        reason.alias("reason_code"),
        lookup(REASON_TEXT, reason).alias("reason_text"),
        F.round(F.col("_unit_paid") * F.col("quantity"), 2).cast("decimal(12,2)").alias("refund_amount"),
        "currency",
        F.timestamp_seconds(requested).alias("requested_at"),
        requested.alias("_ts"),
        lk.alias("_rid"),
    )


def _fulfillment_events(rng: Rng, orders: DataFrame) -> DataFrame:
    ok = F.col("_order_key")
    span = F.col("_shipped_s") - F.col("_created_s")
    steps = F.array(
        F.struct(
            F.lit("received").alias("status"),
            (F.col("_created_s") + 60 + (rng.uniform("fe:r", ok) * 540).cast("long")).alias("t"),
        ),
        F.struct(F.lit("picked").alias("status"), (F.col("_created_s") + span * 0.45).cast("long").alias("t")),
        F.struct(F.lit("packed").alias("status"), (F.col("_created_s") + span * 0.7).cast("long").alias("t")),
        F.struct(F.lit("shipped").alias("status"), F.col("_shipped_s").alias("t")),
        F.struct(F.lit("delivered").alias("status"), F.col("_delivered_s").alias("t")),
    )
    df = orders.select("*", F.explode(steps).alias("e"))
    shipped = F.col("e.status") == "shipped"
    return df.select(
        F.concat(F.lit("FE-"), F.col("_ref"), F.lit("-"), F.col("e.status")).alias("event_id"),
        F.col("_ref").alias("order_ref"),
        "platform",
        F.col("e.status").alias("status"),
        "warehouse",
        F.when(shipped | (F.col("e.status") == "delivered"), F.col("carrier")).alias("carrier"),
        F.when(shipped, F.col("_ship_est")).alias("estimated_cost"),
        F.when(shipped, F.col("_ship_actual")).alias("actual_cost"),
        F.when(shipped, F.timestamp_seconds("_promised_s")).alias("promised_at"),
        F.when(F.col("e.status") == "delivered", F.col("_items_correct")).alias("items_correct"),
        F.timestamp_seconds("e.t").alias("event_at"),
        F.col("e.t").alias("_ts"),
        F.concat(ok, F.lit("/"), F.col("e.status")).alias("_rid"),
    )


def _inventory(spark: SparkSession, p: GeneratorParams, rng: Rng, products: DataFrame, lines: DataFrame) -> DataFrame:
    pid = F.col("pid")
    warehouse_of = element(list(WAREHOUSES), pid % 3)
    opening = products.select(
        "product_id",
        warehouse_of.alias("warehouse"),
        F.lit("in").alias("movement_type"),
        (100 + F.floor(rng.uniform("inv:open", pid) * 500)).cast("long").alias("quantity"),
        F.lit("OPENING").alias("reference"),
        F.lit(p.start_s).alias("_ts"),
        F.concat(F.lit("open-"), pid.cast("string")).alias("_rid"),
    )
    sales = (
        lines.groupBy("pid", "product_id", "day")
        .agg(F.sum("quantity").cast("long").alias("quantity"))
        .select(
            "product_id",
            warehouse_of.alias("warehouse"),
            F.lit("out").alias("movement_type"),
            "quantity",
            F.concat(F.lit("SALES-"), F.col("day").cast("string")).alias("reference"),
            (F.lit(p.start_s) + F.col("day") * DAY_S + 23 * 3600).cast("long").alias("_ts"),
            F.concat(F.lit("sale-"), pid.cast("string"), F.lit("-"), F.col("day").cast("string")).alias("_rid"),
        )
    )
    days = spark.range(p.days).withColumnRenamed("id", "day")
    pd_key = F.concat_ws("-", pid.cast("string"), F.col("day").cast("string"))
    grid = products.select("pid", "product_id").crossJoin(F.broadcast(days))
    kind = (
        F.when(F.pmod(F.col("day") + pid, F.lit(7)) == 0, F.lit("in"))
        .when(rng.bernoulli("inv:adj", 0.02, pd_key), F.lit("adjustment"))
        .when(rng.bernoulli("inv:tr", 0.01, pd_key), F.lit("transfer"))
    )
    qty = (
        F.when(kind == "in", 30 + F.floor(rng.uniform("inv:in", pd_key) * 150))
        .when(kind == "adjustment", 1 + F.floor(rng.uniform("inv:adjq", pd_key) * 3))
        .otherwise(5 + F.floor(rng.uniform("inv:trq", pd_key) * 15))
    ).cast("long")
    other_wh = element(list(WAREHOUSES), (pid + 1) % 3)
    reference = (
        F.when(kind == "in", F.concat(F.lit("PO-"), F.upper(F.substring(F.sha2(pd_key, 256), 1, 8))))
        .when(kind == "adjustment", F.lit("SHRINKAGE"))
        .otherwise(F.concat(F.lit("TO:"), other_wh))
    )
    other = grid.select(
        "product_id",
        warehouse_of.alias("warehouse"),
        kind.alias("movement_type"),
        qty.alias("quantity"),
        reference.alias("reference"),
        (F.lit(p.start_s) + F.col("day") * DAY_S + 6 * 3600 + rng.uniform("inv:t", pd_key) * 10 * 3600)
        .cast("long")
        .alias("_ts"),
        F.concat(F.lit("mv-"), pd_key).alias("_rid"),
    ).where(F.col("movement_type").isNotNull())
    movements = opening.unionByName(sales).unionByName(other)
    return movements.select(
        F.concat(F.lit("MV-"), F.upper(F.substring(F.sha2(F.col("_rid"), 256), 1, 14))).alias("movement_id"),
        "product_id",
        "warehouse",
        "movement_type",
        "quantity",
        "reference",
        F.timestamp_seconds("_ts").alias("moved_at"),
        "_ts",
        "_rid",
    )


def drawn(spark: SparkSession, p: GeneratorParams, trends: DataFrame) -> Drawn:
    """Customers, products, sessions and order lines (persisted), the lines with their hidden regret probability
    (`_p_regret`, after any planted effect) and return decision (`_return_kind`)."""
    rng = Rng(p.seed)
    customers = _customers(spark, p, rng).persist()
    products = _products(spark, p, rng).persist()
    n_existing = p.count("commerce_customers_existing")
    per_s = p.count("commerce_customers_new_per_day") * p.days / (p.days * DAY_S)
    n_customers_at = F.lit(n_existing) + F.greatest(F.lit(0.0), (F.col("_ts") - p.start_s) * per_s)
    sessions = _sessions(spark, p, rng, n_customers_at).persist()
    lines = _orders_and_lines(p, rng, sessions, products, customers, trends).persist()
    return Drawn(customers, products, sessions, lines)


def generate(spark: SparkSession, p: GeneratorParams, trends: DataFrame) -> dict[str, DataFrame]:
    """Clean records per commerce entity: contract columns (+ drift columns), `_ts` and `_rid`."""
    rng = Rng(p.seed)
    customers, products, sessions, lines = drawn(spark, p, trends)
    orders = _order_timeline(p, rng, lines)
    orders = orders.withColumn("_ref", _platform_ref(orders)).persist()
    customer_records = customers.select(
        *CUSTOMER_FIELDS,
        "marketing_opt_in",
        "created_at",
        F.col("created_at").alias("updated_at"),
        F.greatest(F.col("_created_s"), F.lit(p.start_s)).alias("_ts"),
        F.col("customer_id").alias("_rid"),
    )
    return {
        "customers": customer_records,
        "products": products,
        "web_sessions": sessions,
        "orders_shopify": _shopify(orders),
        "orders_amazon": _amazon(orders),
        "returns": _returns(rng, lines, orders),
        "fulfillment_events": _fulfillment_events(rng, orders),
        "inventory_movements": _inventory(spark, p, rng, products, lines),
    }


DRIFT_COLUMNS = {"web_sessions": ("utm_campaign",)}
