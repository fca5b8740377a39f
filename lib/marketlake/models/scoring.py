"""Apply a model bundle to a Spark DataFrame: calibrated scores, SHAP reasons, risk bands and decisions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType, StringType, StructField, StructType

from marketlake.gold.common import first_match
from marketlake.models.bundle import ModelBundle, top_reasons
from marketlake.models.spec import ModelSpec

# Nullable throughout: Delta does not store NOT NULL constraints nested in arrays.
REASON = StructType(
    [StructField("feature", StringType()), StructField("contribution", DoubleType()), StructField("text", StringType())]
)


def apply_bundle(
    df: DataFrame,
    bundle: ModelBundle,
    keep: Sequence[str],
    reasons: Mapping[str, str] | None = None,
    contributions: bool = False,
) -> DataFrame:
    """df's `keep` columns with raw_score (booster probability) and score (calibrated); with `reasons` (feature ->
    text) also the top-3 reasons, with `contributions` also every feature's SHAP value. Runs per partition on the
    executors with the same numpy code as the registered pyfunc model."""
    fields = [df.schema[c] for c in keep]
    out = [*fields, StructField("raw_score", DoubleType()), StructField("score", DoubleType())]
    if reasons is not None:
        out.append(StructField("reasons", ArrayType(REASON)))
    if contributions:
        out.append(StructField("contributions", ArrayType(DoubleType())))
    inputs = list(dict.fromkeys([*keep, *bundle.features]))
    explain = reasons is not None or contributions
    features = list(bundle.features)

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            raw, contribs = bundle.predict(bundle.matrix(batch), contributions=explain)
            result = batch[list(keep)].copy()
            result["raw_score"] = raw
            result["score"] = bundle.calibration.apply(raw)
            if reasons is not None and contribs is not None:
                result["reasons"] = top_reasons(contribs, features, reasons)
            if contributions and contribs is not None:
                result["contributions"] = [list(map(float, row)) for row in contribs]
            yield result

    return df.select(*inputs).mapInPandas(score, StructType(out))


def risk_band(score: Column, bands: Sequence[tuple[str, float]], default: str) -> Column:
    """The first band whose lower bound the score reaches (bands listed from the highest down)."""
    return first_match([(name, score >= F.lit(low)) for name, low in bands], default)


def decisions(scored: DataFrame, spec: ModelSpec) -> DataFrame:
    """The intervention for each scored row: the first policy rule whose segment condition holds and whose score
    range contains the score, else the policy default."""
    default = spec.policy_default

    def pick(attribute: str) -> Column:
        rules = [
            (getattr(r, attribute), F.expr(r.when) & F.col("score").between(r.min_score, r.max_score))
            for r in spec.policy
        ]
        return first_match(rules, default[attribute])

    return scored.select(
        *spec.keys,
        spec.date,
        "model_name",
        "model_version",
        "score",
        "risk_band",
        pick("segment").alias("segment"),
        pick("intervention").alias("intervention"),
        pick("channel").alias("channel"),
        pick("escalation").alias("escalation"),
    )
