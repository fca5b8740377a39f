"""Experiment assignment and readout statistics against independent computations: scipy.stats' chi-square and Welch
tests, statsmodels' Wald interval, hashlib for the buckets, Monte Carlo for power and for A/A splits."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep

from marketlake.experiments.assign import HOLDOUT, Design, assign, assign_column
from marketlake.experiments.readout import Plan, readout
from marketlake.experiments.stats import means, proportions, sample_size_per_arm

# (control units, conversions, variant units, conversions): a lift, a drop, equal rates, tiny arms, a rare event.
COUNTS = [(5000, 400, 5000, 460), (1200, 300, 1300, 290), (800, 80, 900, 90), (12, 3, 15, 9), (20000, 7, 20000, 19)]


@pytest.mark.parametrize(("n_c", "x_c", "n_v", "x_v"), COUNTS)
def test_two_proportions_match_scipy_chi_square_and_statsmodels_wald_interval(
    n_c: int, x_c: int, n_v: int, x_v: int
) -> None:
    lift = proportions(n_c, x_c, n_v, x_v)
    table = np.array([[x_v, n_v - x_v], [x_c, n_c - x_c]])
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert lift.statistic**2 == pytest.approx(chi2, rel=1e-9)
    assert lift.p_value == pytest.approx(p, rel=1e-9)
    low, high = confint_proportions_2indep(x_v, n_v, x_c, n_c, method="wald", compare="diff", alpha=0.05)
    assert (lift.absolute_low, lift.absolute_high) == pytest.approx((low, high), rel=1e-9)
    assert lift.absolute == pytest.approx(x_v / n_v - x_c / n_c)
    assert lift.relative == pytest.approx((x_v / n_v) / (x_c / n_c) - 1)
    assert lift.relative_low is not None and lift.relative_high is not None
    assert lift.relative_low < lift.relative < lift.relative_high


def test_degenerate_arms_give_no_evidence_and_no_relative_lift() -> None:
    none = proportions(100, 0, 120, 0)
    assert (none.statistic, none.p_value, none.relative) == (0.0, 1.0, None)
    every = proportions(50, 50, 60, 60)
    assert (every.statistic, every.p_value, every.absolute) == (0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="conversions out of"):
        proportions(10, 11, 10, 1)
    with pytest.raises(ValueError, match="at least one unit"):
        proportions(0, 0, 10, 1)


def test_welch_matches_scipy_on_raw_revenue_samples() -> None:
    rng = np.random.default_rng(3)
    control = rng.gamma(2.0, 20.0, 700) * (rng.random(700) < 0.3)  # revenue per unit: mostly zero, skewed
    variant = rng.gamma(2.0, 23.0, 650) * (rng.random(650) < 0.32)
    lift = means(len(control), control.mean(), control.var(ddof=1), len(variant), variant.mean(), variant.var(ddof=1))
    welch = stats.ttest_ind(variant, control, equal_var=False)
    assert lift.statistic == pytest.approx(welch.statistic, rel=1e-9)
    assert lift.p_value == pytest.approx(welch.pvalue, rel=1e-9)
    interval = welch.confidence_interval(0.95)
    assert (lift.absolute_low, lift.absolute_high) == pytest.approx((interval.low, interval.high), rel=1e-9)
    assert lift.relative == pytest.approx(variant.mean() / control.mean() - 1)


@pytest.mark.parametrize(("baseline", "mde"), [(0.10, 0.02), (0.05, 0.01), (0.30, -0.05)])
def test_the_planned_sample_size_reaches_the_power_in_simulation(baseline: float, mde: float) -> None:
    """At the planned units per arm, 4,000 simulated experiments with the true lift reject at alpha 0.05 in 80 %
    of cases (+- 2.5 points; the simulation's own error is 0.6 points), and at half the units clearly less often."""
    n = sample_size_per_arm(baseline, mde)
    rng = np.random.default_rng(11)

    def rejected(units: int) -> float:
        c = rng.binomial(units, baseline, 4000)
        v = rng.binomial(units, baseline + mde, 4000)
        pooled = (c + v) / (2 * units)
        z = (v - c) / units / np.sqrt(pooled * (1 - pooled) * 2 / units)
        return float(np.mean(2 * stats.norm.sf(np.abs(z)) < 0.05))

    assert rejected(n) == pytest.approx(0.80, abs=0.025)
    assert rejected(n // 2) < 0.6


def test_assignment_is_the_hash_of_experiment_and_unit_and_spark_agrees(spark: SparkSession) -> None:
    design = Design("regret_intervention", (("control", 1.0), ("treatment", 1.0)), holdout=0.1)
    units = [f"C{i:08d}" for i in range(20000)]

    def oracle(unit: str) -> str:
        u = int(hashlib.sha256(f"regret_intervention/{unit}".encode()).hexdigest()[:13], 16) / 16**13
        return HOLDOUT if u < 0.1 else "control" if u < 0.55 else "treatment"

    python = {u: assign(design, u) for u in units}
    assert python == {u: oracle(u) for u in units}
    shares = {arm: sum(a == arm for a in python.values()) / len(units) for arm in (HOLDOUT, "control", "treatment")}
    assert shares == pytest.approx({HOLDOUT: 0.1, "control": 0.45, "treatment": 0.45}, abs=0.01)
    frame = spark.createDataFrame([(u,) for u in units], "unit string")
    spark_arms = dict(frame.select("unit", assign_column(design, F.col("unit")).alias("arm")).collect())
    assert spark_arms == python
    # Another experiment splits the same units independently of this one.
    other = Design("free_shipping", (("control", 1.0), ("treatment", 1.0)))
    both = [(python[u], assign(other, u)) for u in units if python[u] != HOLDOUT]
    treated_share = sum(b == "treatment" for a, b in both if a == "treatment") / sum(a == "treatment" for a, _ in both)
    assert treated_share == pytest.approx(0.5, abs=0.02)


def test_over_500_a_a_splits_the_false_positive_rate_is_five_percent() -> None:
    """One population of 2,000 units whose conversions do not depend on the arm, split 500 times (each split an
    experiment of its own name): at alpha 0.05 the test rejects in 5 % +- 3 points of splits (the simulation's own
    error is 1 point), and the p-values are uniform (Kolmogorov-Smirnov against U(0, 1))."""
    rng = np.random.default_rng(5)
    units = [f"U{i:06d}" for i in range(2000)]
    converted = rng.random(len(units)) < 0.12
    p_values = []
    for split in range(500):
        design = Design(f"aa-{split}", (("control", 1.0), ("treatment", 1.0)))
        treated = np.array([assign(design, u) == "treatment" for u in units])
        n_v, n_c = int(treated.sum()), int((~treated).sum())
        lift = proportions(n_c, int(converted[~treated].sum()), n_v, int(converted[treated].sum()))
        p_values.append(lift.p_value)
    rate = float(np.mean(np.array(p_values) < 0.05))
    assert rate == pytest.approx(0.05, abs=0.03)
    assert stats.kstest(p_values, "uniform").pvalue > 0.01


def test_designs_refuse_what_cannot_be_assigned() -> None:
    with pytest.raises(ValueError, match="two or more distinct variants"):
        Design("x", (("control", 1.0),))
    with pytest.raises(ValueError, match="holdout must be"):
        Design("x", (("a", 1.0), ("b", 1.0)), holdout=1.0)
    with pytest.raises(ValueError, match="weights must be positive"):
        Design("x", (("a", 1.0), ("b", 0.0)))


def test_the_readout_scores_each_arm_against_control_as_scipy_does(spark: SparkSession) -> None:
    """Two experiments by hand: e1 with a holdout (left out) and a treatment converting 130 of 1,000 against
    control's 100 of 1,000, revenue only from converters; e2 with two variants, one of them short of the plan."""
    rng = np.random.default_rng(2)
    rows, revenue = [], {}
    for experiment, arm, units, converted in [
        ("e1", "control", 1000, 100),
        ("e1", "treatment", 1000, 130),
        ("e1", HOLDOUT, 300, 90),
        ("e2", "a", 900, 90),
        ("e2", "b", 900, 99),
        ("e2", "c", 400, 52),
    ]:
        spend = np.where(np.arange(units) < converted, rng.gamma(2.0, 30.0, units), 0.0)
        revenue[(experiment, arm)] = spend
        rows += [(experiment, arm, f"{arm}-{i}", int(i < converted), float(s)) for i, s in enumerate(spend)]
    outcomes = spark.createDataFrame(
        rows, "experiment string, variant string, unit string, converted int, revenue double"
    )
    plans = {"converted": Plan("conversion", 0.03, baseline=0.10), "revenue": Plan("value", 2.0, sd=25.0)}
    got = {
        (r["experiment"], r["metric"], r["variant"]): r
        for r in readout(spark, outcomes, {"e1": "control", "e2": "a"}, plans).collect()
    }
    assert set(got) == {
        (e, m, v) for e, vs in (("e1", "control treatment"), ("e2", "a b c")) for v in vs.split() for m in plans
    }
    treated = got[("e1", "converted", "treatment")]
    chi2, p, _, _ = stats.chi2_contingency(np.array([[130, 870], [100, 900]]), correction=False)
    assert (treated["units"], treated["conversions"], treated["value"], treated["control_value"]) == (
        1000,
        130,
        0.13,
        0.10,
    )
    assert (treated["statistic"] ** 2, treated["p_value"]) == pytest.approx((chi2, p), rel=1e-9)
    assert treated["test"] == "two_proportion_z" and treated["relative_lift"] == pytest.approx(0.3)
    # Planned: (1.96 sqrt(2 * 0.115 * 0.885) + 0.8416 sqrt(0.1 * 0.9 + 0.13 * 0.87))^2 / 0.03^2 = 1,774 per arm.
    assert (treated["planned_units_per_arm"], treated["sample_reached"]) == (1774, False)
    control = got[("e1", "converted", "control")]
    assert (control["value"], control["absolute_lift"], control["p_value"]) == (0.10, None, None)
    for arm in ("b", "c"):
        row = got[("e2", "revenue", arm)]
        welch = stats.ttest_ind(revenue[("e2", arm)], revenue[("e2", "a")], equal_var=False)
        assert (row["statistic"], row["p_value"]) == pytest.approx((welch.statistic, welch.pvalue), rel=1e-9)
        assert row["test"] == "welch_t" and row["conversions"] is None
    # Revenue's plan: 2 * ((1.96 + 0.8416) * 25 / 2)^2 = 2,453 per arm, more than any arm has.
    assert {got[("e2", "revenue", v)]["planned_units_per_arm"] for v in "abc"} == {2453}
    with pytest.raises(ValueError, match="no units in its control arm 'nope'"):
        readout(spark, outcomes, {"e1": "nope", "e2": "a"}, plans)
