"""Apply a model bundle to a Spark DataFrame: calibrated scores, SHAP reasons, risk bands and decisions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType, StringType, StructField, StructType

from marketlake.gold.common import first_match
from marketlake.models.bundle import ModelBundle, top_reasons
from marketlake.models.spec import ModelSpec, PolicyRule

# The customer's marketing consent (silver.commerce_customers); marketing policy rules apply only where it is true.
CONSENT = "marketing_opt_in"

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


def with_consent(scored: DataFrame, consent: DataFrame | None, key: str) -> DataFrame:
    """scored with each row's current `marketing_opt_in` from the consent table (one row per key), null when
    unknown: a key the table does not hold, or no table at all (consent None)."""
    if consent is None:
        return scored.withColumn(CONSENT, F.lit(None).cast("boolean"))
    return scored.join(consent.select(key, CONSENT), key, "left")


def decisions(scored: DataFrame, spec: ModelSpec, keep: Sequence[str] = ()) -> DataFrame:
    """The intervention for each scored row: the first policy rule whose segment condition holds, whose score
    range contains the score and, for a marketing rule, whose customer consented to marketing, else the policy
    default. Consent is `marketing_opt_in` true; false or unknown (null) is no consent, so such a row falls
    through to the next non-marketing rule or the default, and `suppressed_by_consent` says that the first rule
    it met was a marketing one it could not have. `keep` names further columns of scored to keep after the keys."""
    default = spec.policy_default
    marketing = any(r.marketing for r in spec.policy)
    if marketing and CONSENT not in scored.columns:
        raise ValueError(f"model {spec.name}: the policy has marketing rules but the rows carry no {CONSENT}")
    consented = F.coalesce(F.col(CONSENT), F.lit(False)) if marketing else F.lit(True)

    def holds(rule: PolicyRule) -> Column:
        return F.expr(rule.when) & F.col("score").between(rule.min_score, rule.max_score)

    def pick(attribute: str) -> Column:
        rules = [(getattr(r, attribute), holds(r) & consented if r.marketing else holds(r)) for r in spec.policy]
        return first_match(rules, default[attribute])

    first_kind = first_match([("marketing" if r.marketing else "service", holds(r)) for r in spec.policy], None)
    suppressed = F.coalesce(first_kind == F.lit("marketing"), F.lit(False)) & ~consented
    return scored.select(
        *spec.keys,
        *[c for c in keep if c not in spec.keys],
        spec.date,
        "model_name",
        "model_version",
        "score",
        "risk_band",
        pick("segment").alias("segment"),
        pick("intervention").alias("intervention"),
        pick("channel").alias("channel"),
        pick("escalation").alias("escalation"),
        suppressed.alias("suppressed_by_consent"),
    )
