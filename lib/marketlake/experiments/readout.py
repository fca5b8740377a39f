"""An experiment's readout: per experiment, metric and variant, the arm's units and value, and its lift over control.

The input holds one row per assigned unit: the experiment, the unit's arm (`variant`; held-out units are left
out) and one column per metric, 0/1 for a conversion metric and a number for a value metric (revenue per unit).
Spark aggregates the arms (units, conversions or mean and sample variance); the few rows that gives are scored on
the driver with `stats`. Each metric's plan (the lift it must detect, alpha, power) gives the units per arm the
experiment needs, and the readout says whether every arm has reached them, so a readout taken early is marked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy.stats import norm

from marketlake.experiments import stats
from marketlake.experiments.assign import HOLDOUT

READOUT_DDL = (
    "experiment string, metric string, variant string, units long, conversions long, value double, "
    "control_value double, absolute_lift double, absolute_lift_low double, absolute_lift_high double, "
    "relative_lift double, relative_lift_low double, relative_lift_high double, statistic double, p_value double, "
    "test string, planned_units_per_arm long, sample_reached boolean"
)


@dataclass(frozen=True)
class Plan:
    """What a metric's test is planned to detect: an absolute lift `mde` over `baseline` (a rate for a conversion
    metric; for a value metric, `sd` is the per-unit standard deviation and `baseline` is unused)."""

    kind: str  # "conversion" or "value"
    mde: float
    baseline: float = 0.0
    sd: float = 0.0
    alpha: float = 0.05
    power: float = 0.8

    def units_per_arm(self) -> int:
        if self.kind == "conversion":
            return stats.sample_size_per_arm(self.baseline, self.mde, self.alpha, self.power)
        z = float(norm.ppf(1 - self.alpha / 2)) + float(norm.ppf(self.power))
        return math.ceil(2 * (z * self.sd / self.mde) ** 2)


def readout(
    spark: SparkSession,
    outcomes: DataFrame,
    controls: Mapping[str, str],
    plans: Mapping[str, Plan],
    by: Mapping[str, str] | None = None,
) -> DataFrame:
    """The readout rows (READOUT_DDL) of every experiment in outcomes whose control arm `controls` names, for every
    metric in `plans`: the control's own row carries its value with no lift; an experiment whose data lacks its
    control arm is refused. `by` names further columns (name -> Spark SQL type, e.g. the readout's date) that each
    make a readout of their own; they lead each row."""
    by = dict(by or {})
    arms = outcomes.where(F.col("variant") != F.lit(HOLDOUT)).groupBy(*by, "experiment", "variant")
    aggregates = [F.count(F.lit(1)).alias("units")]
    for metric in plans:
        aggregates += [
            F.sum(F.col(metric)).alias(f"{metric}__sum"),
            F.avg(F.col(metric)).alias(f"{metric}__mean"),
            F.var_samp(F.col(metric)).alias(f"{metric}__var"),
        ]
    found: dict[tuple, dict[str, dict]] = {}
    for row in arms.agg(*aggregates).collect():
        key = (*(row[c] for c in by), row["experiment"])
        found.setdefault(key, {})[row["variant"]] = row.asDict()
    out = []
    for key, variants in sorted(found.items()):
        experiment = key[-1]
        control = controls.get(experiment)
        if control not in variants:
            where = ", ".join(f"{c} {v}" for c, v in zip(by, key, strict=False))
            raise ValueError(f"experiment {experiment}: no units in its control arm '{control}' {where}".rstrip())
        c = variants[control]
        for metric, plan in plans.items():
            planned = plan.units_per_arm()
            reached = all(v["units"] >= planned for v in variants.values())
            for name, v in sorted(variants.items(), key=lambda kv: (kv[0] != control, kv[0])):
                scored = _scored(metric, plan, c, v, name == control)
                out.append((*key, metric, name, *scored, planned, reached))
    ddl = ", ".join([*(f"{c} {t}" for c, t in by.items()), READOUT_DDL])
    return spark.createDataFrame(out, ddl)


def _scored(metric: str, plan: Plan, control: dict, arm: dict, is_control: bool) -> tuple:
    conversions = int(arm[f"{metric}__sum"]) if plan.kind == "conversion" else None
    value = float(arm[f"{metric}__mean"])
    if is_control:
        return (arm["units"], conversions, value, value, *([None] * 8), None)
    if plan.kind == "conversion":
        lift = stats.proportions(
            control["units"], int(control[f"{metric}__sum"]), arm["units"], int(arm[f"{metric}__sum"]), plan.alpha
        )
        test = "two_proportion_z"
    else:
        lift = stats.means(
            control["units"],
            float(control[f"{metric}__mean"]),
            float(control[f"{metric}__var"]),
            arm["units"],
            value,
            float(arm[f"{metric}__var"]),
            plan.alpha,
        )
        test = "welch_t"
    return (
        arm["units"],
        conversions,
        value,
        lift.control,
        lift.absolute,
        lift.absolute_low,
        lift.absolute_high,
        lift.relative,
        lift.relative_low,
        lift.relative_high,
        lift.statistic,
        lift.p_value,
        test,
    )
