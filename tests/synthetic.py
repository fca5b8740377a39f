"""Gold-shaped frames with a known causal structure, for model tests and benchmarks.

purchase_outcomes: the return-regret mechanism of the data generator (lib/marketlake/generator/commerce.py):
P(regret) = 0.06 + 0.9 * (min(1, velocity / VELOCITY_REF) * discount) ** 1.5 + 0.03 * max(0, hype - 1). Trend
pressure saturates at VELOCITY_REF engagements/hour, so the effect is an interaction with a cap, which a linear
model on the same features cannot represent; the gold features observe velocity and hype with noise."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from marketlake.generator.commerce import VELOCITY_REF
from marketlake.models.bundle import Calibration, ModelBundle
from marketlake.models.features import category_levels
from marketlake.models.spec import ModelsConf, ModelSpec
from marketlake.models.train import split_frame, xgboost_params
from tests.frames import to_spark

OUTCOMES_SCHEMA = (
    "purchase_date date, purchased_at timestamp, order_id string, line_no int, customer_id string, "
    "product_id string, quantity int, line_total_usd double, trend_velocity double, velocity_24h double, "
    "half_life_hours double, hours_since_peak double, hours_since_reading double, decay_ratio double, "
    "sentiment_z double, bot_spike boolean, creator_prior_purchases bigint, creator_regret_rate double, "
    "customer_prior_orders_90d bigint, customer_prior_return_rate_90d double, "
    "customer_days_since_prior_order double, customer_prior_aov_usd double, discount_pct double, "
    "hour_of_day int, device string, channel string, velocity_x_discount double, excluded_reason string, "
    "returned_within_30d boolean, label_complete boolean"
)


def purchase_outcomes(rows: int, days: int, seed: int = 7, start: date = date(2026, 3, 1)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    day = rng.integers(0, days, rows)
    seconds = rng.integers(0, 86_400, rows)
    has_trend = rng.random(rows) < 0.85
    velocity = np.where(has_trend, VELOCITY_REF * rng.lognormal(0.0, 1.0, rows), np.nan)
    hype = rng.lognormal(0.0, 0.5, rows)
    discounted = rng.random(rows) < 0.45
    discount = np.where(discounted, 0.05 + 0.75 * rng.random(rows), 0.0)
    x = np.minimum(1.0, np.nan_to_num(velocity) / VELOCITY_REF) * discount
    p = 0.06 + 0.9 * x**1.5 + 0.03 * np.maximum(0.0, hype - 1.0)
    regret = rng.random(rows) < p
    excluded = np.where(rng.random(rows) < 0.02, "defect", None)
    observed = velocity * rng.lognormal(0.0, 0.1, rows)
    list_price = rng.uniform(10, 120, rows).round(2)
    quantity = 1 + (rng.random(rows) < 0.2).astype(int)
    frame = pd.DataFrame(
        {
            "purchase_date": [start + timedelta(days=int(d)) for d in day],
            "purchased_at": [
                datetime.combine(start, datetime.min.time()) + timedelta(days=int(d), seconds=int(s))
                for d, s in zip(day, seconds, strict=True)
            ],
            "order_id": [f"O{i:07d}" for i in range(rows)],
            "line_no": 1,
            "customer_id": [f"C{c:05d}" for c in rng.integers(0, rows // 3 + 1, rows)],
            "product_id": [f"P{c:04d}" for c in rng.integers(0, 400, rows)],
            "quantity": quantity,
            "line_total_usd": (list_price * (1 - discount) * quantity).round(2),
            "trend_velocity": observed,
            "velocity_24h": velocity * rng.lognormal(0.0, 0.15, rows),
            "half_life_hours": np.where(has_trend, rng.uniform(6, 72, rows), np.nan),
            "hours_since_peak": np.where(has_trend, rng.uniform(0, 96, rows), np.nan),
            "hours_since_reading": np.where(has_trend, rng.uniform(0, 1, rows), np.nan),
            "decay_ratio": np.where(has_trend, rng.uniform(0.2, 1.0, rows), np.nan),
            "sentiment_z": np.where(has_trend, np.log(hype) * 2 + rng.normal(0, 1, rows), np.nan),
            "bot_spike": rng.random(rows) < 0.01,
            "creator_prior_purchases": rng.poisson(30, rows),
            "creator_regret_rate": rng.beta(2, 15, rows),
            "customer_prior_orders_90d": rng.poisson(0.8, rows),
            "customer_prior_return_rate_90d": rng.beta(1, 8, rows),
            "customer_days_since_prior_order": rng.exponential(20, rows),
            "customer_prior_aov_usd": rng.uniform(20, 200, rows),
            "discount_pct": discount,
            "hour_of_day": (seconds // 3600).astype(int),
            "device": rng.choice(["mobile", "desktop", "tablet"], rows, p=[0.6, 0.3, 0.1]),
            "channel": rng.choice(["organic", "social", "paid_search", "email"], rows),
            "velocity_x_discount": np.nan_to_num(velocity * rng.lognormal(0.0, 0.15, rows)) * discount,
            "excluded_reason": excluded,
            "returned_within_30d": np.where(excluded == None, regret, None),  # noqa: E711
            "label_complete": True,
        }
    )
    return frame


@dataclass(frozen=True)
class FitInputs:
    """One time split prepared for comparing xgboost fits: the split frame (for xgboost.spark), the training
    levels and parameters, and the same rows as numpy matrices and labels per split (for single-node xgboost)."""

    spec: ModelSpec
    data: DataFrame
    levels: dict[str, list[str]]
    params: dict[str, Any]
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]

    def bundle(self, booster: bytes) -> ModelBundle:
        """An uncalibrated bundle around a booster, to predict on the matrices."""
        s = self.spec
        return ModelBundle(s.name, s.numeric, s.categorical, self.levels, Calibration((), ()), {}, booster)


def fit_inputs(df: DataFrame, spec: ModelSpec, conf: ModelsConf) -> FitInputs:
    data, _ = split_frame(df, spec)
    data = data.localCheckpoint()
    train = data.where("split = 'train'")
    levels = category_levels(train, spec)
    n, p = train.agg(F.count("*"), F.sum("label")).first()
    pdf = {s: data.where(F.col("split") == s).toPandas() for s in ("train", "validation", "test")}
    inputs = FitInputs(spec, data, levels, xgboost_params(conf, (n - p) / p), {}, {})
    encode = inputs.bundle(b"")
    inputs.x.update({s: encode.matrix(pdf[s]) for s in pdf})
    inputs.y.update({s: pdf[s]["label"].to_numpy() for s in pdf})
    return inputs


def purchase_outcomes_frame(spark: SparkSession, rows: int, days: int, seed: int = 7) -> DataFrame:
    return to_spark(spark, purchase_outcomes(rows, days, seed), OUTCOMES_SCHEMA)


WEEKLY = (1.0, 0.95, 0.9, 0.95, 1.05, 1.2, 1.15)
KPIS_SCHEMA = "date date, channel string, revenue_usd double, orders bigint, aov_usd double, sessions bigint"
PAIRS_SCHEMA = "date date, pair string, volume_usd double, trade_count bigint, distinct_traders bigint"


def daily_kpis(
    days: int, seed: int = 11, start: date = date(2026, 1, 1), shocks: dict[int, float] | None = None
) -> pd.DataFrame:
    """commerce_daily_kpis-shaped rows for four channels with a weekly season, noise and demand shocks (day offset
    -> demand multiplier; by default the generator's flash sale on day 12 (x2.5) and outage on day 20 (x0.25))."""
    shocks = {12: 2.5, 20: 0.25} if shocks is None else shocks
    rng = np.random.default_rng(seed)
    rows = []
    for channel, sessions_base in (("organic", 2400), ("social", 1800), ("paid_search", 1200), ("email", 600)):
        for d in range(days):
            demand = WEEKLY[(start + timedelta(days=d)).weekday()] * shocks.get(d, 1.0)
            sessions = int(sessions_base * demand * rng.lognormal(0, 0.04))
            orders = int(rng.poisson(sessions * 0.03))
            aov = 62.0 * rng.lognormal(0, 0.03) * (0.85 if shocks.get(d, 1.0) > 1 else 1.0)
            rows.append((start + timedelta(days=d), channel, round(orders * aov, 2), orders, round(aov, 2), sessions))
    return pd.DataFrame(rows, columns=["date", "channel", "revenue_usd", "orders", "aov_usd", "sessions"])


def pair_daily(days: int, seed: int = 12, start: date = date(2026, 1, 1)) -> pd.DataFrame:
    """exchange_pair_daily-shaped rows for two pairs without shocks (a control: few confirmed anomalies)."""
    rng = np.random.default_rng(seed)
    rows = []
    for pair, base in (("BTC/USDT", 2_000_000.0), ("ETH/USDT", 800_000.0)):
        for d in range(days):
            trades = int(rng.poisson(900 * WEEKLY[(start + timedelta(days=d)).weekday()]))
            rows.append(
                (start + timedelta(days=d), pair, trades * base / 900 * rng.lognormal(0, 0.05), trades, trades // 3)
            )
    return pd.DataFrame(rows, columns=["date", "pair", "volume_usd", "trade_count", "distinct_traders"])
