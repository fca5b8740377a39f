"""The fraud model of one case: a Spark ML random forest on the labelled rows and an Isolation Forest (scikit-learn,
fitted on the driver) on the same encoded features, combined into a risk score with a decision and top factors.

- Encoding: numeric features with nulls set to their training median, each categorical as its level's position
  among the training levels (most frequent first; unknown or null -1).
- Anomaly score: the share of training rows at most as anomalous as the row (Isolation Forest's score_samples,
  negated), so 0..1 and comparable with the forest's probability.
- Risk: the mean of the forest's probability of fraud and the anomaly score; block at or above `block`, manual
  review at or above `review`, else approve.
- Top factors: the features the forest relies on most (its impurity importance) on which the row sits furthest
  from the training rows (a numeric value's distance from the median in training percentiles, 0..1; a category's
  rarity, 1 - its training share): importance x unusualness, the largest first.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.ml.classification import RandomForestClassificationModel, RandomForestClassifier
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType, StringType, StructField, StructType
from scipy.stats import rankdata

from marketlake.fraud.spec import FraudCase, FraudConf

ENCODED = "_x"
FACTOR = StructType(
    [
        StructField("feature", StringType()),
        StructField("value", StringType()),
        StructField("text", StringType()),
        StructField("weight", DoubleType()),
    ]
)
DECISIONS = ("block", "review", "approve")


@dataclass(frozen=True)
class Encoding:
    """Training medians of the numeric features and levels of the categorical ones."""

    medians: Mapping[str, float]
    levels: Mapping[str, Sequence[str]]

    def column(self, case: FraudCase) -> Column:
        """array<double> in case.features order."""
        numeric = [F.coalesce(F.col(c).cast("double"), F.lit(self.medians[c])) for c in case.numeric]
        categorical = []
        for c in case.categorical:
            levels = F.array(*[F.lit(v) for v in self.levels[c]]) if self.levels[c] else F.array().cast("array<string>")
            categorical.append(F.coalesce((F.array_position(levels, F.col(c).cast("string")) - 1), F.lit(-1)))
        return F.array(*numeric, *[x.cast("double") for x in categorical])


def encoding(train: DataFrame, case: FraudCase) -> Encoding:
    medians = {}
    if case.numeric:
        row = train.agg(*[F.median(F.col(c).cast("double")).alias(c) for c in case.numeric]).first()
        medians = {c: float(row[c]) if row is not None and row[c] is not None else 0.0 for c in case.numeric}
    levels = {}
    for c in case.categorical:
        counts = train.where(F.col(c).isNotNull()).groupBy(c).count().orderBy(F.desc("count"), c).collect()
        levels[c] = [str(r[0]) for r in counts]
    return Encoding(medians, levels)


@dataclass(frozen=True)
class Profile:
    """What scoring needs on the executors besides the forest: the case, the forest's importance per feature, the
    Isolation Forest, the sorted anomaly scores of its training rows, and per feature the sorted training values
    (numeric) or the level shares (categorical) that place a row's value for its top factors."""

    case: FraudCase
    importance: Mapping[str, float]
    isolation: Any
    reference_anomaly: np.ndarray
    reference_values: Mapping[str, np.ndarray]
    level_shares: Mapping[str, Mapping[str, float]]

    def anomaly(self, x: np.ndarray) -> np.ndarray:
        """The share of training rows whose anomaly is at most each row's (0..1, higher = more unusual)."""
        scores = -self.isolation.score_samples(x)
        return np.searchsorted(self.reference_anomaly, scores, side="right") / len(self.reference_anomaly)

    def unusualness(self, frame: pd.DataFrame, x: np.ndarray) -> np.ndarray:
        """Per row and feature, 0..1: how far the value sits from the training median in percentiles (numeric, the
        imputed value) or how rare its level was in training (categorical; unknown or null 1)."""
        out = np.empty_like(x)
        for j, c in enumerate(self.case.numeric):
            ref = self.reference_values[c]
            pct = (np.searchsorted(ref, x[:, j], side="left") + np.searchsorted(ref, x[:, j], side="right")) / (
                2 * len(ref)
            )
            out[:, j] = np.abs(2 * pct - 1)
        for j, c in enumerate(self.case.categorical, start=len(self.case.numeric)):
            shares = self.level_shares[c]
            out[:, j] = [1.0 if pd.isna(v) else 1.0 - shares.get(str(v), 0.0) for v in frame[c]]
        return out

    def factors(self, frame: pd.DataFrame, x: np.ndarray, k: int) -> list[list[dict[str, Any]]]:
        features = self.case.features
        weights = self.unusualness(frame, x) * np.array([self.importance.get(f, 0.0) for f in features])
        order = np.argsort(-weights, axis=1, kind="stable")[:, :k]
        rows = []
        for i, idx in enumerate(order):
            picked = [j for j in idx if weights[i, j] > 0]
            rows.append(
                [
                    {
                        "feature": features[j],
                        "value": _shown(frame[features[j]].iloc[i]),
                        "text": self.case.reasons[features[j]],
                        "weight": float(weights[i, j]),
                    }
                    for j in picked
                ]
            )
        return rows


@dataclass(frozen=True)
class FraudModel:
    """A fitted case: the encoding, the forest (Spark) and the profile."""

    encoding: Encoding
    forest: RandomForestClassificationModel
    profile: Profile

    @property
    def case(self) -> FraudCase:
        return self.profile.case

    @property
    def importance(self) -> Mapping[str, float]:
        return self.profile.importance


def _shown(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def decision(risk: np.ndarray, block: float, review: float) -> np.ndarray:
    return np.where(risk >= block, "block", np.where(risk >= review, "review", "approve"))


def fit(train: DataFrame, case: FraudCase, conf: FraudConf) -> FraudModel:
    """Fit both forests on the training rows (case features, `label`, `entity_id`)."""
    from sklearn.ensemble import IsolationForest

    enc = encoding(train, case)
    rows = train.select("entity_id", "label", *case.categorical, enc.column(case).alias(ENCODED))
    counts = {r["label"]: r["count"] for r in rows.groupBy("label").count().collect()}
    total, positives = sum(counts.values()), counts.get(1.0, 0)
    f = conf.forest
    balance = bool(f.get("balance_classes", True)) and 0 < positives < total
    weight = F.lit(1.0)
    if balance:
        w_pos, w_neg = total / (2.0 * positives), total / (2.0 * (total - positives))
        weight = F.when(F.col("label") == 1.0, F.lit(w_pos)).otherwise(F.lit(w_neg))
    forest = RandomForestClassifier(
        featuresCol="features",
        labelCol="label",
        weightCol="weight",
        numTrees=int(f["trees"]),
        maxDepth=int(f["max_depth"]),
        minInstancesPerNode=int(f["min_instances_per_node"]),
        seed=int(f["seed"]),
    ).fit(rows.select(array_to_vector(ENCODED).alias("features"), "label", weight.alias("weight")))
    importance = dict(zip(case.features, map(float, forest.featureImportances.toArray()), strict=True))

    i = conf.isolation_forest
    sample = rows
    if total > int(i["max_rows"]):
        share = int(i["max_rows"]) / total
        sample = rows.where(F.pmod(F.xxhash64("entity_id"), F.lit(1_000_000)) < F.lit(int(share * 1_000_000)))
    local = sample.select("entity_id", ENCODED, *case.categorical).orderBy("entity_id").toPandas()
    x = np.array(local[ENCODED].tolist(), dtype="float64").reshape(len(local), len(case.features))
    isolation = IsolationForest(n_estimators=int(i["trees"]), random_state=int(i["seed"])).fit(x)
    reference = np.sort(-isolation.score_samples(x))
    values = {c: np.sort(x[:, j]) for j, c in enumerate(case.numeric)}
    shares = {
        c: {str(k): float(v) for k, v in local[c].value_counts(normalize=True, dropna=False).items()}
        for c in case.categorical
    }
    return FraudModel(enc, forest, Profile(case, importance, isolation, reference, values, shares))


def score(rows: DataFrame, model: FraudModel, keep: Sequence[str], conf: FraudConf) -> DataFrame:
    """keep + rf_probability, anomaly_score, risk_score, decision and top_factors for each row (the case's
    features among its columns): the forest in Spark, then the Isolation Forest, risk and factors per partition."""
    case = model.case
    columns = list(dict.fromkeys([*keep, *case.features]))
    encoded = rows.select(*columns, model.encoding.column(case).alias(ENCODED))
    forest = model.forest.transform(encoded.withColumn("features", array_to_vector(ENCODED)))
    scored = forest.select(*columns, ENCODED, vector_to_array("probability")[1].alias("rf_probability"))
    fields = [scored.schema[c] for c in keep]
    out = StructType(
        [
            *fields,
            StructField("rf_probability", DoubleType()),
            StructField("anomaly_score", DoubleType()),
            StructField("risk_score", DoubleType()),
            StructField("decision", StringType()),
            StructField("top_factors", ArrayType(FACTOR)),
        ]
    )
    block, review, k, width = conf.block, conf.review, conf.top_factors, len(case.features)
    profile = model.profile

    def apply(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            x = np.array(batch[ENCODED].tolist(), dtype="float64").reshape(len(batch), width)
            result = batch[list(keep)].copy()
            rf = batch["rf_probability"].to_numpy(dtype="float64")
            anomaly = profile.anomaly(x) if len(batch) else np.empty(0)
            risk = (rf + anomaly) / 2
            result["rf_probability"] = rf
            result["anomaly_score"] = anomaly
            result["risk_score"] = risk
            result["decision"] = decision(risk, block, review)
            result["top_factors"] = profile.factors(batch, x, k) if len(batch) else []
            yield result

    return scored.mapInPandas(apply, out)


def average_precision(label: np.ndarray, score: np.ndarray) -> float:
    """Sum over the distinct scores, highest first, of (recall gained) x (precision at that score)."""
    if label.sum() == 0:
        return float("nan")
    order = np.argsort(-score, kind="stable")
    s, y = score[order], label[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    hits = np.cumsum(y)[last]
    precision, recall = hits / (last + 1), hits / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(label: np.ndarray, score: np.ndarray) -> float:
    """The probability a positive outranks a negative (ties count half): the Mann-Whitney U over both counts."""
    positives = int(label.sum())
    negatives = len(label) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[label == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def evaluate(label: np.ndarray, score: np.ndarray, flagged: np.ndarray | None) -> dict[str, float]:
    """Test-window metrics of one method: rows, positives, and with `flagged` (the method's decision) the flagged
    rows, true positives, precision and recall; PR-AUC (average precision) and ROC-AUC of its score."""
    label = label.astype("float64")
    out = {
        "rows": float(len(label)),
        "positives": float(label.sum()),
        "pr_auc": average_precision(label, score),
        "roc_auc": roc_auc(label, score),
    }
    if flagged is not None:
        hits = float(label[flagged].sum())
        n = float(flagged.sum())
        out.update(
            flagged=n,
            true_positives=hits,
            precision=hits / n if n else float("nan"),
            recall=hits / out["positives"] if out["positives"] else float("nan"),
        )
    return out
