"""Social-video trend telemetry per product.

Each product has 0-3 trends; a trend ramps up to its peak engagement velocity, then decays exponentially with
its half-life (non-linear decay). Telemetry is observed hourly; now and then a bot spike inflates one reading.
The same trend table drives commerce: the velocity live at purchase time raises regret returns.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from marketlake.generator.params import DAY_S, GeneratorParams
from marketlake.generator.rand import Rng

VIEWS_PER_ENGAGEMENT = 25.0
MAX_TREND_HOURS = 240


def creators(spark: SparkSession, p: GeneratorParams, rng: Rng) -> DataFrame:
    """Creators with a hidden 'hype' factor: hyped creators drive bigger peaks and more regretted purchases."""
    c = F.col("cid")
    return (
        spark.range(p.count("trends_creators"))
        .withColumnRenamed("id", "cid")
        .select(
            F.concat(F.lit("CR"), F.lpad(c.cast("string"), 5, "0")).alias("creator_id"),
            rng.lognormal("c:hype", 1.0, 0.5, c).alias("hype"),
            (rng.normal("c:sent", c) * 0.25).alias("sentiment_bias"),
            (0.04 + 0.08 * rng.uniform("c:like", c)).alias("like_ratio"),
        )
    )


def product_trends(spark: SparkSession, p: GeneratorParams, rng: Rng, n_products: int) -> DataFrame:
    """One row per trend: product, creator, start, ramp, peak velocity (engagements/hour), half-life."""
    pid = F.col("pid")
    n_trends = rng.choice("tr:n", [(0, 0.45), (1, 0.30), (2, 0.15), (3, 0.10)], pid)
    products = spark.range(n_products).withColumnRenamed("id", "pid")
    df = products.withColumn("j", F.explode(F.sequence(F.lit(1), n_trends))).where(n_trends > 0)
    key = F.concat_ws("-", pid.cast("string"), F.col("j").cast("string"))
    window_start = p.start_s - 10 * DAY_S
    n_creators = p.count("trends_creators")
    creator_idx = F.floor(rng.uniform("tr:creator", key) ** 1.5 * n_creators).cast("long")
    cr = creators(spark, p, rng)
    df = df.select(
        pid,
        F.concat(F.lit("P"), F.lpad(pid.cast("string"), 6, "0")).alias("product_id"),
        F.concat(F.lit("TR-"), F.lpad(pid.cast("string"), 6, "0"), F.lit("-"), F.col("j").cast("string")).alias(
            "trend_id"
        ),
        F.concat(F.lit("CR"), F.lpad(creator_idx.cast("string"), 5, "0")).alias("creator_id"),
        (F.lit(window_start) + rng.uniform("tr:start", key) * (p.end_s - window_start)).cast("long").alias("start_s"),
        (2 + rng.uniform("tr:ramp", key) * 10).alias("ramp_h"),
        rng.lognormal("tr:peak", 300.0, 0.9, key).alias("_peak"),
        (6 + rng.uniform("tr:hl", key) * 66).alias("half_life_h"),
    )
    return (
        df.join(F.broadcast(cr), "creator_id").withColumn("peak_velocity", F.col("_peak") * F.col("hype")).drop("_peak")
    )


def velocity_at(hours_since_start: Column, ramp_h: Column, peak: Column, half_life_h: Column) -> Column:
    """Engagement velocity of a trend `hours_since_start` after it began (0 before it starts)."""
    decay = peak * F.pow(F.lit(2.0), -(hours_since_start - ramp_h) / half_life_h)
    return (
        F.when(hours_since_start < 0, F.lit(0.0))
        .when(hours_since_start < ramp_h, peak * hours_since_start / ramp_h)
        .otherwise(decay)
    )


def _cumulative_views(h: Column, ramp_h: Column, peak: Column, half_life_h: Column) -> Column:
    ln2 = 0.6931471805599453
    ramp_part = F.least(h, ramp_h)
    ramp_views = peak * ramp_part * ramp_part / (2 * ramp_h)
    decay_views = F.when(
        h > ramp_h, peak * half_life_h / ln2 * (1 - F.pow(F.lit(2.0), -(h - ramp_h) / half_life_h))
    ).otherwise(F.lit(0.0))
    return (ramp_views + decay_views) * VIEWS_PER_ENGAGEMENT


def telemetry(p: GeneratorParams, rng: Rng, trends: DataFrame) -> DataFrame:
    """Hourly observations of every trend while it is live inside the period."""
    df = trends.withColumn("hour", F.explode(F.sequence(F.lit(0), F.lit(MAX_TREND_HOURS))))
    h = F.col("hour").cast("double")
    v = velocity_at(h, F.col("ramp_h"), F.col("peak_velocity"), F.col("half_life_h"))
    ts = F.col("start_s") + F.col("hour") * 3600
    df = (
        df.withColumn("_ts", ts.cast("long"))
        .withColumn("_v", v)
        .where((F.col("_v") >= F.col("peak_velocity") * 0.01) | (F.col("hour") < F.col("ramp_h")))
    )
    k = F.concat(F.col("trend_id"), F.lit("-"), F.col("hour").cast("string"))
    spike = rng.bernoulli("tel:bot", 0.005, k)
    spike_factor = F.when(spike, 20 + 60 * rng.uniform("tel:botf", k)).otherwise(F.lit(1.0))
    views = _cumulative_views(h + 1, F.col("ramp_h"), F.col("peak_velocity"), F.col("half_life_h"))
    noise = 1 + rng.normal("tel:noise", k) * 0.05
    views_obs = F.round(views * noise * spike_factor).cast("long")
    likes = F.round(views * F.col("like_ratio") * noise * F.sqrt(spike_factor)).cast("long")
    sentiment = F.least(
        F.lit(1.0), F.greatest(F.lit(-1.0), F.col("sentiment_bias") + 0.2 * rng.normal("tel:s", k) + 0.2)
    )
    return df.select(
        k.alias("event_id"),
        "trend_id",
        "product_id",
        "creator_id",
        rng.choice("tel:platform", [("shortvideo", 0.6), ("reels", 0.25), ("shorts", 0.15)], F.col("trend_id")).alias(
            "platform"
        ),
        views_obs.alias("views"),
        likes.alias("likes"),
        F.round(likes * 0.04).cast("long").alias("comments"),
        F.round(likes * 0.09).cast("long").alias("shares"),
        F.round(F.col("_v") * noise * F.when(spike, F.lit(10.0)).otherwise(F.lit(1.0)), 3).alias("engagement_velocity"),
        F.round(sentiment, 3).alias("comment_sentiment"),
        F.timestamp_seconds("_ts").alias("observed_at"),
        "_ts",
        k.alias("_rid"),
    )
