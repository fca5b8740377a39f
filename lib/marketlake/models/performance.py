"""Models watched on real outcomes: each model version's realised metrics per scoring week, once labels are final.

A scoring week (Monday to Sunday, by the scores' date) is measured when every scored row of it has a final label
(the model's `label_complete`, e.g. 30 days after a purchase) and belongs to the model's population. Per model
version and week: rows, positives, ROC-AUC and PR-AUC (of the raw score), expected calibration error (of the
calibrated score, 10 equal-width bins) and precision@K (each day's K = daily_budget highest raw scores; pooled over
the week), next to the version's test metrics from training (its MLflow run). A week is flagged, with the action
`retrain`, when the realised ROC-AUC is more than `auc_drop` below the test ROC-AUC, or when some feature's PSI
was flagged (gold.model_drift) on at least `psi_days` of the week's scored days.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from marketlake.gold.spec import GoldSpec
from marketlake.models.metrics import at_k, calibration_table, expected_calibration_error, ranking_auc
from marketlake.models.spec import DRIFT_TABLE, PERFORMANCE_TABLE

SPEC = GoldSpec(
    PERFORMANCE_TABLE,
    "week_start",
    "week_start, model_name, model_version",
    ("<model>_scores", "<model's gold table>", DRIFT_TABLE),
    "realised ROC-AUC, PR-AUC, calibration error and precision@K per model version and scoring week, against the "
    "version's test metrics; flagged (action: retrain) on an AUC drop or persistent PSI flags",
)
DDL = (
    "week_start date, model_name string, model_version int, days int, rows long, positives long, "
    "roc_auc double, pr_auc double, ece double, precision_at_k double, k int, test_roc_auc double, "
    "test_pr_auc double, test_ece double, test_precision_at_k double, auc_drop double, drifted_features string, "
    "flagged boolean, action string, reason string"
)
METRICS = ("roc_auc", "pr_auc", "ece", "precision_at_k")


@dataclass(frozen=True)
class Watch:
    """When a week is flagged: realised ROC-AUC below test ROC-AUC by more than auc_drop, or a feature's PSI
    flagged on psi_days or more of the week's scored days."""

    auc_drop: float
    psi_days: int


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def week_metrics(labelled: DataFrame, date_column: str, k: int) -> dict[str, float]:
    """The realised metrics of one week's labelled scores (columns date_column, label, raw_score, score)."""
    roc, pr = ranking_auc(labelled)
    return {
        "roc_auc": roc,
        "pr_auc": pr,
        "ece": expected_calibration_error(calibration_table(labelled)),
        "precision_at_k": at_k(labelled, date_column, k)["precision_at_k"],
    }


def drifted(drift: DataFrame | None, model: str, version: int, first: date, last: date, days: int) -> list[str]:
    """Features whose PSI was flagged on `days` or more scored days of first..last for the model version."""
    if drift is None:
        return []
    rows = (
        drift.where(
            (F.col("model_name") == model)
            & (F.col("model_version") == version)
            & F.col("flagged")
            & F.col("date").between(first, last)
        )
        .groupBy("feature")
        .agg(F.countDistinct("date").alias("n"))
        .where(F.col("n") >= days)
        .orderBy("feature")
        .collect()
    )
    return [r["feature"] for r in rows]


def weekly(
    spark: SparkSession,
    labelled: DataFrame,
    model: str,
    date_column: str,
    k: int,
    tested: Mapping[int, Mapping[str, float]],
    drift: DataFrame | None,
    watch: Watch,
) -> DataFrame:
    """Rows of gold.model_performance (DDL) for every version and week of labelled (columns: date_column,
    model_version, label 0/1, raw_score, score, final: the label is final) whose rows all have final labels.
    tested: each version's test metrics (roc_auc, pr_auc, ece, precision_at_k)."""
    week = F.date_sub(F.col(date_column), (F.dayofweek(date_column) + 5) % 7)
    labelled = labelled.withColumn("_week", week).cache()
    groups = (
        labelled.groupBy("model_version", "_week")
        .agg(
            F.min(F.col("final").cast("int")).alias("final"),
            F.count(F.lit(1)).alias("rows"),
            F.sum("label").cast("long").alias("positives"),
            F.countDistinct(date_column).alias("days"),
        )
        .orderBy("model_version", "_week")
        .collect()
    )
    out = []
    for g in groups:
        if not g["final"]:
            continue
        version, start = int(g["model_version"]), g["_week"]
        rows = labelled.where((F.col("model_version") == version) & (F.col("_week") == start))
        realised = week_metrics(rows, date_column, k)
        test = tested.get(version, {})
        drop = test["roc_auc"] - realised["roc_auc"] if "roc_auc" in test else None
        features = drifted(drift, model, version, start, start + timedelta(days=6), watch.psi_days)
        reasons = []
        if drop is not None and drop > watch.auc_drop:
            reasons.append(
                f"realised ROC-AUC {realised['roc_auc']:.3f} is {drop:.3f} below the test ROC-AUC "
                f"{test['roc_auc']:.3f} (more than {watch.auc_drop})"
            )
        if features:
            reasons.append(f"PSI flagged on {watch.psi_days}+ days of the week for {', '.join(features)}")
        out.append(
            (
                start, model, version, int(g["days"]), int(g["rows"]), int(g["positives"]),
                *(realised[m] for m in METRICS), k, *(test.get(m) for m in METRICS), drop,
                ", ".join(features) or None, bool(reasons), "retrain" if reasons else None,
                "; ".join(reasons) or None,
            )
        )  # fmt: skip
    labelled.unpersist()
    return spark.createDataFrame(out, DDL)
