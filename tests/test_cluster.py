"""spark-submit.sh against a real standalone cluster (master + worker on 127.0.0.1, stopped afterwards)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyspark
import pytest
from pyspark.sql import SparkSession

from tests.conftest import REPO, free_port, wait_for
from tests.test_pipeline import bronze_rows, bronze_tables, same_rows

pytestmark = pytest.mark.cluster
SPARK_CLASS = Path(sys.executable).parent / "spark-class"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A standalone master and one 2-core worker bound to 127.0.0.1; yields (master URL, worker work dir)."""
    base = tmp_path_factory.mktemp("cluster")
    env = {
        **os.environ,
        "SPARK_HOME": str(Path(pyspark.__file__).parent),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(base),
        "SPARK_WORKER_DIR": str(base / "work"),
    }
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    try:
        master_log = base / "master.log"
        procs.append(
            subprocess.Popen(
                [
                    str(SPARK_CLASS),
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--webui-port",
                    str(free_port()),
                ],
                stdout=master_log.open("w"),
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
        wait_for(master_log, "I have been elected leader", procs[0])
        worker_log = base / "worker.log"
        procs.append(
            subprocess.Popen(
                [
                    str(SPARK_CLASS),
                    "org.apache.spark.deploy.worker.Worker",
                    url,
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    "2",
                    "--memory",
                    "3g",
                    "--webui-port",
                    str(free_port()),
                    "--work-dir",
                    str(base / "work"),
                ],
                stdout=worker_log.open("w"),
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
        wait_for(worker_log, "Successfully registered with master", procs[1])
        yield url, base / "work"
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_spark_submit_to_a_standalone_cluster_writes_the_same_bronze_rows_as_local_mode(
    spark: SparkSession, cluster: tuple[str, Path], pipeline_runs: dict[str, Path], tmp_path: Path
) -> None:
    url, work_dir = cluster
    landing, local_lh, cluster_lh = pipeline_runs["landing-1"], pipeline_runs["lh-1"], tmp_path / "lh-cluster"
    submitted = subprocess.run(
        [
            str(REPO / "spark-submit.sh"),
            "--master",
            url,
            "--executor-memory",
            "1g",
            "jobs/bronze_ingest.py",
            "--domain",
            "all",
            "--landing",
            str(landing),
        ],
        cwd=REPO,
        env={**os.environ, "MARKETLAKE_LAKEHOUSE": str(cluster_lh)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = submitted.stdout + submitted.stderr  # spark-submit merges the Python driver's stderr into stdout
    assert submitted.returncode == 0, output[-4000:]
    assert "rows written" in output
    assert list(work_dir.glob("app-*/*/stderr")), "the cluster's worker launched no executor"

    tables = bronze_tables(local_lh)
    assert len(tables) == 15 and bronze_tables(cluster_lh) == tables
    for table in tables:
        assert same_rows(bronze_rows(spark, local_lh, table), bronze_rows(spark, cluster_lh, table)), table


def test_spark_submit_reports_a_missing_job_clearly() -> None:
    result = subprocess.run([str(REPO / "spark-submit.sh"), "jobs/nope.py"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: job file 'jobs/nope.py' not found"


def test_spark_submit_refuses_a_lakehouse_it_cannot_use_in_one_line(tmp_path: Path) -> None:
    """A lakehouse on distributed storage with the embedded metastore (which needs a local disk) is refused before
    anything is created (no local `hdfs:` folder, no metastore folder)."""
    env = {**os.environ, "MARKETLAKE_LAKEHOUSE": "hdfs://127.0.0.1:9/lake"}
    result = subprocess.run(
        [str(REPO / "spark-submit.sh"), str(REPO / "jobs" / "summary.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: lakehouse root hdfs://127.0.0.1:9/lake is not a local folder, so the embedded metastore (Derby, on "
        "local disk) cannot live in it; use a metastore every driver reaches: metastore: {kind: server, url: ...} in "
        "conf/<env>.yaml (make metastore-server), or spark.hadoop.javax.jdo.option.ConnectionURL"
    ]
    assert not any(tmp_path.iterdir())
