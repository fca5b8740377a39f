"""End to end, as a user runs it: generate -> bronze in separate processes (test_silver_pipeline reads the tables
by name from a new session).

Runs the pipeline twice, under local[1] and local[2], from the same seed and scale.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tests.conftest import JobRunners, delta_tables, run_job


@pytest.fixture(scope="module")
def runs(pipeline_runs: dict[str, Path]) -> dict[str, Path]:
    return pipeline_runs


def landing_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def bronze_tables(root: Path) -> list[str]:
    return sorted(delta_tables(root, "bronze"))


def bronze_rows(spark: SparkSession, root: Path, table: str) -> DataFrame:
    """A bronze table read by path, without what legitimately differs between runs (ingest time, landing dir)."""
    df = spark.read.format("delta").load(str(root / "bronze" / table))
    return df.drop("_ingest_ts", "_batch_id").withColumn(
        "_source_file", F.regexp_extract("_source_file", r"/landing-\w+/(.*)$", 1)
    )


def same_rows(left: DataFrame, right: DataFrame) -> bool:
    return left.count() == right.count() and left.exceptAll(right).isEmpty() and right.exceptAll(left).isEmpty()


def test_same_seed_gives_identical_landing_files_on_one_or_two_cores(runs: dict[str, Path]) -> None:
    one, two = landing_bytes(runs["landing-1"]), landing_bytes(runs["landing-2"])
    assert len(one) >= 15 * 4 - 10  # every entity, most days
    assert sorted(one) == sorted(two)
    differing = [name for name in one if one[name] != two[name]]
    assert differing == []


def test_same_seed_gives_identical_bronze_tables_on_one_or_two_cores(
    spark: SparkSession, runs: dict[str, Path]
) -> None:
    tables = bronze_tables(runs["lh-1"])
    assert tables == bronze_tables(runs["lh-2"])
    assert len(tables) == 15
    for table in tables:
        assert same_rows(bronze_rows(spark, runs["lh-1"], table), bronze_rows(spark, runs["lh-2"], table)), table


def test_every_landed_line_is_a_bronze_row(spark: SparkSession, runs: dict[str, Path]) -> None:
    landing = runs["landing-1"]
    for table in bronze_tables(runs["lh-1"]):
        domain, entity = table.split("_", 1)
        files = [p for p in (landing / domain / entity).rglob("*") if p.is_file() and not p.name.startswith(".")]
        lines = sum(len(p.read_bytes().split(b"\n")) - 1 - (p.suffix == ".csv") for p in files)
        assert spark.read.format("delta").load(str(runs["lh-1"] / "bronze" / table)).count() == lines, table


def test_rerunning_ingestion_changes_no_bronze_table(
    spark: SparkSession, runs: dict[str, Path], warm_jobs: JobRunners
) -> None:
    lh = runs["lh-1"]
    tables = bronze_tables(lh)
    versions = {t: len(list((lh / "bronze" / t / "_delta_log").glob("*.json"))) for t in tables}
    counts = {t: spark.read.format("delta").load(str(lh / "bronze" / t)).count() for t in tables}
    ingest = ("bronze_ingest.py", "--master", "local[1]", "--domain", "all", "--landing", str(runs["landing-1"]))
    result = warm_jobs(lh)(*ingest)
    assert "0 lines read, 0 rows written" in result.stderr
    assert {t: len(list((lh / "bronze" / t / "_delta_log").glob("*.json"))) for t in tables} == versions
    assert {t: spark.read.format("delta").load(str(lh / "bronze" / t)).count() for t in tables} == counts
    runs_log = spark.read.format("delta").load(str(lh / "ops" / "bronze_ingest_runs"))
    per_run = runs_log.groupBy("run_id").agg(F.sum("files_new").alias("new"), F.sum("rows_written").alias("rows"))
    assert sorted((r.new > 0, r.rows > 0) for r in per_run.collect()) == [(False, False), (True, True)]


@pytest.mark.parametrize(
    ("job", "args", "message"),
    [
        (
            "bronze_ingest.py",
            ["--domain", "all", "--date", "2026-13-01"],
            "error: --date '2026-13-01' is not a date in YYYY-MM-DD form",
        ),
        (
            "bronze_ingest.py",
            ["--domain", "crypto"],
            "error: unknown domain 'crypto'; known domains: exchange, commerce, trends",
        ),
        ("generate.py", ["--scale", "-1"], "error: --scale must be positive"),
        ("bronze_ingest.py", ["--domain", "all", "--conf-env", "prod"], "error: unknown config environment 'prod'"),
    ],
)
def test_user_mistakes_get_one_clear_line(
    job_in_process: Callable[..., tuple[int, str, str]], job: str, args: list[str], message: str
) -> None:
    code, _, err = job_in_process(job, *args)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("job", "args", "message"),
    [
        ("bronze_ingest.py", ["--domain", "crypto"], "error: unknown domain 'crypto'"),
        ("generate.py", ["--scale", "-1"], "error: --scale must be positive"),
    ],
)
def test_a_user_mistake_is_one_clear_line_from_a_real_process(job: str, args: list[str], message: str) -> None:
    result = run_job(job, *args, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in result.stderr


def test_query_of_a_missing_table_is_one_clear_line(runs: dict[str, Path], warm_jobs: JobRunners) -> None:
    result = warm_jobs(runs["lh-1"])("query.py", "SELECT * FROM bronze.no_such_table", check=False)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: [TABLE_OR_VIEW_NOT_FOUND]")
    assert "Traceback" not in result.stderr
