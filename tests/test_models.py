"""Models on gold: time split, the xgboost.spark model against its logistic baseline on data whose causal structure
is known, distributed vs single-node agreement, registry versions and aliases, scores with reasons, drift."""

from __future__ import annotations

import dataclasses
import json
import os
import site
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from mlflow import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sklearn.metrics import roc_auc_score

from marketlake.catalogue import CatalogueEntry, write_catalogue
from marketlake.config import CONF_DIR, Settings
from marketlake.errors import InputError
from marketlake.models import registry
from marketlake.models.bundle import Calibration, top_reasons
from marketlake.models.drift import psi
from marketlake.models.features import time_windows
from marketlake.models.metrics import at_k, calibration_table, expected_calibration_error
from marketlake.models.run import TrainRun, read_gold, score_range, train_and_register, training_report
from marketlake.models.spec import DRIFT_TABLE, IMPORTANCE_TABLE, load_models
from marketlake.models.train import fit_single_node, fit_xgboost
from marketlake.tables import create_table_if_missing, read_delta
from tests import notebooks
from tests.conftest import REPO, run_job
from tests.synthetic import fit_inputs, purchase_outcomes_frame

CONF = load_models(CONF_DIR)
REGRET = CONF.spec("regret")
DAYS = 40


def test_time_windows_split_by_date_and_refuse_a_short_history() -> None:
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(20)]
    windows = time_windows(days, REGRET)
    assert windows.train == (date(2026, 3, 1), date(2026, 3, 6))
    assert windows.validation == (date(2026, 3, 7), date(2026, 3, 13))
    assert windows.test == (date(2026, 3, 14), date(2026, 3, 20))
    with pytest.raises(InputError, match="needs more than validation 7 \\+ test 7 days"):
        time_windows(days[:14], REGRET)
    with pytest.raises(InputError, match="no rows with a complete label"):
        time_windows([], REGRET)


def test_top_reasons_are_the_three_largest_contributions_with_their_text() -> None:
    contribs = np.array([[0.1, -0.5, 0.3, 0.2], [-0.1, -0.2, -0.3, -0.05]])
    texts = {"a": "A", "b": "B", "c": "C", "d": "D"}
    got = top_reasons(contribs, ["a", "b", "c", "d"], texts)
    assert [[r["feature"] for r in row] for row in got] == [["c", "d", "a"], ["d", "a", "b"]]
    assert [r["text"] for r in got[0]] == ["C", "D", "A"]


def test_calibration_is_linear_between_points_and_flat_beyond() -> None:
    cal = Calibration((0.2, 0.4, 0.8), (0.0, 0.5, 1.0))
    np.testing.assert_allclose(cal.apply(np.array([0.1, 0.3, 0.6, 0.9])), [0.0, 0.25, 0.75, 1.0])


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    expected = {"-1": 0.1, "0": 0.45, "1": 0.45}
    assert psi(expected, expected) == pytest.approx(0.0)
    assert psi(expected, {"-1": 0.1, "0": 0.1, "1": 0.8}) > CONF.psi_threshold
    assert psi(expected, {"-1": 0.1, "0": 0.5, "1": 0.4}) < CONF.psi_threshold


def test_precision_recall_at_k_and_calibration_error(spark: SparkSession) -> None:
    d1, d2 = date(2026, 3, 1), date(2026, 3, 2)
    rows = [
        (d1, 0.9, 0.9, 1.0),
        (d1, 0.8, 0.8, 0.0),
        (d1, 0.1, 0.1, 1.0),
        (d2, 0.7, 0.7, 1.0),
        (d2, 0.2, 0.2, 0.0),
    ]
    df = spark.createDataFrame(rows, "day date, raw_score double, score double, label double")
    # K = 2 per day: day 1 picks 0.9 (hit) and 0.8, day 2 picks both rows (one hit): 2 hits of 4 picks, 3 positives.
    assert at_k(df, "day", 2) == {
        "interventions": 4.0,
        "hits_at_k": 2.0,
        "precision_at_k": 0.5,
        "recall_at_k": pytest.approx(2 / 3),
    }
    table = calibration_table(df)
    assert [(r["bin"], r["rows"]) for r in table] == [(1, 1), (2, 1), (7, 1), (8, 1), (9, 1)]
    # Per row |score - label|: 0.1, 0.8, 0.9, 0.3, 0.2 -> mean 0.46.
    assert expected_calibration_error(table) == pytest.approx(0.46)


@pytest.fixture(scope="module")
def lake(
    spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory, tracking_server: str
) -> Iterator[tuple[Settings, str]]:
    """A lakehouse of its own with the synthetic purchase outcomes as a gold table in a fresh database, tracked on
    the MLflow server (MLFLOW_TRACKING_URI, as a user points every job at a team server)."""
    root = tmp_path_factory.mktemp("models")
    db = f"t_{uuid.uuid4().hex[:10]}"
    spark.sql(f"CREATE DATABASE {db} LOCATION '{root / db}'")
    frame = purchase_outcomes_frame(spark, 12_000, DAYS, seed=1)
    create_table_if_missing(spark, f"{db}.{REGRET.table}", frame.schema, [REGRET.date])
    frame.write.format("delta").mode("append").save(str(root / db / REGRET.table))
    local = dataclasses.replace(settings, lakehouse_root=root)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", tracking_server)
        assert registry.configure(local, CONF) == tracking_server
        yield local, db
    spark.sql(f"DROP DATABASE IF EXISTS {db} CASCADE")


@pytest.fixture(scope="module")
def versions(spark: SparkSession, lake: tuple[Settings, str]) -> dict[int, TrainRun]:
    """Two registered versions of the regret model: v1 with the conf's parameters, v2 with shallower trees."""
    settings, db = lake
    first = train_and_register(spark, settings, CONF, REGRET, "champion", db)
    shallow = dataclasses.replace(CONF, xgboost={**CONF.xgboost, "max_depth": 2, "learning_rate": 0.2})
    second = train_and_register(spark, settings, shallow, REGRET, "champion", db)
    return {first.registered.version: first, second.registered.version: second}


def test_regret_model_beats_the_logistic_baseline_and_calibrates(versions: dict[int, TrainRun]) -> None:
    run = versions[min(versions)]
    model, baseline = run.trained.metrics["xgboost"], run.trained.metrics["baseline"]
    assert model["pr_auc"] > baseline["pr_auc"] + 0.01, (model, baseline)
    assert model["ece"] < model["ece_uncalibrated"] / 2
    assert model["rows"] == baseline["rows"] == run.trained.rows["test"]["rows"]
    assert run.trained.windows.test[1] == date(2026, 3, 1) + timedelta(days=DAYS - 1)
    assert set(run.trained.importance) == set(REGRET.features)
    assert next(iter(run.trained.importance)) in {"velocity_x_discount", "discount_pct"}


def test_training_again_on_the_same_data_and_parameters_registers_nothing(
    spark: SparkSession, lake: tuple[Settings, str], versions: dict[int, TrainRun]
) -> None:
    settings, db = lake
    before = MlflowClient().search_model_versions(f"name = '{REGRET.registered_name}'")
    again = train_and_register(spark, settings, CONF, REGRET, "champion", db)
    assert again.trained is None and again.registered.version == min(versions)
    assert len(MlflowClient().search_model_versions(f"name = '{REGRET.registered_name}'")) == len(before)
    assert "unchanged" in training_report(again, "sqlite://")
    # Reusing a version moves no alias (champion still names the newest version the fixture registered).
    assert int(MlflowClient().get_model_version_by_alias(REGRET.registered_name, "champion").version) == max(versions)


def test_training_logs_data_version_windows_metrics_and_the_model(versions: dict[int, TrainRun]) -> None:
    run = versions[min(versions)]
    logged = mlflow.get_run(run.registered.run_id).data
    assert logged.params[f"data_version.gold.{REGRET.table}"] == str(run.data_version)
    assert logged.params["test_window"] == f"{run.trained.windows.test[0]}..{run.trained.windows.test[1]}"
    assert logged.metrics["test_pr_auc"] == pytest.approx(run.trained.metrics["xgboost"]["pr_auc"])
    assert logged.metrics["baseline_test_pr_auc"] == pytest.approx(run.trained.metrics["baseline"]["pr_auc"])
    artifacts = {a.path for a in MlflowClient().list_artifacts(run.registered.run_id)}
    assert {"calibration.png", "features.json", "feature_importance.json"} <= artifacts
    model = MlflowClient().get_model_version(REGRET.registered_name, str(run.registered.version))
    assert model.run_id == run.registered.run_id


def _scores(spark: SparkSession, settings: Settings, db: str, day: date) -> DataFrame:
    location = settings.database_location(db) / REGRET.scores_table
    return read_delta(spark, str(location)).where(F.col(REGRET.date) == day)


def test_every_score_row_has_a_registered_version_and_three_reasons(
    spark: SparkSession, lake: tuple[Settings, str], versions: dict[int, TrainRun]
) -> None:
    settings, db = lake
    day = date(2026, 3, 1) + timedelta(days=DAYS - 1)
    run = score_range(spark, settings, CONF, REGRET, day, day, "champion", None, db)
    assert run.version == max(versions) and run.written
    gold, _ = read_gold(spark, settings, REGRET, db)
    scores = _scores(spark, settings, db, day)
    assert scores.count() == gold.where(F.col(REGRET.date) == day).count() == run.rows
    client = MlflowClient()
    for (version,) in scores.select("model_version").distinct().collect():
        assert str(client.get_model_version(REGRET.registered_name, str(version)).version) == str(version)
    reasons = scores.select("reasons").collect()
    assert all(len(r.reasons) == 3 for r in reasons)
    assert all(x.text == REGRET.reasons[x.feature] for r in reasons for x in r.reasons)
    assert all(r.reasons[0].contribution >= r.reasons[1].contribution >= r.reasons[2].contribution for r in reasons)
    assert scores.where("score < 0 OR score > 1 OR risk_band IS NULL").isEmpty()
    decided = read_delta(spark, str(settings.database_location(db) / REGRET.decisions_table))
    assert decided.where(F.col(REGRET.date) == day).count() == run.rows
    drift = read_delta(spark, str(settings.database_location(db) / "model_drift")).where(F.col("date") == day)
    assert sorted(r.feature for r in drift.collect()) == sorted(REGRET.features)
    again = score_range(spark, settings, CONF, REGRET, day, day, "champion", None, db)
    assert not again.written


def test_alias_rollback_reproduces_the_earlier_versions_scores(
    spark: SparkSession, lake: tuple[Settings, str], versions: dict[int, TrainRun]
) -> None:
    settings, db = lake
    day = date(2026, 3, 1) + timedelta(days=DAYS - 2)
    old, new = min(versions), max(versions)
    columns = [*REGRET.keys, "model_version", "score", "risk_band", "reasons"]
    score_range(spark, settings, CONF, REGRET, day, day, None, old, db)
    by_old = _scores(spark, settings, db, day).select(*columns).localCheckpoint()
    registry.set_alias(REGRET.registered_name, "champion", new)
    score_range(spark, settings, CONF, REGRET, day, day, "champion", None, db)
    assert _scores(spark, settings, db, day).select("model_version").distinct().collect()[0][0] == new
    registry.set_alias(REGRET.registered_name, "champion", old)
    rolled_back = score_range(spark, settings, CONF, REGRET, day, day, "champion", None, db)
    assert rolled_back.version == old
    assert_df_equality(_scores(spark, settings, db, day).select(*columns), by_old, ignore_row_order=True)


def test_registered_pyfunc_model_scores_like_spark(
    spark: SparkSession, lake: tuple[Settings, str], versions: dict[int, TrainRun]
) -> None:
    settings, db = lake
    day = date(2026, 3, 1) + timedelta(days=DAYS - 1)
    version = max(versions)
    score_range(spark, settings, CONF, REGRET, day, day, None, version, db)
    gold, _ = read_gold(spark, settings, REGRET, db)
    rows = gold.where(F.col(REGRET.date) == day).select(*REGRET.keys, *REGRET.features).toPandas()
    pyfunc = mlflow.pyfunc.load_model(f"models:/{REGRET.registered_name}/{version}")
    # The signature's contract: numeric features as doubles (nulls allowed), categoricals as strings.
    features = rows[list(REGRET.features)].astype({c: "float64" for c in REGRET.numeric})
    rows["expected"] = pyfunc.predict(features)["score"].to_numpy()
    spark_scores = _scores(spark, settings, db, day).select(*REGRET.keys, "score").toPandas()
    merged = rows.merge(spark_scores, on=list(REGRET.keys))
    assert len(merged) == len(rows)
    np.testing.assert_allclose(merged["score"], merged["expected"], rtol=0, atol=1e-9)


# Run with `python -I -S`: no PYTHONPATH, no user site, no current directory and no site processing, so the .pth
# file of marketlake's editable install (which puts lib/ on sys.path) never runs. argv[1] names the site-packages
# directories to put back as plain sys.path entries (their .pth files stay unread), argv[2] the model URI, argv[3]
# the input rows and argv[4] the output file.
CLEAN_LOAD = """
import importlib.util, json, sys
sys.path.extend(json.loads(sys.argv[1]))
assert importlib.util.find_spec("marketlake") is None, "marketlake is importable"
import mlflow, pandas
model = mlflow.pyfunc.load_model(sys.argv[2])
model.predict(pandas.read_parquet(sys.argv[3])).to_parquet(sys.argv[4])
print(sys.modules["marketlake.models.bundle"].__file__)
"""


def test_registered_model_loads_and_scores_in_a_process_without_marketlake(
    spark: SparkSession, lake: tuple[Settings, str], versions: dict[int, TrainRun], tmp_path: Path
) -> None:
    settings, db = lake
    uri = f"models:/{REGRET.registered_name}/{max(versions)}"
    gold, _ = read_gold(spark, settings, REGRET, db)
    rows = gold.orderBy(*REGRET.keys).limit(40).select(*REGRET.features).toPandas()
    features = rows.astype({c: "float64" for c in REGRET.numeric})
    assert features.isna().any().any(), "the rows should include missing values"
    features.to_parquet(tmp_path / "rows.parquet")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MLFLOW_TRACKING_URI"] = env["MLFLOW_REGISTRY_URI"] = mlflow.get_tracking_uri()
    args = [json.dumps(site.getsitepackages()), uri, str(tmp_path / "rows.parquet"), str(tmp_path / "scores.parquet")]
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CLEAN_LOAD, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    # marketlake came from the code logged with the model, not from the source tree.
    loaded_from = Path(done.stdout.strip().splitlines()[-1])
    assert loaded_from.parts[-4:] == ("code", "marketlake", "models", "bundle.py")
    assert not loaded_from.is_relative_to(REPO)
    clean = pd.read_parquet(tmp_path / "scores.parquet")
    here = mlflow.pyfunc.load_model(uri).predict(features)
    assert len(clean) == len(here) == len(rows)
    for column in ("raw_score", "score"):
        np.testing.assert_allclose(clean[column], here[column], rtol=0, atol=1e-9)


def test_the_models_notebook_runs_over_this_lakes_scored_days(
    spark: SparkSession, lake: tuple[Settings, str], versions: dict[int, TrainRun]
) -> None:
    """notebooks/4_models.ipynb executes headless over this lake: its last 14 days (the newest version's validation
    and test windows) scored with that version, the tables named gold.* in a catalogue manifest as the jobs write it,
    the training windows read from the version's MLflow run. It draws the regret model's five plots."""
    settings, db = lake
    last = date(2026, 3, 1) + timedelta(days=DAYS - 1)
    score_range(spark, settings, CONF, REGRET, last - timedelta(days=13), last, None, max(versions), db)
    tables = (REGRET.table, REGRET.scores_table, REGRET.decisions_table, DRIFT_TABLE, IMPORTANCE_TABLE)
    location = settings.database_location(db)
    entries = [CatalogueEntry(f"gold.{t}", str(location / t), "delta", "EXTERNAL") for t in tables]
    write_catalogue(settings.lakehouse_root, entries)
    executed = notebooks.execute(notebooks.NOTEBOOKS / "4_models.ipynb", settings.lakehouse_root)
    assert notebooks.figures(executed) == 5


def test_two_workers_one_worker_and_single_node_xgboost_agree(spark: SparkSession) -> None:
    f = fit_inputs(purchase_outcomes_frame(spark, 6_000, 30, seed=3), REGRET, CONF)
    x, y = f.x, f.y
    boosters = {
        "spark_2_workers": fit_xgboost(f.data, REGRET, f.levels, f.params, 2)[0],
        "spark_1_worker": fit_xgboost(f.data, REGRET, f.levels, f.params, 1)[0],
        "single_node": fit_single_node(
            x["train"], y["train"], x["validation"], y["validation"], f.params, REGRET.features
        )[0],
    }
    auc = {name: roc_auc_score(y["test"], f.bundle(b).predict(x["test"])[0]) for name, b in boosters.items()}
    assert max(auc.values()) - min(auc.values()) < 0.01, auc
    assert min(auc.values()) > 0.6, auc


def test_user_errors_are_one_line(tmp_path: Path, lake: tuple[Settings, str]) -> None:
    env = {"MARKETLAKE_LAKEHOUSE": str(tmp_path), "MLFLOW_TRACKING_URI": ""}  # a fresh, empty registry
    bad_date = run_job("score.py", "--model", "regret", "--date", "2026-02-30", env=env, check=False)
    assert bad_date.returncode == 2 and bad_date.stderr.strip().splitlines()[-1].startswith("error: --date")
    unknown = run_job("train.py", "--model", "nope", env=env, check=False)
    assert unknown.returncode == 2 and "unknown model 'nope'" in unknown.stderr.strip().splitlines()[-1]
    with pytest.raises(InputError, match=r"has no alias @champion in the registry .*train it first"):
        registry.resolve("marketlake_not_trained", "champion")
    with pytest.raises(InputError, match="has no version 99"):
        registry.resolve(REGRET.registered_name, None, 99)
