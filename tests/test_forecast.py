"""Forecasts: the forecaster and seasonal-naive by hand, backtest errors against a plain numpy computation, the
executors' per-key forecasts equal to the pandas function's, the interval's coverage, and the forecast beating
seasonal-naive on the generator's demand."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from marketlake.config import load_settings
from marketlake.forecast import (
    ForecastConf,
    backtest,
    errors,
    forecast_series,
    forecasts,
    moving_average,
    scores,
    seasonal_naive,
)
from marketlake.generator import commerce
from marketlake.generator import trends as trend_gen
from marketlake.generator.params import GeneratorParams
from marketlake.generator.rand import Rng

CONF = ForecastConf(window=7, origins=2, origin_step=7, coverage=0.8, history_days=28, horizons={"demand": 5})


def test_the_forecaster_and_seasonal_naive_by_hand() -> None:
    y = np.arange(1.0, 15.0)  # days 0..13 hold 1..14
    np.testing.assert_array_equal(moving_average(y, 3, 7), [11.0, 11.0, 11.0])  # mean of 8..14
    np.testing.assert_array_equal(moving_average(y[:3], 2, 7), [2.0, 2.0])  # fewer days than the window: all
    np.testing.assert_array_equal(seasonal_naive(y, 9), [8, 9, 10, 11, 12, 13, 14, 8, 9])
    np.testing.assert_array_equal(seasonal_naive(y[:4], 2), [4, 4])


def test_backtest_points_and_errors_by_hand() -> None:
    y = np.array([2, 0, 4, 1, 3, 0, 5, 2, 2, 6, 0, 1, 3, 4, 1, 2], dtype=float)
    points = backtest(y, 5, CONF)
    # Origin 16 - 7 = 9: the forecast is the mean of y[2:9] = 17/7, naive y[2..6]; origin 2 has under a week.
    assert [(o, t) for o, t, *_ in points] == [(9, 9 + h) for h in range(5)]
    np.testing.assert_allclose([p[2] for p in points], [17 / 7] * 5)
    np.testing.assert_array_equal([p[3] for p in points], y[2:7])
    np.testing.assert_array_equal([p[4] for p in points], y[9:14])
    f, a = np.array([2.0, 1.0, 0.0, 4.0]), np.array([4.0, 0.0, 0.0, 2.0])
    mape, smape, bias = errors(f, a)
    assert mape == pytest.approx((2 / 4 + 2 / 2) / 2)  # over the nonzero actuals
    assert smape == pytest.approx((2 * 2 / 6 + 2 * 1 / 1 + 0 + 2 * 2 / 6) / 4)  # 0 where both are 0
    assert bias == pytest.approx(1 / 6)


def test_the_interval_covers_about_80_percent_of_later_days() -> None:
    rng = np.random.default_rng(8)
    conf = dataclasses.replace(CONF, window=28, origins=6)
    inside = []
    for _ in range(300):
        y = rng.poisson(3.0, 120).astype(float)
        rows, _ = forecast_series(y[:100], date(2026, 1, 1), date(2026, 4, 11), 14, conf)
        inside += [low <= actual <= high for (_, _, _, low, high, _), actual in zip(rows, y[100:114], strict=True)]
    assert np.mean(inside) == pytest.approx(0.8, abs=0.08)


def test_forecasts_on_the_executors_are_the_pandas_functions_and_scores_pool_keys(spark: SparkSession) -> None:
    as_of = date(2026, 3, 29)
    first = as_of - timedelta(days=CONF.history_days)
    rng = np.random.default_rng(2)
    rows = [
        (key, first + timedelta(days=d), float(rng.poisson(lam)))
        for key, lam in (("P1", 2.0), ("P2", 6.0), ("P3", 0.5))
        for d in range(CONF.history_days)
        if not (key == "P3" and d % 3 == 0)  # P3 has days without a row: they count 0
    ]
    rows.append(("P1", as_of, 99.0))  # on the forecast date: not history
    daily = spark.createDataFrame(rows, "key string, date date, units double")
    made, points = forecasts(daily, "demand_units", "key", "units", as_of, 5, CONF)
    made_pd, points_pd = made.toPandas(), points.toPandas()
    for key in ("P1", "P2", "P3"):
        y = np.zeros(CONF.history_days)
        for k, day, v in rows:
            if k == key and day < as_of:
                y[(day - first).days] = v
        want_rows, want_points = forecast_series(y, first, as_of, 5, CONF)
        got = made_pd[made_pd["key"] == key].sort_values("horizon")
        np.testing.assert_allclose(got[["forecast", "lower_80", "upper_80", "naive"]], [r[2:] for r in want_rows])
        assert list(got["target_date"]) == [r[0] for r in want_rows]
        got_points = points_pd[points_pd["key"] == key].sort_values(["origin", "target_date"])
        np.testing.assert_allclose(got_points[["forecast", "naive", "actual"]], [p[2:] for p in sorted(want_points)])
    table = pd.DataFrame(scores(points_pd.assign(forecast_date=as_of)), columns=[
        "forecast_date", "series", "key", "points", "mape", "smape", "bias", "naive_mape", "naive_smape",
        "naive_bias", "beats_naive",
    ]).set_index("key")  # fmt: skip
    assert list(table.index) == ["P1", "P2", "P3", "ALL"]
    f, n, a = (points_pd[c].to_numpy() for c in ("forecast", "naive", "actual"))
    assert table.loc["ALL", "points"] == len(points_pd) == 3 * 2 * 5
    assert table.loc["ALL", "smape"] == pytest.approx(np.mean(np.where(f + a > 0, 2 * abs(f - a) / (f + a), 0)))
    assert table.loc["ALL", "naive_bias"] == pytest.approx((n - a).sum() / a.sum())
    assert table.loc["ALL", "beats_naive"] == (table.loc["ALL", "smape"] < table.loc["ALL", "naive_smape"])


def test_the_forecast_beats_seasonal_naive_on_the_generators_demand(spark: SparkSession) -> None:
    settings = load_settings("local")
    p = GeneratorParams.from_config(settings.generator, scale=0.5, days=42, seed=6, start=date(2026, 3, 1))
    trends = trend_gen.product_trends(spark, p, Rng(p.seed), p.count("commerce_products"))
    lines = commerce.drawn(spark, p, trends).lines
    daily = lines.groupBy(F.col("product_id").alias("key"), F.to_date(F.timestamp_seconds("_created_s")).alias("date"))
    daily = daily.agg(F.sum("quantity").alias("units"))
    conf = dataclasses.replace(CONF, window=28, origins=3, history_days=42)
    _, points = forecasts(daily, "demand_units", "key", "units", p.start + timedelta(days=42), 14, conf)
    (overall,) = [r for r in scores(points.toPandas().assign(forecast_date=p.end)) if r[2] == "ALL"]
    _, _, _, n, mape, smape, bias, naive_mape, naive_smape, _, beats = overall
    assert n > 5_000 and beats and smape < naive_smape and mape < naive_mape
    assert abs(bias) < 0.15
