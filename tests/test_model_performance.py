"""gold.model_performance's weekly metrics against scikit-learn and pandas, with a planted drifted week flagged."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from sklearn.metrics import roc_auc_score

from marketlake.models.performance import Watch, monday, weekly

WEEK1 = date(2026, 3, 2)  # a Monday
K = 5
TESTED = {1: {"roc_auc": 0.80, "pr_auc": 0.6, "ece": 0.03, "precision_at_k": 0.7}}


def scored(seed: int = 4) -> pd.DataFrame:
    """Four weeks of daily scores: labels follow the score in weeks 1 and 2, are independent of it in week 3 (the
    world drifted), and week 4's are not final yet."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(28):
        day = WEEK1 + timedelta(days=d)
        raw = rng.random(40)
        label = rng.random(40) < (0.5 if d // 7 == 2 else raw**2 * 0.9)
        score = np.clip(raw**2 * 0.9 + rng.normal(0, 0.05, 40), 0, 1)
        rows += [(day, 1, float(lab), float(r), float(s), d < 21) for lab, r, s in zip(label, raw, score, strict=True)]
    return pd.DataFrame(rows, columns=["purchase_date", "model_version", "label", "raw_score", "score", "final"])


def pr_auc(label: np.ndarray, score: np.ndarray) -> float:
    """Area under the precision-recall curve by the trapezoid rule, from (0, precision at the top score) through
    each distinct score taken as the threshold (Spark's BinaryClassificationMetrics)."""
    order = np.argsort(-score)
    hits = np.cumsum(label[order])
    precision, recall = hits / np.arange(1, len(label) + 1), hits / label.sum()
    precision, recall = np.r_[precision[0], precision], np.r_[0.0, recall]
    return float(np.sum((recall[1:] - recall[:-1]) * (precision[1:] + precision[:-1]) / 2))


def oracle(week: pd.DataFrame) -> dict[str, float]:
    bins = np.minimum(np.floor(week["score"] * 10), 9)
    per_bin = week.groupby(bins).agg(n=("label", "size"), p=("score", "mean"), o=("label", "mean"))
    top = week.sort_values("raw_score", ascending=False).groupby("purchase_date").head(K)
    return {
        "roc_auc": roc_auc_score(week["label"], week["raw_score"]),
        "pr_auc": pr_auc(week["label"].to_numpy(), week["raw_score"].to_numpy()),
        "ece": float((per_bin["n"] / len(week) * (per_bin["p"] - per_bin["o"]).abs()).sum()),
        "precision_at_k": top["label"].mean(),
    }


def test_weekly_metrics_match_sklearn_and_the_drifted_week_is_flagged_for_retraining(spark: SparkSession) -> None:
    frame = scored()
    drift = spark.createDataFrame(
        [(WEEK1 + timedelta(days=d), "regret", 1, "hour_of_day", True) for d in (1, 2)]  # 2 days: not persistent
        + [(WEEK1 + timedelta(days=d), "regret", 1, "discount_pct", True) for d in (7, 8, 10, 12)]  # 4 days in week 2
        + [(WEEK1 + timedelta(days=d), "churn", 1, "discount_pct", True) for d in range(14, 21)],  # another model
        "date date, model_name string, model_version int, feature string, flagged boolean",
    )
    labelled = spark.createDataFrame(
        frame, "purchase_date date, model_version int, label double, raw_score double, score double, final boolean"
    )
    out = weekly(spark, labelled, "regret", "purchase_date", K, TESTED, drift, Watch(auc_drop=0.05, psi_days=4))
    got = out.toPandas().set_index("week_start")
    weeks = [WEEK1 + timedelta(days=7 * i) for i in range(3)]
    assert list(got.index) == weeks  # week 4's labels are not final: not measured
    for start in weeks:
        week = frame[(frame["purchase_date"] >= start) & (frame["purchase_date"] < start + timedelta(days=7))]
        want, row = oracle(week), got.loc[start]
        assert (row["rows"], row["positives"], row["days"]) == (len(week), int(week["label"].sum()), 7)
        for metric, value in want.items():
            assert row[metric] == pytest.approx(value, abs=1e-9), (start, metric)
        assert row["test_roc_auc"] == 0.80 and row["auc_drop"] == pytest.approx(0.80 - want["roc_auc"])
    assert [bool(f) for f in got["flagged"]] == [False, True, True]
    assert got.loc[weeks[0], "action"] is None and got.loc[weeks[0], "drifted_features"] is None
    assert got.loc[weeks[1], "action"] == "retrain" and got.loc[weeks[1], "drifted_features"] == "discount_pct"
    assert got.loc[weeks[2], "action"] == "retrain" and "realised ROC-AUC" in got.loc[weeks[2], "reason"]
    assert got.loc[weeks[2], "roc_auc"] < 0.6 < got.loc[weeks[0], "roc_auc"]


def test_weeks_start_on_monday() -> None:
    assert [monday(date(2026, 3, d)) for d in (1, 2, 8, 9)] == [date(2026, 2, 23), WEEK1, WEEK1, date(2026, 3, 9)]
