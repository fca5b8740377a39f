"""The silver job as a user runs it, over the bronze lakehouse the pipeline tests built: every row accounted for,
re-runs change nothing, no raw PII in silver or gold, and a late parent releases the rows it held in quarantine.

The tests share one lakehouse and run in file order (the late parent ingests more bronze after the re-runs; gold
is built last); the bronze tests that compare it with its twin run in an earlier module. Jobs run in the
lakehouse's warm job process, the query that reads bronze and gold by name in a new one. Then every table is read
without Spark (delta-rs, DuckDB, pandas) through the catalogue manifest those jobs left, and compared with Spark's
read; the analysts' notebooks over gold run headless against it; last, the SQL endpoint serves the lakehouse to a
HiveServer2 client.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable
from pyhive import hive
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from TCLIService import ttypes

from marketlake.catalogue import read_catalogue
from marketlake.config import CONF_DIR, load_settings
from marketlake.formatting import format_rows
from marketlake.gold.spec import load_gold
from marketlake.lakeread import LakeSQL
from marketlake.report import collect_rows
from marketlake.session import SERVING_FILE, check_catalog_free
from tests import canonical, notebooks
from tests.conftest import REPO, JobRunners, WarmJobs, delta_tables, free_port, run_job, wait_for

EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
PHONE = r"\+\d{1,3}-\d{3}-\d{3}-\d{4}"
LAYERS = ("bronze", "silver", "gold", "ops", "quarantine")
GOLD_NOTEBOOK_FIGURES = {"1_exchange_health": 5, "2_commerce": 3, "3_customers": 3}


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


@dataclass(frozen=True)
class GoldByName:
    build: str  # gold_build.py's stdout
    counts: dict[str, int]  # gold table -> rows, counted by name in a new process
    bronze: dict[str, int]  # bronze table -> rows, counted by name in that process
    catalog: set[str]  # every table that process's catalog lists, as database.table


@pytest.fixture(scope="module")
def gold(lh: Path, jobs: WarmJobs, warm_jobs: JobRunners) -> GoldByName:
    """The demo's gold and anomaly steps on this lakehouse, then, from a new process, every bronze and gold table
    counted by name and every table the catalog lists (that process, like every job, leaves the catalogue manifest
    behind when it ends)."""
    build = jobs("gold_build.py", "--start", "2026-03-01", "--end", "2026-03-04")
    jobs("anomalies.py", "--start", "2026-03-01", "--end", "2026-03-04")
    names = [f"gold.{s.name}" for s in load_gold(CONF_DIR).tables.values()]
    names += [f"bronze.{t}" for t in delta_tables(lh, "bronze")]
    warm_jobs.release(lh)  # the new process opens the catalog the warm one holds
    union = " UNION ALL ".join(f"SELECT '{n}' AS table_name, count(*) AS n FROM {n}" for n in names)
    listings = [f"SHOW TABLES IN {db}" for db in (*LAYERS, "default")]
    out = run_job("query.py", "--format", "json", union, "SHOW DATABASES", *listings, env=env_of(lh))
    rows = [json.loads(line) for line in out.stdout.splitlines() if line]  # a result without rows prints ""
    assert {r["namespace"] for r in rows if set(r) == {"namespace"}} == {*LAYERS, "default"}  # no database unlisted
    counts = {r["table_name"]: r["n"] for r in rows if "table_name" in r}
    return GoldByName(
        build=build.stdout,
        counts={n.removeprefix("gold."): c for n, c in counts.items() if n.startswith("gold.")},
        bronze={n.removeprefix("bronze."): c for n, c in counts.items() if n.startswith("bronze.")},
        catalog={f"{r['namespace']}.{r['tableName']}" for r in rows if "tableName" in r and not r["isTemporary"]},
    )


def env_of(lh: Path) -> dict[str, str]:
    return {"MARKETLAKE_LAKEHOUSE": str(lh)}


def test_gold_builds_every_table_and_a_new_session_reads_bronze_and_gold_by_name(
    spark: SparkSession, lh: Path, gold: GoldByName
) -> None:
    """The demo's gold step on this lakehouse, then every bronze and gold table read by name from a new process
    (the catalog persists across sessions): bronze with Spark's own counts, gold with a row or more."""
    names = [s.name for s in load_gold(CONF_DIR).tables.values()]
    assert all(f"gold.{n}" in gold.build for n in names), gold.build
    assert set(gold.counts) == set(names)
    empty = {n for n, count in gold.counts.items() if count == 0}
    assert empty <= {"exchange_compliance_flags"}, gold.counts  # flags may be absent at this small scale
    bronze = delta_tables(lh, "bronze")
    assert len(bronze) == 15
    assert gold.bronze == {t: read(spark, path).count() for t, path in bronze.items()}


def test_the_catalogue_manifest_lists_every_table_of_the_catalog(lh: Path, gold: GoldByName) -> None:
    catalogue = read_catalogue(lh)
    assert set(catalogue.entries) == gold.catalog
    assert {name.split(".")[0] for name in catalogue.entries} == set(LAYERS)
    for name, entry in catalogue.entries.items():
        database, table = name.split(".")
        assert (Path(entry.location), entry.provider) == (lh / database / table, "delta"), name
        assert entry.kind in ("MANAGED", "EXTERNAL"), name  # silver.trends_trend_signals is written by path


def test_no_raw_email_or_phone_in_silver_or_gold(spark: SparkSession, lh: Path) -> None:
    def hits(path: str) -> int:
        df = read(spark, path)
        text = F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns]))
        return df.where(text.rlike(EMAIL) | text.rlike(PHONE)).count()

    assert hits(delta_tables(lh, "bronze")["exchange_users"]) > 0  # the scan finds raw PII where it is allowed
    scanned = {**delta_tables(lh, "silver"), **delta_tables(lh, "gold")}
    assert len(scanned) >= 15
    assert {name: hits(path) for name, path in scanned.items()} == dict.fromkeys(scanned, 0)


def test_gold_and_silver_read_the_same_without_spark(spark: SparkSession, lh: Path, gold: GoldByName) -> None:
    """Every gold and silver table, and bronze's trades (liquid-clustered, with a change feed and drifted columns),
    read three ways: by Spark (by path), by DuckDB over delta-rs's Arrow (by name, through the manifest) and by pandas
    over delta-rs (by path): the same rows, to the canonical checksum. It runs after the PII scan, whose reads leave
    the session's Delta snapshots of these tables cached, and Spark reads four tables at a time: each read of these
    small tables is mostly latency (planning, scheduling)."""
    catalogue = read_catalogue(lh)
    tables = {f"{layer}.{t}": path for layer in ("gold", "silver") for t, path in delta_tables(lh, layer).items()}
    assert set(tables) == {n for n in catalogue.entries if n.split(".")[0] in ("gold", "silver")}
    assert {f"gold.{t}" for t in gold.counts} <= set(tables) and len(tables) >= 30
    tables["bronze.exchange_trades"] = str(lh / "bronze" / "exchange_trades")

    def spark_digest(path: str) -> tuple[int, str]:
        return canonical.digest(canonical.spark_rows(read(spark, path)))

    with ThreadPoolExecutor(max_workers=4) as pool:
        by_spark = dict(zip(tables, pool.map(spark_digest, tables.values()), strict=True))
    with LakeSQL(catalogue) as lake:
        for name, path in tables.items():
            duck = lake.relation(f"SELECT * FROM {name}")
            assert duck is not None
            by_duckdb = canonical.digest(dict(zip(duck.columns, r, strict=True)) for r in duck.fetchall())
            by_pandas = canonical.digest(canonical.pandas_rows(DeltaTable(path).to_pandas(types_mapper=pd.ArrowDtype)))
            assert (by_duckdb, by_pandas) == (by_spark[name], by_spark[name]), name


def test_query_with_duckdb_answers_as_spark_does(spark: SparkSession, lh: Path, gold: GoldByName) -> None:
    """query.py --engine duckdb by name, in a process without Spark, prints what the Spark engine prints."""
    statements = [
        "SELECT * FROM {rfm} ORDER BY as_of_date, user_id",
        "SELECT segment, count(*) AS users FROM {rfm} GROUP BY 1 ORDER BY 1",
    ]
    duck = run_job(
        "query.py",
        "--engine",
        "duckdb",
        "--format",
        "json",
        "--limit",
        "100000",
        *(s.format(rfm="gold.exchange_rfm") for s in statements),
        env=env_of(lh),
    )
    by_path = f"delta.`{lh / 'gold' / 'exchange_rfm'}`"
    answers = [collect_rows(spark.sql(s.format(rfm=by_path)), 100000) for s in statements]
    assert all(rows and not more for rows, _, more in answers)
    assert duck.stdout == "".join(format_rows(rows, columns, "json") + "\n" for rows, columns, _ in answers)


def metadata_columns(conn: hive.Connection, schema: str, table: str) -> list[str]:
    """A table's columns as a BI tool's navigator asks for them: the protocol's GetColumns call, not SQL."""
    cursor = conn.cursor()
    cursor._reset_state()
    cursor._state = cursor._STATE_RUNNING
    request = ttypes.TGetColumnsReq(sessionHandle=conn.sessionHandle, schemaName=schema, tableName=table)
    cursor._operationHandle = conn.client.GetColumns(request).operationHandle
    return [row[3] for row in cursor.fetchall()]  # COLUMN_NAME


@pytest.mark.parametrize("notebook", ["1_exchange_health", "2_commerce", "3_customers"])
def test_the_gold_notebooks_run_top_to_bottom_over_this_lakehouse(lh: Path, gold: GoldByName, notebook: str) -> None:
    """Each analysts' notebook over gold executes headless in a fresh kernel against this lakehouse (read by name
    without Spark) with no cell raising, and draws its plots; the executed copy has outputs, which the committed
    notebooks must not carry."""
    executed = notebooks.execute(notebooks.NOTEBOOKS / f"{notebook}.ipynb", lh)
    assert notebooks.figures(executed) == GOLD_NOTEBOOK_FIGURES[notebook]
    assert notebooks.stored_outputs(executed)


def test_the_sql_endpoint_serves_gold_by_name_and_a_job_meanwhile_gets_one_line(
    spark: SparkSession, lh: Path, gold: GoldByName, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jobs/serve.py over this lakehouse, met as a BI tool meets it (a HiveServer2 client on 127.0.0.1): gold's
    tables listed with their real columns, and a GROUP BY by name answered as query.py answers it (its Spark-free
    engine, which needs no catalog and so runs beside the endpoint); meanwhile a Spark job on the same lakehouse
    stops at once with one line naming the endpoint; SIGTERM stops the endpoint and frees the catalog."""
    question = "SELECT segment, count(*) AS users FROM gold.exchange_rfm GROUP BY segment ORDER BY segment"
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
        assert message.startswith("error: the catalog of")
        assert f"SQL endpoint (jobs/serve.py, pid {server.pid})" in message
        duck = run_job("query.py", "--engine", "duckdb", "--format", "json", question, env=env_of(lh))
        with closing(hive.connect(host="127.0.0.1", port=port, auth="NOSASL")) as conn:
            cursor = conn.cursor()
            cursor.execute("SHOW TABLES IN gold")
            listed = {row[1] for row in cursor.fetchall()}
            cursor.execute(question)
            answered = cursor.fetchall()
            columns = metadata_columns(conn, "gold", "exchange_rfm")
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=120)
    assert code == 0, log.read_text()[-3000:]
    assert listed == set(delta_tables(lh, "gold"))
    assert columns == read(spark, str(lh / "gold" / "exchange_rfm")).columns
    expected = [(r["segment"], r["users"]) for r in map(json.loads, duck.stdout.splitlines())]
    assert answered == expected and len(expected) >= 2
    monkeypatch.setenv("MARKETLAKE_LAKEHOUSE", str(lh))
    settings = load_settings("local")
    assert not (settings.metastore_dir / SERVING_FILE).exists()
    check_catalog_free(settings)  # Derby's lock went with the endpoint
