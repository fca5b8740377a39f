"""An experiment's arms in a model's decisions: who is exposed, who gets the intervention, what the policy picked."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from marketlake.experiments.assign import assign_column
from marketlake.experiments.spec import DECIDED, ExperimentSpec
from marketlake.models.scoring import CONSENT
from marketlake.models.spec import ModelSpec

ARMED = ("experiment", "variant", "policy_intervention")


def with_arms(decided: DataFrame, spec: ModelSpec, experiment: ExperimentSpec | None) -> DataFrame:
    """Decisions with their experiment arm. `experiment` and `variant` are set on the rows that expose their unit
    (null elsewhere, and everywhere without an experiment): the rows whose policy picked an intervention, and with
    `daily_top` also each day's K highest scores among customers with marketing consent (CONSENT, a column of
    decided that the result drops; without it nobody has consent). An exposed row of a treated arm gets the
    policy's intervention, channel and escalation, or the experiment's fallback where the policy picked none;
    control and the holdout get the policy default. `policy_intervention` keeps what the policy picked."""
    default = spec.policy_default
    picked = F.col("intervention") != F.lit(default["intervention"])
    if experiment is None:
        return decided.select(
            "*",
            F.lit(None).cast("string").alias("experiment"),
            F.lit(None).cast("string").alias("variant"),
            F.col("intervention").alias(ARMED[2]),
        )
    if experiment.daily_top is None:
        exposed = picked
    else:
        consented = F.coalesce(F.col(CONSENT), F.lit(False)) if CONSENT in decided.columns else F.lit(False)
        order = [F.desc("score"), *[F.col(k) for k in spec.keys]]
        rank = F.row_number().over(Window.partitionBy(spec.date, consented).orderBy(*order))
        exposed = picked | (consented & (rank <= experiment.daily_top))
    arm = F.when(exposed, assign_column(experiment.design, F.col(experiment.unit)))
    treated = F.coalesce(arm.isin(*experiment.treated), F.lit(False))
    fallback = experiment.fallback or {}

    def given(c: str) -> Column:
        own = F.col(c) if experiment.daily_top is None else F.when(picked, F.col(c)).otherwise(F.lit(fallback[c]))
        return F.when(exposed & ~treated, F.lit(default[c])).when(exposed, own).otherwise(F.col(c)).alias(c)

    kept = [given(c) if c in DECIDED else F.col(c) for c in decided.columns if c != CONSENT]
    name = F.when(exposed, F.lit(experiment.name))
    return decided.select(*kept, name.alias("experiment"), arm.alias("variant"), F.col("intervention").alias(ARMED[2]))
