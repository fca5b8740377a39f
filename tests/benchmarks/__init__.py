"""Benchmarks (make bench, not part of make test), and how they time jobs and keep their results."""

from __future__ import annotations

import json
import time

from tests.conftest import REPO, run_job


def timed(job: str, *args: str, env: dict[str, str]) -> tuple[float, str]:
    """Run a job as a user would (a fresh process): its whole-process seconds, and its stdout + stderr."""
    started = time.perf_counter()
    result = run_job(job, *args, env=env)
    return time.perf_counter() - started, result.stdout + result.stderr


def record(name: str, result: dict[str, object]) -> None:
    """Print a benchmark's result as a JSON line and append it to lakehouse/bench/<name>.jsonl."""
    line = json.dumps(result)
    print("\n" + line)
    out = REPO / "lakehouse" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    with (out / f"{name}.jsonl").open("a") as f:
        f.write(line + "\n")
