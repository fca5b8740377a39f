"""The silver job as a user runs it, over the bronze lakehouse the pipeline tests built: every row accounted for,
re-runs change nothing, no raw PII in silver or gold, and a late parent releases the rows it held in quarantine.

The tests share one lakehouse and run in file order (the late parent ingests more bronze after the re-runs; gold
is built last); the bronze tests that compare it with its twin run in an earlier module. Jobs run in the
lakehouse's warm job process, the query that reads bronze and gold by name in a new one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from pyhive import hive
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from TCLIService import ttypes

from marketlake.config import CONF_DIR, load_settings
from marketlake.gold.spec import load_gold
from marketlake.session import SERVING_FILE, check_catalog_free
from tests.conftest import REPO, JobRunners, WarmJobs, delta_tables, free_port, run_job, wait_for

EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
PHONE = r"\+\d{1,3}-\d{3}-\d{3}-\d{4}"


def read(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.format("delta").load(path)


def bronze_total(spark: SparkSession, lh: Path) -> int:
    return sum(read(spark, p).count() for p in delta_tables(lh, "bronze").values())


def counts(spark: SparkSession, lh: Path) -> dict[str, int]:
    out = {f"silver.{t}": read(spark, p).count() for t, p in delta_tables(lh, "silver").items()}
    for t, p in delta_tables(lh, "quarantine").items():
        q = read(spark, p)
        out[f"quarantine.{t}"] = q.count()
        out[f"quarantine.{t} open"] = q.where("resolved_run_id IS NULL").count()
    return out


def last_run(spark: SparkSession, lh: Path) -> DataFrame:
    runs = read(spark, str(lh / "ops" / "silver_runs"))
    latest = runs.groupBy("domain").agg(F.max("run_started_at").alias("run_started_at"))
    return runs.join(latest, ["domain", "run_started_at"])


@pytest.fixture(scope="module")
def jobs(pipeline_runs: dict[str, Path], warm_jobs: JobRunners) -> WarmJobs:
    """The warm job process of the lakehouse the pipeline tests ingested under local[2]."""
    return warm_jobs(pipeline_runs["lh-2"])


def silver(jobs: WarmJobs, *args: str) -> subprocess.CompletedProcess:
    return jobs("silver_build.py", "--master", "local[2]", *args)


@pytest.fixture(scope="module")
def lh(pipeline_runs: dict[str, Path], jobs: WarmJobs) -> Path:
    first = silver(jobs, "--domain", "all")
    assert "balanced" in first.stdout and " NO " not in first.stdout, first.stdout
    return pipeline_runs["lh-2"]


def test_every_bronze_row_lands_in_silver_or_quarantine(spark: SparkSession, lh: Path) -> None:
    bronze_rows = bronze_total(spark, lh)
    runs = last_run(spark, lh).collect()
    assert runs and all(r["balanced"] for r in runs)
    from_bronze = [r for r in runs if r["bronze_versions"]]
    assert sum(r["rows_in"] for r in from_bronze) == bronze_rows
    for r in runs:
        assert (
            r["rows_in"] + r["retried"]
            == r["inserted"] + r["updated"] + r["unchanged"] + r["duplicates"] + r["quarantined"]
        ), r
    quarantined = sum(read(spark, p).count() for p in delta_tables(lh, "quarantine").values())
    assert quarantined == sum(r["quarantined"] for r in runs) > 0
    stored = counts(spark, lh)
    assert all(stored[f"silver.{r['silver_table']}"] == r["inserted"] for r in from_bronze if r["rows_in"])
    drift = {r["silver_table"]: r["drift_columns"] for r in runs if r["drift_columns"]}
    assert set(drift) == {"exchange_trades", "commerce_web_sessions"}  # the generator's drifting sources
    assert drift["exchange_trades"]["liquidity"] > 0 and drift["commerce_web_sessions"]["utm_campaign"] > 0


def test_rerunning_silver_changes_no_count(spark: SparkSession, lh: Path, jobs: WarmJobs) -> None:
    before = counts(spark, lh)
    silver(jobs, "--domain", "all")
    assert counts(spark, lh) == before
    assert all(r["inserted"] == r["updated"] == r["quarantined"] == 0 for r in last_run(spark, lh).collect())
    silver(jobs, "--domain", "all", "--start", "2026-02-01", "--end", "2026-03-31")
    assert counts(spark, lh) == before
    rerun = last_run(spark, lh).collect()
    assert {r["mode"] for r in rerun} == {"range"}
    assert all(r["inserted"] == r["updated"] == 0 and r["balanced"] for r in rerun)
    assert sum(r["rows_in"] for r in rerun if r["bronze_versions"]) == bronze_total(spark, lh)


def test_a_late_parent_releases_the_rows_waiting_for_it(
    spark: SparkSession, lh: Path, jobs: WarmJobs, tmp_path: Path
) -> None:
    quarantine = str(lh / "quarantine" / "exchange")
    waiting = (
        read(spark, quarantine)
        .where("silver_table = 'exchange_trades' AND failed_rules = array('user_known')")
        .select("record")
        .first()
    )
    assert waiting is not None
    trade = json.loads(waiting["record"])
    user = {
        "user_id": trade["user_id"],
        "email": "late.parent@example.com",
        "tier": "Basic",
        "status": "active",
        "registered_at": "2026-02-01T00:00:00Z",
        "updated_at": "2026-02-01T00:00:00Z",
    }
    export = tmp_path / "late_users.jsonl"
    export.write_text(json.dumps(user) + "\n")
    jobs("bronze_ingest.py", "--domain", "exchange", "--entity", "users", "--source", str(export))
    silver(jobs, "--domain", "exchange")
    trades = read(spark, str(lh / "silver" / "exchange_trades")).where(F.col("trade_id") == trade["trade_id"])
    assert trades.count() == 1
    released = read(spark, quarantine).where(F.col("record") == waiting["record"]).first()
    assert released is not None and released["resolved_run_id"] is not None
    run = last_run(spark, lh).where("silver_table = 'exchange_trades'").first()
    assert run is not None and run["retried"] >= 1 and run["balanced"]


def test_gold_builds_every_table_and_a_new_session_reads_bronze_and_gold_by_name(
    spark: SparkSession, lh: Path, jobs: WarmJobs, warm_jobs: JobRunners
) -> None:
    """The demo's gold step on this lakehouse, then every bronze and gold table read by name from a new process
    (the catalog persists across sessions): bronze with the counts of its files, gold with a row or more."""
    env = {"MARKETLAKE_LAKEHOUSE": str(lh)}
    build = jobs("gold_build.py", "--start", "2026-03-01", "--end", "2026-03-04")
    names = [s.name for s in load_gold(CONF_DIR).tables.values()]
    assert all(f"gold.{n}" in build.stdout for n in names), build.stdout
    warm_jobs.release(lh)  # the new process opens the catalog the warm one holds
    bronze = delta_tables(lh, "bronze")
    assert len(bronze) == 15
    tables = [f"bronze.{t}" for t in bronze] + [f"gold.{n}" for n in names]
    union = " UNION ALL ".join(f"SELECT '{t}' AS table_name, count(*) AS n FROM {t}" for t in tables)
    out = run_job("query.py", "--format", "json", union, env=env)
    rows = {r["table_name"]: r["n"] for r in map(json.loads, out.stdout.splitlines())}
    assert set(rows) == set(tables)
    assert {f"bronze.{t}": rows[f"bronze.{t}"] for t in bronze} == {
        f"bronze.{t}": read(spark, path).count() for t, path in bronze.items()
    }
    empty = {n for n in names if rows[f"gold.{n}"] == 0}
    assert empty <= {"exchange_compliance_flags"}, rows  # flags may be absent at this small scale


def metadata_columns(conn: hive.Connection, schema: str, table: str) -> list[str]:
    """A table's columns as a BI tool's navigator asks for them: the protocol's GetColumns call, not SQL."""
    cursor = conn.cursor()
    cursor._reset_state()
    cursor._state = cursor._STATE_RUNNING
    request = ttypes.TGetColumnsReq(sessionHandle=conn.sessionHandle, schemaName=schema, tableName=table)
    cursor._operationHandle = conn.client.GetColumns(request).operationHandle
    return [row[3] for row in cursor.fetchall()]  # COLUMN_NAME


def test_the_sql_endpoint_serves_gold_by_name_and_a_job_meanwhile_gets_one_line(
    spark: SparkSession, lh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jobs/serve.py over this lakehouse, met as a BI tool meets it (a HiveServer2 client on 127.0.0.1): gold's
    tables listed with their real columns and a GROUP BY by name answered; meanwhile a job on the same lakehouse
    stops at once with one line naming the endpoint; SIGTERM stops the endpoint and frees the catalog."""
    port, log = free_port(), tmp_path / "serve.log"
    env = {**os.environ, "MARKETLAKE_LAKEHOUSE": str(lh)}
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, str(REPO / "jobs" / "serve.py"), "--port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(log, f"jdbc:hive2://127.0.0.1:{port}/default;auth=noSasl", server, seconds=240)
        busy = run_job("summary.py", env={"MARKETLAKE_LAKEHOUSE": str(lh)}, check=False)
        assert busy.returncode == 2, busy.stderr[-2000:]
        message = busy.stderr.strip().splitlines()[-1]
        assert (
            message.startswith("error: the catalog of") and f"SQL endpoint (jobs/serve.py, pid {server.pid})" in message
        )
        with closing(hive.connect(host="127.0.0.1", port=port, auth="NOSASL")) as conn:
            cursor = conn.cursor()
            cursor.execute("SHOW TABLES IN gold")
            listed = {row[1] for row in cursor.fetchall()}
            cursor.execute("SELECT segment, count(*) AS users FROM gold.exchange_rfm GROUP BY segment ORDER BY segment")
            answered = cursor.fetchall()
            columns = metadata_columns(conn, "gold", "exchange_rfm")
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=120)
    assert code == 0, log.read_text()[-3000:]
    assert listed == set(delta_tables(lh, "gold"))
    rfm = read(spark, str(lh / "gold" / "exchange_rfm"))
    assert columns == rfm.columns
    expected = rfm.groupBy("segment").count().orderBy("segment").collect()
    assert answered == [(r["segment"], r["count"]) for r in expected] and answered
    monkeypatch.setenv("MARKETLAKE_LAKEHOUSE", str(lh))
    settings = load_settings("local")
    assert not (settings.metastore_dir / SERVING_FILE).exists()
    check_catalog_free(settings)  # Derby's lock went with the endpoint


def test_no_raw_email_or_phone_in_silver_or_gold(spark: SparkSession, lh: Path) -> None:
    def hits(path: str) -> int:
        df = read(spark, path)
        text = F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns]))
        return df.where(text.rlike(EMAIL) | text.rlike(PHONE)).count()

    assert hits(delta_tables(lh, "bronze")["exchange_users"]) > 0  # the scan finds raw PII where it is allowed
    scanned = {**delta_tables(lh, "silver"), **delta_tables(lh, "gold")}
    assert len(scanned) >= 15
    assert {name: hits(path) for name, path in scanned.items()} == dict.fromkeys(scanned, 0)
