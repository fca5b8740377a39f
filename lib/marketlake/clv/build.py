"""Customer lifetime value per as-of date and domain: purchase summaries in Spark, fits on the driver (models.py).

A purchase is a day with a purchase: a person's orders of a day (commerce, by customer_key: one key per email across
platforms, as RFM) or a user's trades of a day (exchange), valued at the day's order totals (USD) or trading fees
(USD, the exchange's revenue). As of date D the history is the purchase days before D (back `history_days`):
x = purchase days after the first, t_x = last - first, T = (D - 1) - first, in weeks, and m_x = mean value of the
purchase days after the first. Two fits per domain and date:

- full: on the whole history; its predictions fill gold.customer_lifetime_value (P(alive), expected purchases,
  expected spend and value over `horizon_months`);
- calibration: on the history before D - holdout_days, its predictions for the holdout days [D - holdout_days, D)
  against the purchase days each customer really had there, per frequency group (x = 0, 1, ..., max_group+).

Both fits' parameters go to gold.clv_fits, the holdout comparison to gold.clv_holdout.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from marketlake.clv.models import BgNbd, GammaGamma, fit_bgnbd, fit_gamma_gamma, lifetime_value
from marketlake.gold.common import dates
from marketlake.gold.customers import resolved_customers
from marketlake.gold.exchange import trades_in_usd
from marketlake.gold.spec import GoldSpec

log = logging.getLogger(__name__)

WEEK = 7.0
VALUES = GoldSpec(
    "customer_lifetime_value",
    "as_of_date",
    "as_of_date, domain, customer_key | user_id",
    ("commerce_orders", "commerce_customers", "exchange_trades"),
    "BG/NBD + Gamma-Gamma per customer (commerce, by customer_key) and user (exchange): P(alive), expected "
    "purchases, spend and value over the horizon",
)
FITS = GoldSpec(
    "clv_fits",
    "as_of_date",
    "as_of_date, domain, fit",
    ("customer_lifetime_value",),
    "BG/NBD (r, alpha, a, b) and Gamma-Gamma (p, q, v) parameters per as-of date, domain and fit (full, calibration)",
)
HOLDOUT = GoldSpec(
    "clv_holdout",
    "as_of_date",
    "as_of_date, domain, frequency_group",
    ("clv_fits",),
    "the calibration fit's predicted purchase days in the holdout window against the actual ones, per frequency group",
)
VALUES_DDL = (
    "as_of_date date, domain string, customer_key string, user_id string, frequency int, recency_weeks double, "
    "age_weeks double, avg_value_usd double, p_alive double, expected_purchases double, expected_avg_value_usd "
    "double, expected_value_usd double, horizon_months int"
)
FITS_DDL = (
    "as_of_date date, domain string, fit string, history_from date, history_until date, customers long, "
    "repeat_customers long, r double, alpha double, a double, b double, bgnbd_log_likelihood double, p double, "
    "q double, v double, gamma_gamma_log_likelihood double"
)
HOLDOUT_DDL = (
    "as_of_date date, domain string, frequency_group string, customers long, actual_purchases double, "
    "predicted_purchases double, holdout_from date, holdout_until date"
)
ENTITY = {"commerce": "customer_key", "exchange": "user_id"}


@dataclass(frozen=True)
class ClvConf:
    history_days: int
    holdout_days: int
    horizon_months: int
    monthly_discount: float
    max_group: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ClvConf:
        c = params["clv"]
        return cls(
            int(c["history_days"]),
            int(c["holdout_days"]),
            int(c["horizon_months"]),
            float(c["monthly_discount"]),
            int(c["max_frequency_group"]),
        )


def summaries(purchases: DataFrame, entity: str, first: date, last: date, history_days: int) -> DataFrame:
    """Per as-of date D of first..last and entity with a purchase day in [D - history_days, D): x, t_x and T in weeks,
    and m_x. purchases: (entity, event_date, value), several rows a day allowed."""
    days = purchases.groupBy(entity, "event_date").agg(F.sum("value").alias("value"))
    grid = dates(purchases.sparkSession, first, last, "as_of_date")
    inside = (F.col("event_date") < F.col("as_of_date")) & (
        F.col("event_date") >= F.date_sub("as_of_date", history_days)
    )
    per = days.join(F.broadcast(grid), inside).groupBy("as_of_date", entity)
    first_day, last_day = F.min("event_date"), F.max("event_date")
    first_value = F.min_by("value", "event_date")
    x = F.count(F.lit(1)) - 1
    return per.agg(
        x.alias("x"),
        (F.datediff(last_day, first_day) / WEEK).alias("t_x"),
        (F.datediff(F.date_sub("as_of_date", 1), first_day) / WEEK).alias("big_t"),
        F.when(x > 0, (F.sum("value") - first_value) / x).otherwise(F.lit(0.0)).alias("m_x"),
    )


def _fit(summary: pd.DataFrame) -> tuple[BgNbd, GammaGamma]:
    x, t_x, big_t, m_x = (summary[c].to_numpy(dtype=float) for c in ("x", "t_x", "big_t", "m_x"))
    return fit_bgnbd(x, t_x, big_t), fit_gamma_gamma(x, m_x)


def _fit_row(
    day: date, domain: str, fit: str, since: date, until: date, s: pd.DataFrame, bg: BgNbd, gg: GammaGamma
) -> tuple:
    return (
        day, domain, fit, since, until, len(s), int((s["x"] > 0).sum()),
        bg.r, bg.alpha, bg.a, bg.b, bg.log_likelihood, gg.p, gg.q, gg.v, gg.log_likelihood,
    )  # fmt: skip


def _group(x: np.ndarray, max_group: int) -> list[str]:
    return [f"{max_group}+" if v >= max_group else str(int(v)) for v in x]


def _valued(
    day: date, domain: str, entity: str, s: pd.DataFrame, bg: BgNbd, gg: GammaGamma, conf: ClvConf
) -> list[tuple]:
    """VALUES_DDL rows of one domain and as-of date from its summary and full fit."""
    x, t_x, big_t, m_x = (s[k].to_numpy(dtype=float) for k in ("x", "t_x", "big_t", "m_x"))
    horizon = conf.horizon_months * 365 / 12 / WEEK
    alive, spend = bg.p_alive(x, t_x, big_t), gg.expected_spend(x, m_x)
    expected = bg.expected_purchases(horizon, x, t_x, big_t)
    clv = lifetime_value(bg, gg, x, t_x, big_t, m_x, conf.horizon_months, WEEK, conf.monthly_discount)
    rows = []
    for i, key in enumerate(s[entity]):
        ids = (key, None) if domain == "commerce" else (None, key)
        measures = (t_x[i], big_t[i], m_x[i], alive[i], expected[i], spend[i], clv[i])
        rows.append((day, domain, *ids, int(x[i]), *map(float, measures), conf.horizon_months))
    return rows


def _checked(day: date, domain: str, c: pd.DataFrame, actual: np.ndarray, bg: BgNbd, conf: ClvConf) -> list[tuple]:
    """HOLDOUT_DDL rows: per frequency group of the calibration summary, the customers, their mean actual purchase
    days in the holdout and the calibration fit's mean prediction for them."""
    x, t_x, big_t = (c[k].to_numpy(dtype=float) for k in ("x", "t_x", "big_t"))
    predicted = bg.expected_purchases(conf.holdout_days / WEEK, x, t_x, big_t)
    frame = pd.DataFrame({"group": _group(x, conf.max_group), "actual": actual, "predicted": predicted})
    since = day - timedelta(days=conf.holdout_days)
    return [
        (day, domain, str(group), len(g), float(g["actual"].mean()), float(g["predicted"].mean()), since,
         day - timedelta(days=1))
        for group, g in frame.groupby("group", sort=True)
    ]  # fmt: skip


def build(
    spark: SparkSession, purchases: Mapping[str, DataFrame], conf: ClvConf, first: date, last: date
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(values, fits, holdout) frames for as-of dates first..last, from each domain's purchases (ENTITY[domain],
    event_date, value). A domain and date whose history has no repeat purchase is skipped (logged)."""
    values, fits, holdout = [], [], []
    for domain, df in purchases.items():
        entity = ENTITY[domain]
        df = df.where(F.col(entity).isNotNull() & F.col("value").isNotNull())
        full = summaries(df, entity, first, last, conf.history_days).toPandas()
        shift = timedelta(days=conf.holdout_days)
        calib = summaries(df, entity, first - shift, last - shift, conf.history_days - conf.holdout_days).toPandas()
        in_holdout = (F.col("event_date") < F.col("as_of_date")) & (
            F.col("event_date") >= F.date_sub("as_of_date", conf.holdout_days)
        )
        seen = (
            df.join(F.broadcast(dates(spark, first, last, "as_of_date")), in_holdout)
            .groupBy("as_of_date", entity)
            .agg(F.countDistinct("event_date").alias("actual"))
            .toPandas()
        )
        for day in (first + timedelta(days=i) for i in range((last - first).days + 1)):
            s = full[full["as_of_date"] == day]
            c = calib[calib["as_of_date"] == day - shift]
            if not (s["x"] > 0).any() or not (c["x"] > 0).any():
                log.warning(
                    "clv %s %s: no repeat purchase in the history or its calibration part; skipped", domain, day
                )
                continue
            bg, gg = _fit(s)
            since = day - timedelta(days=conf.history_days)
            fits.append(_fit_row(day, domain, "full", since, day - timedelta(days=1), s, bg, gg))
            values += _valued(day, domain, entity, s, bg, gg, conf)
            cbg, cgg = _fit(c)
            fits.append(_fit_row(day, domain, "calibration", since, day - shift - timedelta(days=1), c, cbg, cgg))
            actual = seen[seen["as_of_date"] == day].set_index(entity)["actual"]
            holdout += _checked(day, domain, c, c[entity].map(actual).fillna(0).to_numpy(dtype=float), cbg, conf)
    return (
        spark.createDataFrame(values, VALUES_DDL),
        spark.createDataFrame(fits, FITS_DDL),
        spark.createDataFrame(holdout, HOLDOUT_DDL),
    )


def purchases(inputs: Mapping[str, DataFrame], params: Mapping[str, Any], domains: list[str]) -> dict[str, DataFrame]:
    """Each domain's purchases (ENTITY[domain], event_date, value) from its silver inputs: commerce orders by person
    (customer_key, as RFM) at their USD totals, exchange trades at their fees in USD as of the trade."""
    found = {}
    if "commerce" in domains:
        orders = resolved_customers(inputs["commerce_orders"], inputs["commerce_customers"])
        found["commerce"] = orders.select(
            "customer_key", "event_date", F.col("order_total_usd").cast("double").alias("value")
        )
    if "exchange" in domains:
        found["exchange"] = trades_in_usd(inputs, params).select(
            "user_id", "event_date", F.coalesce(F.col("fee_usd"), F.lit(0.0)).alias("value")
        )
    return found
