"""What the model jobs do, end to end: read a gold table at a known Delta version, train and register, or resolve
a registered version and score a date range into gold (scores, decisions, drift)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import date, timedelta
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from marketlake.config import Settings
from marketlake.errors import InputError
from marketlake.experiments.arms import with_arms
from marketlake.experiments.spec import for_model, load_experiments
from marketlake.gold.build import replace_where, silver_path, write_partitions
from marketlake.gold.common import between
from marketlake.gold.spec import GoldSpec, date_range, describe_dates
from marketlake.models import anomalies, performance, registry
from marketlake.models.bundle import ModelBundle
from marketlake.models.drift import daily_psi
from marketlake.models.features import labelled
from marketlake.models.scoring import CONSENT, apply_bundle, decisions, risk_band, with_consent
from marketlake.models.spec import DRIFT_TABLE, IMPORTANCE_TABLE, ModelsConf, ModelSpec
from marketlake.models.train import TrainedModel, train
from marketlake.report import format_rows
from marketlake.session import checkpoint
from marketlake.tables import current_version, is_delta_table, read_delta

log = logging.getLogger(__name__)

SHOWN_METRICS = ["roc_auc", "pr_auc", "precision_at_k", "recall_at_k", "ece", "business_value_usd"]


@dataclass(frozen=True)
class TrainRun:
    """A training job's outcome: a new registered version, or (trained is None) the version already trained on
    the same data version with the same parameters, reused without touching the registry or its aliases."""

    spec: ModelSpec
    trained: TrainedModel | None
    registered: registry.RegisteredModel
    data_version: int
    seconds: float


@dataclass(frozen=True)
class ScoreRun:
    model: str
    version: int
    first: date
    last: date
    rows: int
    written: bool
    drift_flags: int
    seconds: float


def gold_location(settings: Settings, name: str, database: str = "gold") -> str:
    return str(settings.database_location(database) / name)


def existing_gold(spark: SparkSession, settings: Settings, table: str, database: str, reader: str) -> str:
    """The location of a gold table a job reads, or one clear error naming the reader and how to build it."""
    location = gold_location(settings, table, database)
    if not is_delta_table(spark, location):
        raise InputError(
            f"gold.{table} does not exist ({reader} reads it); "
            f"build it first: jobs/gold_build.py --tables {table} --start ... --end ..."
        )
    return location


def missing_dates(df: DataFrame, column: str, start: date, end: date) -> list[date]:
    """The days of start..end without a row in df."""
    held = {r[0] for r in df.select(column).distinct().collect()}
    return [d for d in date_range(start, end) if d not in held]


def read_gold(
    spark: SparkSession, settings: Settings, spec: ModelSpec, database: str = "gold"
) -> tuple[DataFrame, int]:
    """The model's gold table at its current Delta version (logged with the run, so the data is reproducible)."""
    location = existing_gold(spark, settings, spec.table, database, f"model {spec.name}")
    version = current_version(spark, location)
    return read_delta(spark, location, version), version


def train_and_register(
    spark: SparkSession,
    settings: Settings,
    conf: ModelsConf,
    spec: ModelSpec,
    alias: str | None,
    database: str = "gold",
) -> TrainRun:
    """Train on <database>.<spec.table> (gold unless a test says otherwise), log, register, write importance;
    when a version was already trained on this data version with these parameters, reuse it (a re-run changes
    nothing)."""
    started = time.perf_counter()
    df, version = read_gold(spark, settings, spec, database)
    data_versions = {f"gold.{spec.table}": version}
    fingerprint = registry.fingerprint(spec, conf, data_versions)
    existing = registry.find_version(spec.registered_name, fingerprint)
    if existing is not None:
        return TrainRun(spec, None, existing, version, time.perf_counter() - started)
    trained = train(df, spec, conf)
    # The signature's types: numeric features as doubles (decimals and booleans included), categoricals as text. The
    # logged input example is one made-up row (each numeric feature's median, each categorical's most frequent value),
    # never a person's: the model's artifacts outlive any erasure (README "Privacy").
    typical = [F.percentile_approx(F.col(c).cast("double"), 0.5).alias(c) for c in spec.numeric] + [
        F.mode(F.col(c).cast("string")).alias(c) for c in spec.categorical
    ]
    example = labelled(df, spec).agg(*typical).toPandas()
    registered = registry.log_and_register(trained, example, data_versions, alias, fingerprint)
    write_importance(spark, settings, trained, registered.version, database)
    return TrainRun(spec, trained, registered, version, time.perf_counter() - started)


def training_report(result: TrainRun, tracking: str) -> str:
    """What a training run did, for the job's output: version, data and windows, and the test metrics of the model
    next to its baseline (from the run that trained the version, when it was reused)."""
    t, reg, spec = result.trained, result.registered, result.spec
    title = f"\nModel {spec.name}: {reg.name} version {reg.version}" + (f" (@{reg.alias})" if reg.alias else "")
    if t is None:
        lines = [
            title + f" unchanged: already trained on gold.{spec.table} v{result.data_version} with these "
            f"parameters (run {reg.run_id}); its test metrics:",
        ]
        metrics = registry.logged_metrics(reg.run_id)
    else:
        windows = ", ".join(
            f"{split} {a}..{b} ({int(t.rows.get(split, {}).get('rows', 0))} rows, "
            f"{int(t.rows.get(split, {}).get('positives', 0))} positive)"
            for split, (a, b) in (
                ("train", t.windows.train),
                ("validation", t.windows.validation),
                ("test", t.windows.test),
            )
        )
        lines = [
            title,
            f"  data: gold.{spec.table} v{result.data_version}; {windows}",
            f"  xgboost.spark: {t.params['num_workers']} workers, {t.params['trees']} trees; "
            f"test metrics with K = {spec.daily_budget} interventions/day:",
        ]
        metrics = t.metrics
    table = [
        {"model": m, **{k: round(v, 4) for k, v in values.items() if k in SHOWN_METRICS}}
        for m, values in metrics.items()
    ]
    lines.append(format_rows(table, ["model", *SHOWN_METRICS]))
    if t is not None:
        lines.append(f"  top features (mean |SHAP|): {', '.join(list(t.importance)[:5])}")
    lines.append(f"  {result.seconds:.0f} s; tracking: {tracking}")
    return "\n".join(lines)


def write_importance(
    spark: SparkSession, settings: Settings, trained: TrainedModel, version: int, database: str = "gold"
) -> None:
    """gold.model_feature_importance: mean |SHAP| per feature on the validation window, per model version."""
    name = trained.spec.name
    rows = [(name, version, rank, f, v) for rank, (f, v) in enumerate(trained.importance.items(), start=1)]
    df = spark.createDataFrame(
        rows, "model_name string, model_version int, rank int, feature string, mean_abs_shap double"
    )
    replace_where(
        spark,
        df,
        f"{database}.{IMPORTANCE_TABLE}",
        gold_location(settings, IMPORTANCE_TABLE, database),
        ["model_name"],
        f"model_name = '{name}' AND model_version = {version}",
        "global feature importance (mean absolute SHAP contribution on the validation window) per model version",
    )


def score_range(
    spark: SparkSession,
    settings: Settings,
    conf: ModelsConf,
    spec: ModelSpec,
    start: date,
    end: date,
    alias: str | None,
    version: int | None,
    database: str = "gold",
) -> ScoreRun:
    """Score every row of the model's gold table dated start..end with the version the alias names (or the given
    version); replace those dates in gold.<scores_table>, gold.<decisions_table> and the model's rows of
    gold.model_drift. Scoring the same dates with the same version again commits nothing."""
    started = time.perf_counter()
    version, bundle = registry.resolve(spec.registered_name, alias, version)
    df, _ = read_gold(spark, settings, spec, database)
    rows = df.where(between(spec.date, start, end))
    missing = missing_dates(rows, spec.date, start, end)
    if missing:
        raise InputError(
            f"gold.{spec.table} has no rows for {describe_dates(missing)}; build gold for those dates first"
        )
    keep = list(dict.fromkeys([spec.date, *spec.keys, *spec.carry]))
    scored = apply_bundle(rows, bundle, keep, reasons=spec.reasons).select(
        *keep,
        F.lit(spec.name).alias("model_name"),
        F.lit(version).alias("model_version"),
        "score",
        "raw_score",
        risk_band(F.col("score"), conf.risk_bands, conf.risk_band_default).alias("risk_band"),
        "reasons",
    )
    scored = checkpoint(scored)
    about = f"{spec.name} model scores per {spec.date}: calibrated score, risk band and the top-3 SHAP reasons"
    scores_spec = GoldSpec(spec.scores_table, spec.date, ", ".join(spec.keys), (spec.table,), about)
    n, written = write_gold(spark, settings, database, scored, scores_spec, start, end)
    decided_spec = GoldSpec(
        spec.decisions_table,
        spec.date,
        ", ".join(spec.keys),
        (spec.scores_table,),
        f"{spec.name} interventions from the policy (conf/models.yaml) and experiment arm (conf/experiments.yaml)",
    )
    experiment = for_model(load_experiments(settings.conf_dir, settings.overlay("experiments")), spec.name)
    known = consented(spark, settings, spec, scored)
    keep = [c for c in (experiment.unit, CONSENT) if c in known.columns] if experiment else []
    decided = with_arms(decisions(known, spec, keep), spec, experiment)
    write_gold(spark, settings, database, decided, decided_spec, start, end)
    flags = write_drift(spark, settings, database, conf, spec, rows, bundle, version, start, end)
    log.info("%s v%d %s..%s: %d rows %s", spec.name, version, start, end, n, "written" if written else "unchanged")
    return ScoreRun(spec.name, version, start, end, n, written, flags, time.perf_counter() - started)


def consented(spark: SparkSession, settings: Settings, spec: ModelSpec, scored: DataFrame) -> DataFrame:
    """scored with the customer's current marketing consent from silver (read by location) when the model's policy
    needs it; a missing silver table means nobody's consent is known, so nobody gets a marketing intervention."""
    if spec.consent is None:
        return scored
    location = silver_path(settings, spec.consent.table)
    if not is_delta_table(spark, location):
        log.warning(
            "silver.%s does not exist: no %s row has known marketing consent, so none gets a marketing intervention",
            spec.consent.table,
            spec.name,
        )
        return with_consent(scored, None, spec.consent.key)
    return with_consent(scored, read_delta(spark, location), spec.consent.key)


def write_gold(
    spark: SparkSession,
    settings: Settings,
    database: str,
    df: DataFrame,
    spec: GoldSpec,
    start: date,
    end: date,
    also: str | None = None,
) -> tuple[int, bool]:
    location = gold_location(settings, spec.name, database)
    return write_partitions(spark, df, spec, f"{database}.{spec.name}", location, start, end, also)


def write_drift(
    spark: SparkSession,
    settings: Settings,
    database: str,
    conf: ModelsConf,
    spec: ModelSpec,
    rows: DataFrame,
    bundle: ModelBundle,
    version: int,
    start: date,
    end: date,
) -> int:
    """gold.model_drift: PSI of each feature per scored day against the training window; returns flagged rows."""
    threshold = conf.psi_threshold
    values = [
        (r["date"], spec.name, version, r["feature"], float(r["psi"]), threshold, r["psi"] > threshold)
        for r in daily_psi(rows, bundle, spec.date)
    ]
    drift = spark.createDataFrame(
        values,
        "date date, model_name string, model_version int, feature string, psi double, threshold double, "
        "flagged boolean",
    )
    drift_spec = GoldSpec(
        DRIFT_TABLE,
        "date",
        "date, model_name, feature",
        (spec.scores_table,),
        "population stability index per feature and scored day against the training window",
    )
    write_gold(spark, settings, database, drift, drift_spec, start, end, f"model_name = '{spec.name}'")
    return sum(1 for *_, flagged in values if flagged)


@dataclass(frozen=True)
class AnomalyRun:
    first: date
    last: date
    rows: int
    written: bool
    confirmed: list[dict[str, Any]]
    seconds: float


def detect_anomalies(
    spark: SparkSession, settings: Settings, conf: ModelsConf, start: date, end: date, database: str = "gold"
) -> AnomalyRun:
    """Run the detectors over each configured KPI series (reading lookback_days of history before start) and
    replace the days start..end of <database>.kpi_anomalies; returns the confirmed days (2 of 3) with insights."""
    started = time.perf_counter()
    a = conf.anomalies
    first = start - timedelta(days=int(a["lookback_days"]))
    frames = []
    for s in a["series"]:
        location = existing_gold(spark, settings, s["table"], database, f"anomaly series {s['name']}")
        kpis = read_delta(spark, location).where(between("date", first, end))
        frames.append(anomalies.series_frame(kpis, s["name"], s["dimension"], s["value"], s["components"]))
    series = checkpoint(reduce(DataFrame.unionByName, frames))
    missing = missing_dates(series, "date", start, end)
    if missing:
        raise InputError(
            f"no KPI rows for {describe_dates(missing)} in "
            f"{', '.join('gold.' + s['table'] for s in a['series'])}; build gold for those dates first"
        )
    result = checkpoint(anomalies.detect(series, a).where(between("date", start, end)))
    spec = GoldSpec(
        str(a["table"]),
        "date",
        "date, series, dimension",
        tuple(s["table"] for s in a["series"]),
        "daily KPI anomalies: z-score, Isolation Forest and forecast-residual flags, consensus and JSON insights",
    )
    rows, written = write_gold(spark, settings, database, result, spec, start, end)
    confirmed = [
        json.loads(r["insight"])
        for r in result.where("consensus_2of3").orderBy("date", "series", "dimension").collect()
    ]
    return AnomalyRun(start, end, rows, written, confirmed, time.perf_counter() - started)


def watch_performance(
    spark: SparkSession,
    settings: Settings,
    conf: ModelsConf,
    spec: ModelSpec,
    start: date,
    end: date,
    database: str = "gold",
) -> tuple[int, bool, list[dict[str, Any]]]:
    """Replace the scoring weeks of start..end (their Mondays) of the model's rows in gold.model_performance with
    each version's realised metrics on the weeks whose labels are all final; returns (rows, written, flagged)."""
    first, last = performance.monday(start), performance.monday(end)
    reader = f"the {spec.name} model's performance"
    scores = read_delta(spark, existing_gold(spark, settings, spec.scores_table, database, reader))
    facts = read_delta(spark, existing_gold(spark, settings, spec.table, database, reader))
    keys = [spec.date, *spec.keys]
    labels = facts.where(F.expr(spec.population)).select(
        *keys,
        F.col(spec.label).cast("double").alias("label"),
        (F.expr(spec.label_complete) & F.col(spec.label).isNotNull()).alias("final"),
    )
    labelled = (
        scores.where(between(spec.date, first, last + timedelta(days=6)))
        .select(*keys, "model_version", "raw_score", "score")
        .join(labels, keys)
    )
    versions = [r[0] for r in labelled.select("model_version").distinct().collect()]
    tested = {v: registry.version_metrics(spec.registered_name, v) for v in versions}
    drift_location = gold_location(settings, DRIFT_TABLE, database)
    drift = read_delta(spark, drift_location) if is_delta_table(spark, drift_location) else None
    watch = performance.Watch(float(conf.monitoring["auc_drop"]), int(conf.monitoring["psi_days"]))
    weekly = performance.weekly(spark, labelled, spec.name, spec.date, spec.daily_budget, tested, drift, watch)
    weekly = checkpoint(weekly)
    n, written = write_gold(
        spark, settings, database, weekly, performance.SPEC, first, last, f"model_name = '{spec.name}'"
    )
    flagged = [r.asDict() for r in weekly.where("flagged").orderBy("week_start", "model_version").collect()]
    return n, written, flagged
