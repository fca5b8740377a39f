"""Test-window metrics of a scored frame (columns: date, label, raw_score, score and a value column).

Ranking metrics (ROC-AUC, PR-AUC, precision/recall at K) use the booster's raw probability, which ranks without
the ties an isotonic map introduces; calibration error and the business estimate use the calibrated score."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

CALIBRATION_BINS = 10


def ranking_auc(df: DataFrame, score: str = "raw_score") -> tuple[float, float]:
    """(ROC-AUC, PR-AUC) of score against label."""
    evaluator = BinaryClassificationEvaluator(rawPredictionCol=score, labelCol="label")
    roc = evaluator.evaluate(df, {evaluator.metricName: "areaUnderROC"})
    pr = evaluator.evaluate(df, {evaluator.metricName: "areaUnderPR"})
    return float(roc), float(pr)


def calibration_table(df: DataFrame, score: str = "score", bins: int = CALIBRATION_BINS) -> list[dict[str, float]]:
    """Per equal-width score bin: rows, mean predicted probability and observed positive rate."""
    b = F.least(F.floor(F.col(score) * bins), F.lit(bins - 1)).cast("int")
    rows = (
        df.groupBy(b.alias("bin"))
        .agg(F.count(F.lit(1)).alias("rows"), F.avg(score).alias("predicted"), F.avg("label").alias("observed"))
        .orderBy("bin")
        .collect()
    )
    return [{"bin": r["bin"], "rows": r["rows"], "predicted": r["predicted"], "observed": r["observed"]} for r in rows]


def expected_calibration_error(table: list[dict[str, float]]) -> float:
    total = sum(r["rows"] for r in table)
    return sum(r["rows"] / total * abs(r["predicted"] - r["observed"]) for r in table) if total else float("nan")


def at_k(df: DataFrame, date: str, k: int) -> dict[str, float]:
    """Each day the K highest-scored rows get an intervention: precision = positives among them / interventions,
    recall = those positives / all positives of the days."""
    rank = F.row_number().over(Window.partitionBy(date).orderBy(F.desc("raw_score"), F.desc("score")))
    row = (
        df.withColumn("_rank", rank)
        .agg(
            F.count(F.when(F.col("_rank") <= k, 1)).alias("picked"),
            F.sum(F.when(F.col("_rank") <= k, F.col("label")).otherwise(0.0)).alias("hits"),
            F.sum("label").alias("positives"),
        )
        .first()
    )
    picked, hits, positives = (row["picked"], row["hits"] or 0.0, row["positives"] or 0.0) if row else (0, 0.0, 0.0)
    return {
        "interventions": float(picked),
        "hits_at_k": float(hits),
        "precision_at_k": hits / picked if picked else float("nan"),
        "recall_at_k": hits / positives if positives else float("nan"),
    }


def evaluate(df: DataFrame, date: str, k: int, business: Mapping[str, Any]) -> dict[str, float]:
    """All test metrics, including the business estimate: prevented positives (hits x prevention_rate) x the
    average value of a test row (value_column) - interventions x intervention_cost_usd."""
    df = df.cache()
    roc, pr = ranking_auc(df)
    table = calibration_table(df)
    raw_table = calibration_table(df, "raw_score")
    metrics = {
        "rows": float(df.count()),
        "positive_rate": float(df.agg(F.avg("label")).first()[0] or 0.0),
        "roc_auc": roc,
        "pr_auc": pr,
        "ece": expected_calibration_error(table),
        "ece_uncalibrated": expected_calibration_error(raw_table),
        **at_k(df, date, k),
    }
    avg_value = float(df.agg(F.avg(F.col(business["value_column"]).cast("double"))).first()[0] or 0.0)
    prevented = metrics["hits_at_k"] * float(business["prevention_rate"])
    metrics["avg_value_usd"] = avg_value
    metrics["business_value_usd"] = prevented * avg_value - metrics["interventions"] * float(
        business["intervention_cost_usd"]
    )
    df.unpersist()
    return metrics
