"""What jobs/fraud.py does per case: read the case's rows, train as of the range's first day, evaluate on the
time-split test window against the rule baseline, track the run in MLflow, and replace the range's days of
gold.fraud_scores and the run's rows of gold.fraud_evaluation."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from marketlake.config import Settings
from marketlake.errors import InputError
from marketlake.fraud import features
from marketlake.fraud.model import FraudModel, evaluate, fit, score
from marketlake.fraud.spec import FraudCase, FraudConf
from marketlake.gold.build import read_inputs, silver_path
from marketlake.gold.common import between
from marketlake.gold.spec import GoldConf, GoldSpec, days_from
from marketlake.models.registry import FINGERPRINT
from marketlake.models.run import existing_gold, missing_dates, write_gold
from marketlake.session import checkpoint
from marketlake.tables import current_version, read_delta

log = logging.getLogger(__name__)

SCORES = GoldSpec(
    "fraud_scores",
    "date",
    "date, fraud_case, entity_id",
    ("exchange_wallet_transactions", "fact_trend_purchase_outcomes"),
    "fraud risk per exchange withdrawal and shop order line: random-forest probability, Isolation Forest anomaly "
    "score, their mean (risk), the decision (approve / review / block) and the top factors",
)
EVALUATION = GoldSpec(
    "fraud_evaluation",
    "trained_as_of",
    "trained_as_of, fraud_case, method, threshold",
    ("fraud_scores",),
    "each fraud model's time-split test: precision and recall at its thresholds, PR-AUC and ROC-AUC, next to the "
    "rule baseline's",
)
EVALUATION_DDL = (
    "trained_as_of date, fraud_case string, method string, threshold double, train_from date, train_until date, "
    "test_from date, test_until date, train_rows long, train_positives long, rows long, positives long, "
    "flagged long, true_positives long, precision double, recall double, pr_auc double, roc_auc double, "
    "mlflow_run_id string"
)
# (method, threshold, metrics) of one method on the test window.
Tested = list[tuple[str, float | None, dict[str, float]]]
KEEP = ("date", "occurred_at", "entity_id", "user_id", "customer_id", "order_id", "rule_flag")
EXCHANGE = GoldSpec(
    "fraud_scores",
    "date",
    "",
    ("exchange_wallet_transactions", "exchange_trades", "exchange_users", "exchange_logins"),
    "",
)
COMMERCE = GoldSpec("fraud_scores", "date", "", ("commerce_returns",), "")


@dataclass(frozen=True)
class Windows:
    """Rows dated fit_from..fit_until train both forests; test_from..test_until (the last test_days whose labels
    were final before the scored range) evaluate them."""

    fit_from: date
    fit_until: date
    test_from: date
    test_until: date

    @classmethod
    def before(cls, start: date, case: FraudCase, history_days: int) -> Windows:
        until = start - timedelta(days=case.label_days + 1)
        test_from = until - timedelta(days=case.test_days - 1)
        return cls(start - timedelta(days=history_days), test_from - timedelta(days=1), test_from, until)


@dataclass(frozen=True)
class CaseRun:
    case: str
    windows: Windows
    rows: int
    written: bool
    decisions: dict[str, int]
    evaluation: list[dict[str, Any]]
    run_id: str


def case_rows(
    spark: SparkSession,
    settings: Settings,
    gold: GoldConf,
    case: FraudCase,
    w: Windows,
    start: date,
    end: date,
    database: str = "gold",
) -> tuple[DataFrame, dict[str, int]]:
    """The case's rows dated w.fit_from..end (with the history their features need) and the Delta versions read.
    Silver must hold start..end; the training days before start are taken as far back as it holds them."""
    history = (start - w.fit_from).days
    if case.name == "exchange_withdrawal":
        needs = "max(30, exchange.price_lookback_days, exchange.compliance.rapid_hours // 24 + 1)"
        spec = dataclasses.replace(EXCHANGE, lookback=history + days_from(needs, gold.params))
        inputs = read_inputs(spark, settings, spec, start, end)
        versions = {f"silver.{t}": current_version(spark, silver_path(settings, t)) for t in spec.inputs}
        return features.exchange_withdrawals(inputs, gold.params, w.fit_from, end), versions
    if case.name == "commerce_order_line":
        facts_at = existing_gold(spark, settings, "fact_trend_purchase_outcomes", database, f"fraud case {case.name}")
        spec = dataclasses.replace(COMMERCE, lookback=history, lookahead=case.label_days + 1)
        inputs = read_inputs(spark, settings, spec, start, end)
        versions = {
            "gold.fact_trend_purchase_outcomes": current_version(spark, facts_at),
            "silver.commerce_returns": current_version(spark, silver_path(settings, "commerce_returns")),
        }
        facts = read_delta(spark, facts_at, versions["gold.fact_trend_purchase_outcomes"])
        missing = missing_dates(facts.where(between("purchase_date", start, end)), "purchase_date", start, end)
        if missing:
            raise InputError(
                f"fraud case {case.name}: gold.fact_trend_purchase_outcomes has no purchases on {len(missing)} of the "
                f"days {start}..{end} (first {missing[0]}); build them first: jobs/gold_build.py --tables "
                f"fact_trend_purchase_outcomes --start {start} --end {end}"
            )
        returns = inputs["commerce_returns"]
        rows = features.commerce_lines(facts, returns, gold.params, w.fit_from, end, case.label_days, case.rule)
        return rows, versions
    raise InputError(f"fraud case {case.name} has no feature builder (lib/marketlake/fraud/features.py)")


def fingerprint(
    case: FraudCase, conf: FraudConf, params: Mapping[str, Any], start: date, versions: dict[str, int]
) -> str:
    """What a training depends on: the case, the fraud conf, gold's parameters (compliance thresholds, prices,
    return kinds), the as-of date and the Delta versions read."""
    inputs = {
        "gold": dict(params),
        "case": {k: dict(v) if isinstance(v, Mapping) else v for k, v in vars(case).items()},
        "conf": {k: dict(v) if isinstance(v, Mapping) else v for k, v in vars(conf).items() if k != "cases"},
        "trained_as_of": str(start),
        "data": versions,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _test_metrics(test: DataFrame, conf: FraudConf) -> Tested:
    """(method, threshold, metrics) on the test rows: the risk score at block and at review, the forest alone at
    0.5, the Isolation Forest's score (no decision of its own) and the rule."""
    t = test.select("label", "rf_probability", "anomaly_score", "risk_score", "rule_flag").toPandas()
    y = t["label"].to_numpy(dtype="float64")
    risk, rf = t["risk_score"].to_numpy(dtype="float64"), t["rf_probability"].to_numpy(dtype="float64")
    rule = t["rule_flag"].to_numpy(dtype=bool)
    return [
        ("risk", conf.block, evaluate(y, risk, risk >= conf.block)),
        ("risk", conf.review, evaluate(y, risk, risk >= conf.review)),
        ("random_forest", 0.5, evaluate(y, rf, rf >= 0.5)),
        ("isolation_forest", None, evaluate(y, t["anomaly_score"].to_numpy(dtype="float64"), None)),
        ("rule", None, evaluate(y, rule.astype("float64"), rule)),
    ]


def _tracked(
    case: FraudCase,
    conf: FraudConf,
    windows: Windows,
    start: date,
    fp: str,
    model: FraudModel,
    train_counts: tuple[int, int],
    metrics: Tested,
) -> str:
    """The MLflow run of this training (reused when one with the same fingerprint exists): parameters, windows,
    test metrics per method, feature importance and the forest's trees as text."""
    import mlflow

    found = mlflow.search_runs(filter_string=f"tags.`{FINGERPRINT}` = '{fp}'", max_results=1, output_format="list")
    if found:
        return str(found[0].info.run_id)
    with mlflow.start_run(run_name=f"fraud-{case.name}-{start}") as run:
        mlflow.set_tags({"model": f"fraud_{case.name}", FINGERPRINT: fp})
        mlflow.log_params({f"forest_{k}": v for k, v in conf.forest.items()})
        mlflow.log_params({f"isolation_forest_{k}": v for k, v in conf.isolation_forest.items()})
        mlflow.log_params({"block": conf.block, "review": conf.review, "trained_as_of": str(start)})
        mlflow.log_params({k: str(v) for k, v in dataclasses.asdict(windows).items()})
        mlflow.log_params({"train_rows": train_counts[0], "train_positives": train_counts[1]})
        for method, threshold, values in metrics:
            prefix = f"test_{method}" + (f"_at_{threshold:g}" if threshold is not None else "")
            mlflow.log_metrics({f"{prefix}_{k}": v for k, v in values.items() if not np.isnan(v)})
        mlflow.log_dict({"numeric": list(case.numeric), "categorical": list(case.categorical)}, "features.json")
        mlflow.log_dict(dict(model.importance), "feature_importance.json")
        mlflow.log_text(model.forest.toDebugString, "random_forest.txt")
        return str(run.info.run_id)


def run_case(
    spark: SparkSession,
    settings: Settings,
    gold: GoldConf,
    conf: FraudConf,
    case: FraudCase,
    start: date,
    end: date,
    database: str = "gold",
) -> CaseRun:
    """Train the case as of start, evaluate it against the rule on the test window, and score start..end."""
    w = Windows.before(start, case, conf.history_days)
    rows, versions = case_rows(spark, settings, gold, case, w, start, end, database)
    rows = checkpoint(rows)
    fit_rows = rows.where(between("date", w.fit_from, w.fit_until))
    counts = fit_rows.agg(F.count(F.lit(1)), F.sum("label")).first()
    n_fit, positives = int(counts[0]), int(counts[1] or 0)
    test_rows = rows.where(between("date", w.test_from, w.test_until))
    n_test = test_rows.count()
    if not 0 < positives < n_fit or n_test == 0:
        raise InputError(
            f"fraud case {case.name} as of {start}: training needs both labels on {w.fit_from}..{w.fit_until} "
            f"({positives} fraud cases in {n_fit} rows) and test rows on {w.test_from}..{w.test_until} ({n_test}); "
            f"labels take {case.label_days} days to become final, so build the data further back or score later days"
        )
    model = fit(fit_rows, case, conf)
    tested = _test_metrics(score(test_rows, model, ["label", "rule_flag"], conf), conf)
    fp = fingerprint(case, conf, gold.params, start, versions)
    run_id = _tracked(case, conf, w, start, fp, model, (n_fit, positives), tested)
    scored = score(rows.where(between("date", start, end)), model, list(KEEP), conf).select(
        "date",
        F.lit(case.name).alias("fraud_case"),
        *KEEP[1:],
        "rf_probability",
        "anomaly_score",
        "risk_score",
        "decision",
        "top_factors",
        F.lit(start).alias("trained_as_of"),
        F.lit(run_id).alias("mlflow_run_id"),
    )
    scored = checkpoint(scored)
    n, written = write_gold(spark, settings, database, scored, SCORES, start, end, f"fraud_case = '{case.name}'")
    decisions = {r["decision"]: int(r["count"]) for r in scored.groupBy("decision").count().collect()}
    evaluation = [
        {
            "trained_as_of": start, "fraud_case": case.name, "method": method, "threshold": threshold,
            "train_from": w.fit_from, "train_until": w.fit_until, "test_from": w.test_from, "test_until": w.test_until,
            "train_rows": n_fit, "train_positives": positives,
            "rows": int(m["rows"]), "positives": int(m["positives"]),
            "flagged": int(m["flagged"]) if "flagged" in m else None,
            "true_positives": int(m["true_positives"]) if "true_positives" in m else None,
            "precision": _number(m.get("precision")), "recall": _number(m.get("recall")),
            "pr_auc": _number(m["pr_auc"]), "roc_auc": _number(m["roc_auc"]), "mlflow_run_id": run_id,
        }
        for method, threshold, m in tested
    ]  # fmt: skip
    frame = spark.createDataFrame([tuple(r.values()) for r in evaluation], EVALUATION_DDL)
    write_gold(spark, settings, database, frame, EVALUATION, start, start, f"fraud_case = '{case.name}'")
    log.info("fraud %s as of %s: %d rows scored (%s)", case.name, start, n, "written" if written else "unchanged")
    return CaseRun(case.name, w, n, written, decisions, evaluation, run_id)


def _number(value: float | None) -> float | None:
    return None if value is None or np.isnan(value) else float(value)
