"""spark-submit.sh's own refusals, before any Spark starts (no cluster is started). The whole chain submitted to a
standalone cluster is in test_cluster_chain."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import REPO


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


def test_spark_submit_refuses_an_unknown_python_environment_in_one_line() -> None:
    result = subprocess.run(
        [str(REPO / "spark-submit.sh"), "--python-env", "conda", "jobs/summary.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --python-env must be shipped or shared, not 'conda'"
