"""A daily silver run costs what the day adds, not what the lakehouse already holds (make bench; not in make test).

One landing of 182 days at scale 0.1 (BENCH_SILVER_LANDING reuses one generated with the same arguments). Two
lakehouses are filled from it as a user would (bronze ingestion, then silver): `h180` with the first 180 days of
every entity, `h1` with the same dimensions (users, pairs, customers, products) but the facts of day 180 only. Then
days 181 and 182 land in both, and each day's silver run (a fresh process, as a user runs it) is timed on each,
side by side. Prints a JSON line with the whole-process and in-job seconds and the 180-day / 1-day ratio (median of
the two days), appends it to lakehouse/bench/silver_incremental.jsonl, and fails above the target.
"""

from __future__ import annotations

import os
import re
import statistics
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.benchmarks import record, timed
from tests.conftest import run_job

START, DAYS, SCALE = date(2025, 6, 1), 182, "0.1"
HISTORY = 180
DIMENSIONS = {"exchange": ("users", "trading_pairs"), "commerce": ("customers", "products")}
TARGET = 1.5
SECONDS = re.compile(r"^silver\.\w+\s.*\s([\d.]+)\s*$", re.MULTILINE)


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("BENCH_SILVER_LANDING"):
        return Path(os.environ["BENCH_SILVER_LANDING"])
    out = tmp_path_factory.mktemp("silver-incremental") / "landing"
    gen = ("--scale", SCALE, "--start", str(START), "--days", str(DAYS), "--seed", "5")
    run_job("generate.py", *gen, "--out", str(out))
    return out


def link_days(landing: Path, target: Path, days: list[date], dimensions_up_to: date | None = None) -> None:
    """Symlink the landing's date folders of `days` (and of every day up to `dimensions_up_to` for dimensions)."""
    wanted = {d.isoformat() for d in days}
    for folder in sorted(landing.glob("*/*/date=*")):
        domain, entity, day = folder.parent.parent.name, folder.parent.name, folder.name.removeprefix("date=")
        dimension = entity in DIMENSIONS.get(domain, ())
        keep = day in wanted or (dimension and dimensions_up_to is not None and day <= dimensions_up_to.isoformat())
        link = target / domain / entity / folder.name
        if keep and not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(folder, target_is_directory=True)


def ingest_and_build(lakehouse: Path, landing: Path) -> tuple[float, float]:
    """Bronze ingestion of what is new, then the silver run: (whole-process seconds, sum of in-job table seconds)."""
    env = {"MARKETLAKE_LAKEHOUSE": str(lakehouse)}
    run_job("bronze_ingest.py", "--domain", "all", "--landing", str(landing), env=env)
    seconds, out = timed("silver_build.py", "--domain", "all", env=env)
    return seconds, sum(float(s) for s in SECONDS.findall(out))


def test_a_daily_silver_run_does_not_grow_with_history(landing: Path, tmp_path: Path) -> None:
    history = [START + timedelta(days=i) for i in range(HISTORY)]
    last = history[-1]
    setups = {"h180": history, "h1": [last]}
    for name, days in setups.items():
        link_days(landing, tmp_path / f"landing-{name}", days, dimensions_up_to=last)
        ingest_and_build(tmp_path / name, tmp_path / f"landing-{name}")
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in setups}
    for offset in (1, 2):
        day = last + timedelta(days=offset)
        for name in setups:
            link_days(landing, tmp_path / f"landing-{name}", [day])
            timings[name].append(ingest_and_build(tmp_path / name, tmp_path / f"landing-{name}"))
    whole = {n: statistics.median(t[0] for t in ts) for n, ts in timings.items()}
    in_job = {n: statistics.median(t[1] for t in ts) for n, ts in timings.items()}
    result = {
        "scale": SCALE,
        "history_days": HISTORY,
        "h180_s": round(whole["h180"], 1),
        "h1_s": round(whole["h1"], 1),
        "h180_tables_s": round(in_job["h180"], 1),
        "h1_tables_s": round(in_job["h1"], 1),
        "ratio": round(whole["h180"] / whole["h1"], 2),
        "ratio_tables": round(in_job["h180"] / in_job["h1"], 2),
        "runs": {n: [[round(a, 1), round(b, 1)] for a, b in ts] for n, ts in timings.items()},
        "target": TARGET,
    }
    record("silver_incremental", result)
    assert result["ratio"] <= TARGET, result
