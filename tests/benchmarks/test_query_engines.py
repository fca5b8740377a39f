"""One question through jobs/query.py's two engines as whole processes after `make demo` (make bench; not in make
test): Spark (a JVM, the metastore, Delta's snapshot) against DuckDB over delta-rs (--engine duckdb: names resolved
through the catalogue manifest, no JVM). Median of 5 each, their ratio, and the same answer from both (compared by
values: the engines name `count(*)` differently). The lakehouse is ./lakehouse or BENCH_LAKEHOUSE. Prints a JSON line
and appends it to lakehouse/bench/query_engines.jsonl."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import pytest

from tests.benchmarks import record, timed
from tests.conftest import REPO

LAKEHOUSE = Path(os.environ.get("BENCH_LAKEHOUSE", REPO / "lakehouse"))
QUESTION = "SELECT segment, count(*) FROM gold.exchange_rfm GROUP BY 1 ORDER BY 1"
RUNS = 5


def ask(engine: str) -> tuple[float, list[list[object]], list[str]]:
    """Whole-process seconds, the answer's rows as value lists, and its column names."""
    seconds, output = timed(
        "query.py", "--engine", engine, "--format", "json", QUESTION, env={"MARKETLAKE_LAKEHOUSE": str(LAKEHOUSE)}
    )
    rows = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return seconds, [list(r.values()) for r in rows], list(rows[0]) if rows else []


@pytest.mark.skipif(not (LAKEHOUSE / "gold" / "exchange_rfm").is_dir(), reason="needs gold.exchange_rfm: `make demo`")
def test_spark_against_duckdb_on_one_question() -> None:
    spark = [ask("spark") for _ in range(RUNS)]  # the first also writes the manifest if the lakehouse predates it
    duckdb = [ask("duckdb") for _ in range(RUNS)]
    answers = {engine: runs[0][1] for engine, runs in (("spark", spark), ("duckdb", duckdb))}
    assert answers["spark"], "Spark returned no rows"
    assert all(run[1] == answers["spark"] for run in spark + duckdb), answers
    spark_s = statistics.median(s for s, _, _ in spark)
    duckdb_s = statistics.median(s for s, _, _ in duckdb)
    record(
        "query_engines",
        {
            "question": QUESTION,
            "lakehouse": str(LAKEHOUSE),
            "spark_s": round(spark_s, 2),
            "duckdb_s": round(duckdb_s, 2),
            "spark_over_duckdb": round(spark_s / duckdb_s, 1),
            "spark_runs": [round(s, 2) for s, _, _ in spark],
            "duckdb_runs": [round(s, 2) for s, _, _ in duckdb],
            "same_answer": True,
            "rows": answers["spark"],
            "columns": {"spark": spark[0][2], "duckdb": duckdb[0][2]},
        },
    )
