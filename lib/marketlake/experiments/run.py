"""Experiments on the models' interventions: arms in the decisions, the assignments table and the daily readout.

- Scoring (arms.py) marks the decision rows that expose their unit with the unit's arm (a hash of experiment and
  unit); only treated arms get an intervention.
- `gold.experiment_assignments`: per exposure day, experiment and unit, the unit's arm, bucket and exposed rows.
  The unit keeps its column's name (customer_id), so an erasure finds the person's rows here too; every
  experiment in the table has the same unit column.
- `gold.experiment_readouts`: per readout day D, the readout (readout.py) over the units first exposed on or
  before D - maturity_days, each unit's outcome aggregated over its exposed rows up to then (whose outcomes are
  final by D), joined to the model's gold table by the model's keys.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from marketlake.config import Settings
from marketlake.errors import InputError
from marketlake.experiments.arms import ARMED
from marketlake.experiments.assign import bucket_column
from marketlake.experiments.readout import readout
from marketlake.experiments.spec import ExperimentSpec
from marketlake.gold.common import between
from marketlake.gold.spec import GoldSpec, describe_dates
from marketlake.models.run import existing_gold, write_gold
from marketlake.models.spec import ModelsConf, ModelSpec
from marketlake.session import checkpoint
from marketlake.tables import read_delta

log = logging.getLogger(__name__)

ASSIGNMENTS = GoldSpec(
    "experiment_assignments",
    "exposure_date",
    "exposure_date, experiment, <unit column>",
    ("<model>_interventions",),
    "each unit an experiment exposed on a day: its arm (hash of experiment and unit), bucket and exposed rows",
)
READOUTS = GoldSpec(
    "experiment_readouts",
    "readout_date",
    "readout_date, experiment, metric, variant",
    ("experiment_assignments", "<model's gold table>"),
    "per experiment, metric and variant: units, rate or mean, lift vs control with its CI, p-value, planned units",
)


@dataclass(frozen=True)
class ExperimentRun:
    experiment: str
    assignments: int
    assignments_written: bool
    readout_days: list[date]
    readouts_written: bool
    readout: list[dict]


def exposures(spark: SparkSession, settings: Settings, model: ModelSpec, database: str) -> DataFrame:
    """Every exposed decision row of the model (all dates): its date, keys, experiment, unit and arm."""
    location = existing_gold(spark, settings, model.decisions_table, database, "jobs/experiments.py")
    decisions = read_delta(spark, location)
    missing = [c for c in ARMED if c not in decisions.columns]
    if missing:
        raise InputError(
            f"gold.{model.decisions_table} has no experiment arms ({', '.join(missing)}): score the model's dates "
            "again (jobs/score.py) so that its decisions carry them"
        )
    return decisions.where(F.col("variant").isNotNull())


def assignments(exposed: DataFrame, model: ModelSpec, experiment: ExperimentSpec, start: date, end: date) -> DataFrame:
    """gold.experiment_assignments rows of start..end: one per exposure day, experiment and unit."""
    unit = experiment.unit
    return (
        exposed.where((F.col("experiment") == experiment.name) & between(model.date, start, end))
        .groupBy(F.col(model.date).alias("exposure_date"), "experiment", unit, "variant")
        .agg(F.count(F.lit(1)).alias("exposed_rows"))
        .select(
            "exposure_date",
            "experiment",
            unit,
            "variant",
            bucket_column(experiment.name, F.col(unit)).alias("bucket"),
            "exposed_rows",
        )
    )


def unit_outcomes(
    spark: SparkSession,
    exposed: DataFrame,
    outcomes: DataFrame,
    model: ModelSpec,
    experiment: ExperimentSpec,
    start: date,
    end: date,
) -> DataFrame:
    """One row per readout day of start..end, experiment and unit first exposed by day - maturity_days: its arm and
    each metric's value over its exposed rows up to then. Refuses a day whose rows' outcomes are not final."""
    days = spark.createDataFrame(
        [(start + timedelta(days=i),) for i in range((end - start).days + 1)], "readout_date date"
    )
    keys = list(model.keys)
    taken = {*keys, model.date, experiment.unit, "experiment", "variant"}
    facts = outcomes.select(
        *keys,
        *[c for c in outcomes.columns if c not in taken],
        F.expr(model.label_complete).alias("_final"),
    )
    rows = (
        exposed.where(F.col("experiment") == experiment.name)
        .select(model.date, *keys, F.col(experiment.unit).alias("unit"), "experiment", "variant")
        .join(facts, keys, "left")
        .join(F.broadcast(days), F.col(model.date) <= F.date_sub(F.col("readout_date"), experiment.maturity_days))
    )
    rows = checkpoint(rows)
    unfinal = rows.where(~F.coalesce(F.col("_final"), F.lit(False))).select("readout_date").distinct().collect()
    if unfinal:
        raise InputError(
            f"experiment {experiment.name}: outcomes in gold.{model.table} are not final (or missing) for rows the "
            f"readouts of {describe_dates(sorted(r[0] for r in unfinal))} count; build gold through them first"
        )
    metrics = [F.expr(expr).cast("double").alias(metric) for metric, expr in experiment.per_unit.items()]
    return rows.groupBy("readout_date", "experiment", "unit", "variant").agg(*metrics)


def build(
    spark: SparkSession,
    settings: Settings,
    models: ModelsConf,
    experiments: Mapping[str, ExperimentSpec],
    start: date,
    end: date,
    database: str = "gold",
) -> list[ExperimentRun]:
    """Replace start..end of gold.experiment_assignments and gold.experiment_readouts, experiment by experiment (one
    commit per table and experiment; an unchanged range commits nothing)."""
    runs = []
    for experiment in experiments.values():
        model = models.spec(experiment.model)
        exposed = exposures(spark, settings, model, database)
        reader = f"experiment {experiment.name}"
        outcomes = read_delta(spark, existing_gold(spark, settings, model.table, database, reader))
        units = unit_outcomes(spark, exposed, outcomes, model, experiment, start, end)
        control = experiment.design.control
        with_control = units.where(F.col("variant") == control).select("readout_date").distinct()
        units = units.join(with_control, "readout_date", "left_semi")
        result = readout(spark, units, {experiment.name: control}, experiment.metrics, {"readout_date": "date"})
        result = result.select(
            "readout_date",
            F.date_sub("readout_date", experiment.maturity_days).alias("exposed_until"),
            *[c for c in result.columns if c != "readout_date"],
        )
        result = checkpoint(result)
        mine = f"experiment = '{experiment.name}'"
        assigned = checkpoint(assignments(exposed, model, experiment, start, end))
        n, assigned_written = write_gold(spark, settings, database, assigned, ASSIGNMENTS, start, end, mine)
        _, read_written = write_gold(spark, settings, database, result, READOUTS, start, end, mine)
        days = sorted({r[0] for r in result.select("readout_date").distinct().collect()})
        latest = [r.asDict() for r in result.where(F.col("readout_date") == days[-1]).collect()] if days else []
        log.info("%s %s..%s: %d assignment rows, readouts on %d days", experiment.name, start, end, n, len(days))
        runs.append(ExperimentRun(experiment.name, n, assigned_written, days, read_written, latest))
    return runs
