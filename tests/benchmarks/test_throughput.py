"""Generator, bronze-ingest and per-domain silver throughput at two scales (make bench; not part of make test).

Each run is a fresh process, as a user runs it; rows/s are computed from the jobs' own counts and wall time.
Each result prints as a JSON line and is appended to lakehouse/bench/throughput.jsonl.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.benchmarks import record
from tests.conftest import run_job

SCALES = (1, 5)
DAYS = 7
DOMAINS = ("exchange", "commerce", "trends")
DERIVED = {"commerce_order_lines", "trends_trend_signals"}  # built from other silver tables, not from bronze
SILVER_ROW = re.compile(r"^silver\.(\w+)\s+(\d+)\s+(\d+)", re.MULTILINE)


def silver_throughput(lakehouse: Path) -> dict[str, object]:
    """Each domain's silver build in its own process: bronze rows read per second of job wall time."""
    result: dict[str, object] = {}
    for domain in DOMAINS:
        started = time.perf_counter()
        out = run_job("silver_build.py", "--domain", domain, env={"MARKETLAKE_LAKEHOUSE": str(lakehouse)})
        seconds = time.perf_counter() - started
        rows = sum(int(m.group(2)) for m in SILVER_ROW.finditer(out.stdout) if m.group(1) not in DERIVED)
        assert rows > 0 and " NO " not in out.stdout
        result.update({f"silver_{domain}_rows": rows, f"silver_{domain}_s": round(seconds, 1)})
        result[f"silver_{domain}_rows_per_s"] = round(rows / seconds)
    return result


@pytest.mark.parametrize("scale", SCALES)
def test_generate_and_ingest_throughput(scale: int, tmp_path: Path) -> None:
    landing, lakehouse = tmp_path / "landing", tmp_path / "lh"
    started = time.perf_counter()
    gen = run_job("generate.py", "--scale", str(scale), "--days", str(DAYS), "--out", str(landing))
    gen_s = time.perf_counter() - started
    lines = int(re.search(r"generated (\d+) lines for", gen.stderr).group(1))
    started = time.perf_counter()
    ing = run_job(
        "bronze_ingest.py", "--domain", "all", "--landing", str(landing), env={"MARKETLAKE_LAKEHOUSE": str(lakehouse)}
    )
    ingest_s = time.perf_counter() - started
    run_line = re.search(r"run \w+: (\d+) lines read, (\d+) rows written, (\d+) unparseable in ([\d.]+) s", ing.stderr)
    assert run_line and int(run_line.group(1)) == int(run_line.group(2)) == lines
    result = {
        "scale": scale,
        "days": DAYS,
        "lines": lines,
        "generate_s": round(gen_s, 1),
        "generate_rows_per_s": round(lines / gen_s),
        "ingest_s": round(ingest_s, 1),
        "ingest_rows_per_s": round(lines / ingest_s),
        "ingest_s_in_job": float(run_line.group(4)),
        **silver_throughput(lakehouse),
    }
    record("throughput", result)
