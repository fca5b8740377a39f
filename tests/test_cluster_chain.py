"""The whole chain on a real cluster over real HDFS against the same chain in local mode.

Cluster: every job submitted by spark-submit.sh to a standalone cluster of one master and two 1-core workers on
127.0.0.1, executors in the Python environment shipped with each job, the lakehouse (tables, catalog folders,
checkpoints, manifest) on a MiniDFSCluster, the catalog in Derby's network server and the model in an MLflow server.
The silver build and the gold backfill each lose a worker midway (SIGKILL to the worker, its executors and their
Python workers) and are run again. Local: the same jobs under local[2] over a local folder, undisturbed.

Then every bronze, silver, quarantine and gold table must have the same count and checksum in both, the registered
model the same test metrics within 0.01, and silver's accounting must balance over the killed run and its re-run.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tests.conftest import REPO, JobRunners, delta_tables
from tests.standalone import StandaloneCluster

# The module's fixtures run both chains (45 minutes on 2 cores) inside its first test's time limit.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(4800)]

START = date(2026, 1, 5)
DAYS = 50
END = START + timedelta(days=DAYS - 1)
# 50 days: the regret model's labels are final 30 days after a purchase, and it trains on the days before its 7
# validation and 7 test days. The churn model is not trained: its first as-of dates, weeks into a new exchange, have
# no churned users to learn from.
GEN = ("--scale", "0.05", "--days", str(DAYS), "--seed", "11", "--start", START.isoformat())
SCORE = ("--start", (END - timedelta(days=6)).isoformat(), "--end", END.isoformat())
LAYERS = ("bronze", "silver", "quarantine", "gold")
# Columns that say when, where from or in which run a row was written, not what it holds: they differ between any
# two runs (a run id, an ingestion time) or between the two lakehouses (the landing file's full path). _line_no too:
# of identical duplicate lines silver keeps one, and which one's line number depends on the order Spark read them in.
RUN_COLUMNS = {
    "_batch_id",
    "_line_no",
    "_ingest_ts",
    "_run_id",
    "_source_file",
    "run_id",
    "quarantined_at",
    "resolved_run_id",
    "resolved_at",
}


def chain(landing: str) -> list[tuple[str, ...]]:
    return [
        ("generate.py", *GEN, "--out", landing),
        ("bronze_ingest.py", "--domain", "all", "--landing", landing),
        ("silver_build.py", "--domain", "all"),
        ("gold_build.py", "--start", START.isoformat(), "--end", END.isoformat()),
        ("train.py", "--model", "regret"),
        ("score.py", "--model", "regret", *SCORE),
        ("anomalies.py", "--start", START.isoformat(), "--end", END.isoformat()),
        ("query.py", "--format", "json", "SELECT count(*) AS n FROM gold.exchange_pair_daily"),
        ("summary.py", "--format", "json"),
    ]


class Submitter:
    """spark-submit.sh to the cluster, as a user would run it, with one lakehouse's environment."""

    def __init__(self, cluster: StandaloneCluster, env: dict[str, str], log_dir: Path) -> None:
        self.cluster, self.env, self.log_dir = cluster, env, log_dir
        self.shipped: list[tuple[str, list[int]]] = []  # per job run: executors per worker that had ./env

    def command(self, job: str, *args: str) -> list[str]:
        opts = ["--master", self.cluster.url, "--executor-memory", "1g"]
        return [str(REPO / "spark-submit.sh"), *opts, f"jobs/{job}", *args]

    def start(self, job: str, *args: str) -> tuple[subprocess.Popen, Path]:
        """The job running in the background, and the file its output goes to."""
        log = self.log_dir / f"{job}-{time.monotonic_ns()}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                self.command(job, *args), cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return proc, log

    def __call__(self, job: str, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            self.command(job, *args), cwd=REPO, env=self.env, capture_output=True, text=True, timeout=900
        )
        self.shipped.append((job, self.cluster.prune()))
        if result.returncode != 0:
            output = result.stdout + result.stderr
            raise AssertionError(f"{job} {args} failed ({result.returncode}):\n{output[-5000:]}")
        return result


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    """One master and two workers of one core each: xgboost's barrier stage of two tasks needs both executors."""
    standalone = StandaloneCluster(tmp_path_factory.mktemp("standalone"), workers=2, cores=1, memory="1500m")
    try:
        yield standalone
    finally:
        standalone.stop()


def _conf_with_metastore(base: Path, derby_port: int, database: str) -> Path:
    conf = base / f"conf-{database}"
    shutil.copytree(os.environ["MARKETLAKE_CONF_DIR"], conf)
    local = yaml.safe_load((conf / "local.yaml").read_text())
    local["metastore"] = {"kind": "server", "url": f"jdbc:derby://127.0.0.1:{derby_port}/{database};create=true"}
    (conf / "local.yaml").write_text(yaml.safe_dump(local))
    return conf


def _cluster_env(root: str, conf: Path, tracking: str) -> dict[str, str]:
    return {
        **os.environ,
        "MARKETLAKE_LAKEHOUSE": root,
        "MARKETLAKE_CONF_DIR": str(conf),
        "MLFLOW_TRACKING_URI": tracking,
        "SPARK_LOCAL_IP": "127.0.0.1",  # the driver too listens on loopback only
    }


def kill_a_worker_midway(cluster: StandaloneCluster, submit: Submitter, marker: str, job: str, *args: str) -> int:
    """Run the job; once its output shows `marker` (a regular expression: a first table done, more to come), SIGKILL
    worker 1 with its executors. The job's exit code, once it ends (it must, within the time limit: no hang; it
    may finish on the other worker or fail, as Spark decides); worker 1 is replaced afterwards, for the next run."""
    proc, log = submit.start(job, *args)
    deadline = time.monotonic() + 900
    while not re.search(marker, log.read_text(errors="replace"), re.MULTILINE):
        assert proc.poll() is None, f"{job} ended before the worker was killed:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"{job} never reached '{marker}'"
        time.sleep(0.2)
    cluster.kill_worker(1)
    code = proc.wait(timeout=900)
    cluster.prune()
    cluster.restart_worker(1)
    out = log.read_text(errors="replace")
    assert re.search(r"Lost executor \d+ on 127\.0\.0\.1", out), out[-4000:]  # the driver saw it go
    print(f"{job} with a worker killed midway: exit code {code}")
    return code


# Where a worker is killed in the cluster chain: once the job's output shows its first table done.
KILL_AFTER = {
    "silver_build.py": r"^\S.*\bin \d+ \(\+\d+ retried\) = silver",
    "gold_build.py": r"\.\.\S+: \d+ rows (written|unchanged)$",
}


@pytest.fixture(scope="module")
def chains(
    tmp_path_factory: pytest.TempPathFactory,
    warm_jobs: JobRunners,
    cluster: StandaloneCluster,
    hdfs: str,
    metastore_server: int,
    tracking_server: str,
) -> dict[str, Any]:
    """The chain run in local mode (local[2], a local folder), undisturbed, and on the cluster (HDFS), where the silver
    build and the gold backfill each lose a worker midway and are then run again, as a user would; each job's output
    (of the re-run, for those two) and the killed runs' exit codes."""
    base = tmp_path_factory.mktemp("chains")
    local_root = base / "local"
    local = warm_jobs(local_root)
    local_out = {job: local(job, "--master", "local[2]", *args).stdout for job, *args in chain(str(base / "landing"))}
    warm_jobs.release(local_root)

    cluster_root = f"{hdfs}/chain"
    conf = _conf_with_metastore(base, metastore_server, "chain")
    submit = Submitter(cluster, _cluster_env(cluster_root, conf, tracking_server), base)
    cluster_out, killed = {}, {}
    for job, *args in chain(f"{cluster_root}/landing"):
        if job in KILL_AFTER:
            killed[job] = kill_a_worker_midway(cluster, submit, KILL_AFTER[job], job, *args)
        cluster_out[job] = submit(job, *args).stdout
    return {
        "local": local_root,
        "cluster": cluster_root,
        "local_out": local_out,
        "cluster_out": cluster_out,
        "killed": killed,
        "shipped": submit.shipped,
    }


Fingerprint = tuple[int, int, tuple[float, ...]]


def fingerprint(df: DataFrame) -> Fingerprint:
    """(rows, order-free checksum, per floating-point column the sum of its values). The checksum is the sum of
    each row's 64-bit hash over its other columns in name order, lineage columns (RUN_COLUMNS) left out. Doubles are
    compared by their sums, within a tolerance (`same`): a sum of doubles depends on the order Spark adds them in,
    which differs between local[2] and two executors (up to 1e-15 relative in the chain, 3e-13 absolute where a net
    flow cancels to near zero), so neither their hash nor a rounding of them is stable."""
    fields = sorted((f for f in df.schema.fields if f.name not in RUN_COLUMNS), key=lambda f: f.name)
    floats = [f.name for f in fields if isinstance(f.dataType, T.DoubleType | T.FloatType)]
    exact = [F.col(f"`{f.name}`") for f in fields if f.name not in floats]
    sums = [F.sum(F.col(f"`{c}`")).alias(f"sum_{i}") for i, c in enumerate(floats)]
    row = df.select(
        F.count(F.lit(1)).alias("n"), F.sum(F.xxhash64(*exact).cast("decimal(38,0)")).alias("h"), *sums
    ).first()
    assert row is not None
    return int(row["n"]), int(row["h"] or 0), tuple(float(row[f"sum_{i}"] or 0.0) for i in range(len(floats)))


def same(a: Fingerprint, b: Fingerprint) -> bool:
    return (
        a[:2] == b[:2]
        and len(a[2]) == len(b[2])
        and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-6) for x, y in zip(a[2], b[2], strict=True))
    )


def fingerprints(spark: SparkSession, root: str, tables: dict[str, list[str]]) -> dict[str, Fingerprint]:
    return {
        f"{layer}.{t}": fingerprint(spark.read.format("delta").load(f"{root}/{layer}/{t}"))
        for layer, names in tables.items()
        for t in names
    }


@pytest.fixture(scope="module")
def local_tables(chains: dict[str, Any]) -> dict[str, list[str]]:
    root = Path(str(chains["local"]))
    return {layer: sorted(delta_tables(root, layer)) for layer in LAYERS}


@pytest.fixture(scope="module")
def local_fingerprints(
    spark: SparkSession, chains: dict[str, Any], local_tables: dict[str, list[str]]
) -> dict[str, Fingerprint]:
    return fingerprints(spark, f"file://{chains['local']}", local_tables)


def test_every_job_runs_on_the_cluster_and_every_table_matches_local_mode(
    spark: SparkSession,
    chains: dict[str, Any],
    local_tables: dict[str, list[str]],
    local_fingerprints: dict[str, Fingerprint],
) -> None:
    assert len(local_tables["gold"]) >= 20 and len(local_tables["silver"]) >= 15
    cluster_fp = fingerprints(spark, str(chains["cluster"]), local_tables)
    assert {t: (local_fingerprints[t], fp) for t, fp in cluster_fp.items() if not same(fp, local_fingerprints[t])} == {}
    assert all(fp[0] > 0 for t, fp in local_fingerprints.items() if t.startswith("gold.")), local_fingerprints
    # Every job ran an executor on each worker, in the environment shipped with it (./env, unpacked there).
    assert chains["shipped"] == [(job, [1, 1]) for job, *_ in chain("")]


def _test_metrics(tracking: str) -> dict[str, dict[str, float]]:
    """Registered model name -> the test metrics its version 1 logged (each registry here holds one version)."""
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    out = {}
    for model in client.search_registered_models():
        (version,) = client.search_model_versions(f"name = '{model.name}'")
        metrics = client.get_run(version.run_id).data.metrics
        out[model.name] = {k: v for k, v in metrics.items() if k.startswith(("test_", "baseline_test_"))}
    return out


def test_the_models_trained_on_the_cluster_have_the_local_ones_test_metrics(
    chains: dict[str, Any], tracking_server: str
) -> None:
    local = _test_metrics(f"sqlite:///{chains['local']}/mlflow/mlflow.db")
    remote = _test_metrics(tracking_server)
    assert set(local) == {"marketlake_return_regret"}
    for model, metrics in local.items():
        assert len(metrics) > 5 and metrics.keys() == remote[model].keys()
        far = {k: (v, remote[model][k]) for k, v in metrics.items() if abs(v - remote[model][k]) > 0.01}
        assert far == {}, model
    # The same question through query.py, asked of both lakehouses' catalogs, has the same answer.
    local_out, cluster_out = chains["local_out"], chains["cluster_out"]
    assert _json_rows(local_out["query.py"]) == _json_rows(cluster_out["query.py"]) != []


def _json_rows(output: str) -> list[Any]:
    """query.py's JSON lines out of a job's output. Under spark-submit the Python driver's stderr (the log) reaches
    stdout too: Spark's PythonRunner merges the two streams of the process it starts."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_losing_a_worker_midway_through_silver_and_a_gold_backfill_is_survived_by_a_rerun(
    spark: SparkSession, chains: dict[str, Any], local_tables: dict[str, list[str]]
) -> None:
    """Both killed runs ended (no hang: the fixture's time limit) after the driver saw the executor go; whether they
    finished on the remaining worker or failed, the re-run left the tables the undisturbed local chain has (compared
    above) and silver's accounting balanced: every run's counts add up, and over the killed run and its re-run every
    bronze row went into silver or quarantine exactly once."""
    assert set(chains["killed"]) == {"silver_build.py", "gold_build.py"}
    root = chains["cluster"]
    runs = spark.read.format("delta").load(f"{root}/ops/silver_runs").collect()
    assert runs and all(r["balanced"] for r in runs)
    for r in runs:
        out = r["inserted"] + r["updated"] + r["unchanged"] + r["duplicates"] + r["quarantined"]
        assert r["rows_in"] + r["retried"] == out, r
    bronze = sum(spark.read.format("delta").load(f"{root}/bronze/{t}").count() for t in local_tables["bronze"])
    assert sum(r["rows_in"] for r in runs if r["bronze_versions"]) == bronze
