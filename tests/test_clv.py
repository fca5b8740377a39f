"""Customer lifetime value against `lifetimes` (an established BG/NBD and Gamma-Gamma implementation): the fits on
the CDNOW sample (a real transaction log's summary that ships with it), and the job's summaries, fits, values and
holdout check on a transaction log simulated from BG/NBD."""

from __future__ import annotations

import warnings
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from marketlake.clv.build import ClvConf, build
from marketlake.clv.models import fit_bgnbd, fit_gamma_gamma, lifetime_value

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value
    from lifetimes.utils import calibration_and_holdout_data, summary_data_from_transaction_data


def _reference(summary: pd.DataFrame) -> tuple[BetaGeoFitter, GammaGammaFitter]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bg = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
        repeat = summary[summary["frequency"] > 0]
        gg = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    return bg, gg


def test_fits_and_predictions_agree_with_lifetimes_on_cdnow() -> None:
    d = load_cdnow_summary_data_with_monetary_value()
    x, t_x, big_t, m_x = d["frequency"], d["recency"], d["T"], d["monetary_value"]
    ref_bg, ref_gg = _reference(d)
    bg, gg = fit_bgnbd(x, t_x, big_t), fit_gamma_gamma(x, m_x)
    ours = {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "p": gg.p, "q": gg.q, "v": gg.v}
    theirs = {**ref_bg.params_.to_dict(), **ref_gg.params_.to_dict()}
    for name, value in ours.items():
        assert value == pytest.approx(theirs[name], rel=0.02), name
    # The published BG/NBD estimates for CDNOW (Fader, Hardie and Lee 2005): r 0.243, alpha 4.414, a 0.793, b 2.426.
    assert (round(bg.r, 3), round(bg.alpha, 3), round(bg.a, 3), round(bg.b, 3)) == (0.243, 4.414, 0.793, 2.426)
    np.testing.assert_allclose(
        bg.p_alive(x, t_x, big_t), ref_bg.conditional_probability_alive(x, t_x, big_t), atol=1e-4
    )
    np.testing.assert_allclose(
        bg.expected_purchases(52, x, t_x, big_t),
        ref_bg.conditional_expected_number_of_purchases_up_to_time(52, x, t_x, big_t),
        rtol=1e-3,
    )
    np.testing.assert_allclose(
        gg.expected_spend(x, m_x)[x > 0], ref_gg.conditional_expected_average_profit(x, m_x)[x > 0], rtol=1e-3
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clv = ref_gg.customer_lifetime_value(ref_bg, x, t_x, big_t, m_x, time=12, discount_rate=0.01, freq="W")
    np.testing.assert_allclose(lifetime_value(bg, gg, x, t_x, big_t, m_x, 12, 7, 0.01), clv, rtol=0.005)


AS_OF = date(2026, 9, 1)
CONF = ClvConf(history_days=240, holdout_days=56, horizon_months=12, monthly_discount=0.01, max_group=4)


def simulated_log(customers: int = 600, seed: int = 3) -> pd.DataFrame:
    """Purchases from a BG/NBD process: each customer arrives during the first 120 days of the history, buys at a
    daily rate ~ Gamma(0.8, scale 1/4) and drops out after each purchase with probability ~ Beta(1, 4); spends
    Gamma-distributed amounts around a mean of their own. One purchase in ten comes with a second on the same day
    (the day is one purchase, of their summed value)."""
    rng = np.random.default_rng(seed)
    first_day = AS_OF - timedelta(days=CONF.history_days)
    rows = []
    for c in range(customers):
        rate = rng.gamma(0.8, 1 / 4.0)  # purchases per day
        drop = rng.beta(1.0, 4.0)
        mean_spend = rng.gamma(6.0, 8.0)
        day = float(rng.uniform(0, 120))
        while day < CONF.history_days:
            when = first_day + timedelta(days=int(day))
            for _ in range(1 + int(rng.random() < 0.1)):
                rows.append((f"K{c:05d}", when, round(float(rng.gamma(4.0, mean_spend / 4.0)), 2)))
            if rng.random() < drop:
                break
            day += rng.exponential(1 / rate)
    return pd.DataFrame(rows, columns=["customer_key", "event_date", "value"])


def test_the_jobs_summaries_fits_values_and_holdout_agree_with_lifetimes(spark: SparkSession) -> None:
    log = simulated_log()
    df = spark.createDataFrame(log, "customer_key string, event_date date, value double")
    values, fits, holdout = (f.toPandas() for f in build(spark, {"commerce": df}, CONF, AS_OF, AS_OF))

    end = pd.Timestamp(AS_OF - timedelta(days=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = summary_data_from_transaction_data(
            log.assign(event_date=pd.to_datetime(log["event_date"])), "customer_key", "event_date", "value",
            observation_period_end=end, freq="D",
        )  # fmt: skip
    summary = summary.assign(recency=summary["recency"] / 7, T=summary["T"] / 7)
    mine = values.set_index("customer_key").loc[summary.index]
    assert len(values) == len(summary) == log["customer_key"].nunique()
    np.testing.assert_array_equal(mine["frequency"], summary["frequency"])
    np.testing.assert_allclose(mine["recency_weeks"], summary["recency"])
    np.testing.assert_allclose(mine["age_weeks"], summary["T"])
    np.testing.assert_allclose(mine["avg_value_usd"], summary["monetary_value"], rtol=1e-9)

    ref_bg, ref_gg = _reference(summary)
    full = fits[fits["fit"] == "full"].iloc[0]
    for name in ("r", "alpha", "a", "b"):
        assert full[name] == pytest.approx(ref_bg.params_[name], rel=0.02), name
    for name in ("p", "q", "v"):
        assert full[name] == pytest.approx(ref_gg.params_[name], rel=0.02), name
    x, t_x, big_t, m_x = (summary[c] for c in ("frequency", "recency", "T", "monetary_value"))
    np.testing.assert_allclose(mine["p_alive"], ref_bg.conditional_probability_alive(x, t_x, big_t), atol=1e-3)
    horizon = 365 / 7
    expected = ref_bg.conditional_expected_number_of_purchases_up_to_time(horizon, x, t_x, big_t)
    np.testing.assert_allclose(mine["expected_purchases"], expected, rtol=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clv = ref_gg.customer_lifetime_value(ref_bg, x, t_x, big_t, m_x, time=12, discount_rate=0.01, freq="W")
    np.testing.assert_allclose(mine["expected_value_usd"], clv, rtol=0.02)

    calibration_end = pd.Timestamp(AS_OF - timedelta(days=CONF.holdout_days + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = calibration_and_holdout_data(
            log.assign(event_date=pd.to_datetime(log["event_date"])), "customer_key", "event_date",
            calibration_period_end=calibration_end, observation_period_end=end, freq="D",
        )  # fmt: skip
        cal_bg = BetaGeoFitter().fit(cal["frequency_cal"], cal["recency_cal"] / 7, cal["T_cal"] / 7)
    cal["predicted"] = cal_bg.conditional_expected_number_of_purchases_up_to_time(
        CONF.holdout_days / 7, cal["frequency_cal"], cal["recency_cal"] / 7, cal["T_cal"] / 7
    )
    cal["group"] = [f"{CONF.max_group}+" if f >= CONF.max_group else str(int(f)) for f in cal["frequency_cal"]]
    want = cal.groupby("group").agg(
        customers=("predicted", "size"), actual=("frequency_holdout", "mean"), predicted=("predicted", "mean")
    )
    got = holdout.set_index("frequency_group").loc[want.index]
    np.testing.assert_array_equal(got["customers"], want["customers"])
    np.testing.assert_allclose(got["actual_purchases"], want["actual"])
    np.testing.assert_allclose(got["predicted_purchases"], want["predicted"], rtol=0.02)
    # On data drawn from the model, the calibration fit predicts the holdout's purchases in total within 15 %.
    assert (got["predicted_purchases"] * got["customers"]).sum() == pytest.approx(
        (got["actual_purchases"] * got["customers"]).sum(), rel=0.15
    )
