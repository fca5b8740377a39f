"""Where a one-line query's start-up goes, phase by phase, in one fresh process (as jobs/query.py runs it).
Usage: python -m tests.benchmarks.startup "SQL" ; prints one JSON line of seconds per phase."""

from __future__ import annotations

import json
import sys
import time

started = time.perf_counter()
marks: dict[str, float] = {}


def mark(phase: str) -> None:
    marks[phase] = round(time.perf_counter() - started - sum(marks.values()), 2)


def main() -> None:
    sql = sys.argv[1]
    from marketlake.config import load_settings
    from marketlake.session import get_spark

    settings = load_settings("local")
    mark("python_imports")
    spark = get_spark(settings, "marketlake-startup")
    mark("jvm_and_session")
    spark.catalog.databaseExists("gold")
    mark("metastore")
    table = sql.split("FROM ", 1)[1].split()[0]
    assert spark.table(table).schema.fields
    mark("delta_snapshot")
    spark.sql(sql).collect()
    mark("query")
    spark.stop()
    mark("stop")
    print(json.dumps({**marks, "total": round(time.perf_counter() - started, 2)}))


if __name__ == "__main__":
    main()
