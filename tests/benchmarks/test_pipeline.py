"""The whole pipeline against Spark's I/O floor (make bench; not part of make test).

A landing at scale 5 over 14 days (BENCH_LANDING reuses one generated with the same arguments). Each round, in a
fresh lakehouse and each job a fresh process as a user runs it: bronze ingestion, silver and gold for the range;
then the floor, Spark reading the same files with its own readers and writing Parquet (tests/benchmarks/floor.py).
Reports per-stage seconds and rows/s, and (bronze + silver + gold) / floor, median of the rounds, as a JSON line
appended to lakehouse/bench/pipeline.jsonl.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.benchmarks import record, timed
from tests.conftest import REPO, run_job

SCALE, DAYS, START = "5", 14, date(2026, 1, 1)
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
TARGET = 5.0


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("BENCH_LANDING"):
        return Path(os.environ["BENCH_LANDING"])
    out = tmp_path_factory.mktemp("pipeline") / "landing"
    run_job(
        "generate.py", "--scale", SCALE, "--days", str(DAYS), "--start", str(START), "--seed", "11", "--out", str(out)
    )
    return out


def one_round(landing: Path, work: Path) -> dict[str, float]:
    lakehouse = work / "lh"
    shutil.rmtree(work, ignore_errors=True)
    env = {"MARKETLAKE_LAKEHOUSE": str(lakehouse)}
    end = START + timedelta(days=DAYS - 1)
    bronze_s, out = timed("bronze_ingest.py", "--domain", "all", "--landing", str(landing), env=env)
    lines = int(re.search(r"run \w+: (\d+) lines read", out).group(1))
    silver_s, _ = timed("silver_build.py", "--domain", "all", env=env)
    gold_s, _ = timed("gold_build.py", "--start", str(START), "--end", str(end), env=env)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.floor", str(landing), str(work / "floor")],
        cwd=REPO, check=True, capture_output=True, text=True,
    )  # fmt: skip
    floor_s = time.perf_counter() - started
    return {
        "lines": lines,
        "bronze_s": bronze_s,
        "silver_s": silver_s,
        "gold_s": gold_s,
        "floor_s": floor_s,
        "ratio": (bronze_s + silver_s + gold_s) / floor_s,
    }


def test_pipeline_against_the_io_floor(landing: Path, tmp_path: Path) -> None:
    rounds = [one_round(landing, tmp_path / f"round-{i}") for i in range(ROUNDS)]
    median = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    lines = int(median["lines"])
    result = {
        "scale": SCALE,
        "days": DAYS,
        "lines": lines,
        "rounds": ROUNDS,
        **{k: round(v, 1) for k, v in median.items() if k.endswith("_s")},
        **{k.replace("_s", "_rows_per_s"): round(lines / v) for k, v in median.items() if k.endswith("_s")},
        "ratio_to_floor": round(median["ratio"], 2),
        "ratios_per_round": [round(r["ratio"], 2) for r in rounds],
        "target": TARGET,
    }
    record("pipeline", result)
    assert median["ratio"] <= TARGET, result
