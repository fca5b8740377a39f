"""What a one-line question and the summary cost as whole processes after `make demo` (make bench; not in make
test): jobs/query.py (median of 3) and jobs/summary.py (median of 2), and where a query's start-up goes (JVM and
session, metastore, Delta snapshot, the query itself; tests/benchmarks/startup.py). The lakehouse is ./lakehouse
or BENCH_LAKEHOUSE. Prints a JSON line and appends it to lakehouse/bench/fixed_cost.jsonl."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks import record, timed
from tests.conftest import REPO

LAKEHOUSE = Path(os.environ.get("BENCH_LAKEHOUSE", REPO / "lakehouse"))
QUESTION = "SELECT segment, count(*) AS users FROM gold.exchange_rfm GROUP BY 1 ORDER BY 2 DESC"


def seconds(job: str, *args: str) -> float:
    return timed(job, *args, env={"MARKETLAKE_LAKEHOUSE": str(LAKEHOUSE)})[0]


@pytest.mark.skipif(not (LAKEHOUSE / "gold" / "exchange_rfm").is_dir(), reason="needs `make demo` first")
def test_fixed_cost_of_a_question_and_the_summary() -> None:
    query = [seconds("query.py", QUESTION) for _ in range(3)]
    summary = [seconds("summary.py") for _ in range(2)]
    startup = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.startup", QUESTION],
        cwd=REPO, env={**os.environ, "MARKETLAKE_LAKEHOUSE": str(LAKEHOUSE)},
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result = {
        "query_s": round(statistics.median(query), 1),
        "summary_s": round(statistics.median(summary), 1),
        "query_runs": [round(s, 1) for s in query],
        "summary_runs": [round(s, 1) for s in summary],
        "startup_phases_s": json.loads(startup.stdout.strip().splitlines()[-1]),
    }
    record("fixed_cost", result)
