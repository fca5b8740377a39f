"""Model training and scoring at two data sizes (make bench; not part of make test): SparkXGBClassifier on 2
workers against single-node xgboost on the same rows and parameters (training time and test ROC-AUC), and batch
scoring throughput (calibrated score + SHAP top-3 reasons, rows/s). Synthetic purchase outcomes with the regret
mechanism of the generator (tests/synthetic.py). Results are printed as JSON lines and appended to
lakehouse/bench/models.jsonl. Sizes: BENCH_MODEL_ROWS (default "50000,200000")."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession
from sklearn.metrics import roc_auc_score

from marketlake.config import CONF_DIR, load_settings
from marketlake.models.scoring import apply_bundle
from marketlake.models.spec import load_models
from marketlake.models.train import fit_single_node, fit_xgboost
from marketlake.session import get_spark
from tests.conftest import REPO
from tests.synthetic import fit_inputs, purchase_outcomes_frame

SIZES = [int(s) for s in os.environ.get("BENCH_MODEL_ROWS", "50000,200000").split(",")]
CONF = load_models(CONF_DIR)
REGRET = CONF.spec("regret")
BENCH_CONF = {"spark.driver.memory": "6g", "spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false"}


@pytest.fixture(scope="module")
def bench_spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    os.environ["MARKETLAKE_LAKEHOUSE"] = str(tmp_path_factory.mktemp("models-lh"))
    session = get_spark(load_settings("local"), "marketlake-bench-models", "local[2]", BENCH_CONF)
    yield session
    session.stop()


@pytest.mark.parametrize("rows", SIZES)
def test_spark_xgboost_vs_single_node_and_scoring_throughput(bench_spark: SparkSession, rows: int) -> None:
    spark = bench_spark
    df = purchase_outcomes_frame(spark, rows, 60, seed=5).repartition(4).localCheckpoint()
    f = fit_inputs(df, REGRET, CONF)
    x, y, params, bundle = f.x, f.y, f.params, f.bundle
    result: dict[str, object] = {"rows": rows, "train_rows": len(y["train"])}
    started = time.perf_counter()
    spark_booster, spark_trees = fit_xgboost(f.data, REGRET, f.levels, params, 2)
    spark_s = time.perf_counter() - started
    started = time.perf_counter()
    local_booster, local_trees = fit_single_node(
        x["train"], y["train"], x["validation"], y["validation"], params, REGRET.features
    )
    local_s = time.perf_counter() - started
    result["fit_s"] = {"spark_2w": round(spark_s, 2), "single_node": round(local_s, 2)}
    result["fit_time_ratio_spark_over_single"] = round(spark_s / local_s, 2)
    result["trees"] = {"spark_2w": spark_trees, "single_node": local_trees}
    aucs = {
        "spark_2w": round(roc_auc_score(y["test"], bundle(spark_booster).predict(x["test"])[0]), 4),
        "single_node": round(roc_auc_score(y["test"], bundle(local_booster).predict(x["test"])[0]), 4),
    }
    result["test_auc"] = aucs
    scored = apply_bundle(df, bundle(spark_booster), [*REGRET.keys], reasons=REGRET.reasons)
    started = time.perf_counter()
    scored.write.format("noop").mode("overwrite").save()
    seconds = time.perf_counter() - started
    result["scoring_s"] = round(seconds, 2)
    result["scoring_rows_per_s"] = round(rows / seconds)
    line = json.dumps(result)
    print(line)
    out = REPO / "lakehouse" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    with (out / "models.jsonl").open("a") as f:
        f.write(line + "\n")
    assert abs(aucs["spark_2w"] - aucs["single_node"]) < 0.02
