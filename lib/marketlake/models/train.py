"""Train a model on a gold table: xgboost.spark with early stopping on the validation window, a Spark ML
logistic-regression baseline on the same split and features, isotonic calibration fitted on validation, and
test-window metrics for both."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.functions import vector_to_array
from pyspark.ml.regression import IsotonicRegression
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from xgboost.spark import SparkXGBClassifier

from marketlake.errors import InputError
from marketlake.models import drift
from marketlake.models.bundle import Calibration, ModelBundle
from marketlake.models.features import (
    Windows,
    category_levels,
    feature_array,
    labelled,
    logistic_vector,
    numeric_means,
    time_windows,
    with_split,
)
from marketlake.models.metrics import calibration_table, evaluate
from marketlake.models.scoring import apply_bundle
from marketlake.models.spec import ModelsConf, ModelSpec
from marketlake.session import checkpoint

log = logging.getLogger(__name__)


@dataclass
class TrainedModel:
    spec: ModelSpec
    bundle: ModelBundle
    windows: Windows
    rows: dict[str, dict[str, float]]
    params: dict[str, Any]
    metrics: dict[str, dict[str, float]]
    importance: dict[str, float]
    calibration: dict[str, list[dict[str, float]]]
    seconds: dict[str, float] = field(default_factory=dict)


def split_frame(df: DataFrame, spec: ModelSpec) -> tuple[DataFrame, Windows]:
    """The labelled population with a `split` column (train / validation / test by date)."""
    data = labelled(df, spec)
    dates = [r[0] for r in data.select(spec.date).distinct().collect()]
    windows = time_windows(dates, spec)
    return with_split(data, spec, windows), windows


def isotonic(validation: DataFrame, score: str) -> Calibration:
    """Isotonic regression of label on score, fitted on the validation window."""
    model = IsotonicRegression(featuresCol=score, labelCol="label", predictionCol="_calibrated").fit(validation)
    return Calibration(tuple(map(float, model.boundaries)), tuple(map(float, model.predictions)))


def xgboost_params(conf: ModelsConf, scale_pos_weight: float) -> dict[str, Any]:
    params = {k: v for k, v in conf.xgboost.items() if k not in {"num_workers"}}
    return {**params, "scale_pos_weight": scale_pos_weight}


def fit_xgboost(
    data: DataFrame, spec: ModelSpec, levels: Mapping[str, list[str]], params: Mapping[str, Any], num_workers: int
) -> tuple[bytes, int]:
    """Fit SparkXGBClassifier on train rows with early stopping on validation rows; returns the booster (as JSON,
    cut at the best iteration, features named) and the number of trees kept."""
    fit_rows = data.where(F.col("split").isin("train", "validation")).select(
        feature_array(spec, levels).alias("features"),
        "label",
        (F.col("split") == "validation").alias("is_validation"),
    )
    estimator = SparkXGBClassifier(
        features_col="features",
        label_col="label",
        validation_indicator_col="is_validation",
        num_workers=num_workers,
        missing=np.nan,
        verbose=False,
        **params,
    )
    return _best_trees(estimator.fit(fit_rows).get_booster(), spec.features)


def _best_trees(booster: xgb.Booster, features: tuple[str, ...]) -> tuple[bytes, int]:
    """The booster cut at its best (early-stopping) iteration, with named features, as JSON and its tree count."""
    best = booster.best_iteration if booster.attr("best_iteration") is not None else booster.num_boosted_rounds() - 1
    booster = booster[: best + 1]
    booster.feature_names = list(features)
    return bytes(booster.save_raw("json")), best + 1


def fit_single_node(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    params: Mapping[str, Any],
    features: tuple[str, ...],
) -> tuple[bytes, int]:
    """Plain xgboost on the driver with the same parameters and early stopping as the distributed fit: the
    reference xgboost.spark is compared with (tests and benchmarks)."""
    model = xgb.XGBClassifier(**params, missing=np.nan, objective="binary:logistic")
    model.fit(train_x, train_y, eval_set=[(val_x, val_y)], verbose=False)
    return _best_trees(model.get_booster(), features)


def fit_logistic(
    data: DataFrame,
    spec: ModelSpec,
    levels: Mapping[str, list[str]],
    means: Mapping[str, float],
    pos_weight: float,
    params: Mapping[str, Any],
) -> DataFrame:
    """The baseline: class-weighted logistic regression on the same features and split; returns the validation
    and test rows with its probability as raw_score."""
    vector = logistic_vector(spec, levels, means).alias("lr_features")
    weight = F.when(F.col("label") == 1.0, F.lit(pos_weight)).otherwise(F.lit(1.0)).alias("weight")
    rows = data.select("*", vector, weight)
    estimator = LogisticRegression(
        featuresCol="lr_features",
        labelCol="label",
        weightCol="weight",
        regParam=float(params["reg_param"]),
        maxIter=int(params["max_iter"]),
    )
    model = estimator.fit(rows.where(F.col("split") == "train"))
    scored = model.transform(rows.where(F.col("split") != "train"))
    return scored.withColumn("raw_score", vector_to_array("probability")[1]).drop(
        "lr_features", "weight", "probability", "rawPrediction", "prediction"
    )


def with_calibrated_score(scored: DataFrame, calibration: Calibration) -> DataFrame:
    """Add `score`: the calibration applied to raw_score (the same numpy map the bundle applies)."""

    @F.pandas_udf("double")  # type: ignore[call-overload]
    def calibrate(raw: pd.Series) -> pd.Series:
        return pd.Series(calibration.apply(raw.to_numpy(dtype="float64")))

    return scored.withColumn("score", calibrate(F.col("raw_score")))


def mean_abs_contributions(scored: DataFrame, features: tuple[str, ...]) -> dict[str, float]:
    """Global importance: the mean absolute SHAP contribution of each feature over the given rows."""
    rows = (
        scored.select(F.posexplode("contributions").alias("i", "c"))
        .groupBy("i")
        .agg(F.avg(F.abs("c")).alias("v"))
        .collect()
    )
    values = {features[r["i"]]: float(r["v"]) for r in rows}
    return dict(sorted(values.items(), key=lambda kv: -kv[1]))


def split_counts(data: DataFrame) -> dict[str, dict[str, float]]:
    rows = data.groupBy("split").agg(F.count(F.lit(1)).alias("rows"), F.sum("label").alias("positives")).collect()
    return {r["split"]: {"rows": float(r["rows"]), "positives": float(r["positives"] or 0.0)} for r in rows}


def train(df: DataFrame, spec: ModelSpec, conf: ModelsConf, num_workers: int | None = None) -> TrainedModel:
    """Train spec's model on the rows of its gold table (df) and evaluate it and the baseline on the test window."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    data, windows = split_frame(df, spec)
    data = checkpoint(data)
    rows = split_counts(data)
    train_rows = rows.get("train", {"rows": 0.0, "positives": 0.0})
    if not 0 < train_rows["positives"] < train_rows["rows"]:
        raise InputError(
            f"model {spec.name}: the training window {windows.train[0]}..{windows.train[1]} needs both classes "
            f"of {spec.label} ({train_rows['positives']:.0f} positives in {train_rows['rows']:.0f} rows)"
        )
    pos_weight = (train_rows["rows"] - train_rows["positives"]) / train_rows["positives"]
    train_part = data.where(F.col("split") == "train")
    levels = category_levels(train_part, spec)
    params = xgboost_params(conf, pos_weight)
    workers = int(num_workers or conf.xgboost["num_workers"])
    seconds["prepare"] = time.perf_counter() - started

    started = time.perf_counter()
    booster_json, trees = fit_xgboost(data, spec, levels, params, workers)
    seconds["xgboost_fit"] = time.perf_counter() - started
    log.info(
        "%s: xgboost.spark on %d workers kept %d trees in %.1f s", spec.name, workers, trees, seconds["xgboost_fit"]
    )

    started = time.perf_counter()
    reference = drift.reference(train_part, spec.numeric, levels, conf.drift_bins)
    uncalibrated = ModelBundle(
        spec.name, spec.numeric, spec.categorical, levels, Calibration((), ()), reference, booster_json
    )
    value = str(spec.business["value_column"])
    keep = list(dict.fromkeys([spec.date, "split", "label", value]))
    held_out = data.where(F.col("split") != "train")
    scored = checkpoint(apply_bundle(held_out, uncalibrated, keep, contributions=True))
    calibration = isotonic(scored.where(F.col("split") == "validation"), "raw_score")
    bundle = replace(uncalibrated, calibration=calibration)
    xgb_scored = with_calibrated_score(scored.drop("score"), calibration)
    importance = mean_abs_contributions(scored.where(F.col("split") == "validation"), spec.features)
    test = xgb_scored.where(F.col("split") == "test")
    metrics = {"xgboost": evaluate(test, spec.date, spec.daily_budget, spec.business)}
    curves = {"calibrated": calibration_table(test, "score"), "uncalibrated": calibration_table(test, "raw_score")}
    seconds["xgboost_evaluate"] = time.perf_counter() - started

    started = time.perf_counter()
    means = numeric_means(train_part, spec)
    baseline = checkpoint(fit_logistic(data, spec, levels, means, pos_weight, conf.logistic))
    baseline_calibration = isotonic(baseline.where(F.col("split") == "validation"), "raw_score")
    baseline_test = with_calibrated_score(baseline, baseline_calibration).where(F.col("split") == "test")
    metrics["baseline"] = evaluate(baseline_test, spec.date, spec.daily_budget, spec.business)
    seconds["baseline"] = time.perf_counter() - started

    return TrainedModel(
        spec=spec,
        bundle=bundle,
        windows=windows,
        rows=rows,
        params={**params, "num_workers": workers, "trees": trees},
        metrics=metrics,
        importance=importance,
        calibration=curves,
        seconds=seconds,
    )
