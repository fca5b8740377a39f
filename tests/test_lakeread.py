"""Reading tables without Spark: the catalogue manifest follows the metastore (tables created, dropped, renamed; views;
no temporary views) and every job refreshes it; delta-rs and DuckDB return exactly Spark's rows for hand-made Delta
tables with the features we write (nulls, UTC timestamps, decimals, nested types, partitions, a MERGE/UPDATE/DELETE
history, deletion vectors, column mapping, liquid clustering); query.py --engine duckdb answers by name without a JVM
and turns every user mistake into one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from marketlake.catalogue import (
    CatalogueEntry,
    catalogue_path,
    list_catalogue,
    parse_table_information,
    read_catalogue,
    write_catalogue,
)
from marketlake.config import Settings
from marketlake.errors import InputError
from marketlake.lakeread import LakeSQL, qualified_names, read_table
from marketlake.location import Location
from tests import canonical
from tests.conftest import REPO

JobInProcess = Callable[..., tuple[int, str, str]]


def publish(spark: SparkSession, root: Path) -> Path:
    """The session's catalogue written as the manifest of a lakehouse at root (the jobs do this when they end)."""
    return write_catalogue(root, list_catalogue(spark))


def entries_of(root: Path, database: str) -> dict[str, CatalogueEntry]:
    return {e.table: e for e in read_catalogue(root).entries.values() if e.database == database}


def delta_log_actions(location: str) -> list[dict]:
    return [json.loads(line) for f in sorted(Path(location, "_delta_log").glob("*.json")) for line in f.open()]


def test_table_information_lines_parse_into_fields() -> None:
    text = "CatalogTable(\nDatabase: gold\nTable: t\nComment: a: b\nType: MANAGED\nProvider: delta\n"
    text += "Location: file:/lh/gold/t\nSchema: root\n |-- a: int)"
    assert parse_table_information(text) == {
        "Database": "gold",
        "Table": "t",
        "Comment": "a: b",
        "Type": "MANAGED",
        "Provider": "delta",
        "Location": "file:/lh/gold/t",
        "Schema": "root",
    }


def test_qualified_names_skip_literals_and_comments() -> None:
    sql = """SELECT 'gold.in_text', g.segment -- gold.in_comment
             FROM gold.Exchange_RFM g JOIN "silver"."users" u USING (user_id) /* bronze.x */"""
    assert qualified_names(sql) >= {("gold", "exchange_rfm"), ("silver", "users")}
    assert not {("gold", "in_text"), ("gold", "in_comment"), ("bronze", "x")} & qualified_names(sql)


def test_the_manifest_follows_the_metastore(spark: SparkSession, database: str, tmp_path: Path) -> None:
    root = tmp_path / "lh"
    spark.sql(f"CREATE TABLE {database}.kept (id INT) USING delta")
    spark.sql(f"CREATE TABLE {database}.dropped (id INT) USING delta")
    spark.sql(f"CREATE TABLE {database}.before_rename (id INT) USING delta")
    spark.sql(f"CREATE VIEW {database}.a_view AS SELECT 1 AS one")
    spark.sql("CREATE OR REPLACE TEMP VIEW a_temp_view AS SELECT 1 AS one")
    publish(spark, root)
    listed = entries_of(root, database)
    assert set(listed) == {"kept", "dropped", "before_rename", "a_view"}
    assert listed["kept"] == CatalogueEntry(f"{database}.kept", str(tmp_path / database / "kept"), "delta", "MANAGED")
    assert (listed["a_view"].kind, listed["a_view"].location) == ("VIEW", "")
    assert not any(e.table == "a_temp_view" for e in read_catalogue(root).entries.values())

    spark.sql(f"DROP TABLE {database}.dropped")
    spark.sql(f"ALTER TABLE {database}.before_rename RENAME TO {database}.renamed")
    publish(spark, root)
    listed = entries_of(root, database)
    assert set(listed) == {"kept", "renamed", "a_view"}
    assert listed["renamed"].location == str(tmp_path / database / "renamed")
    assert (Path(listed["renamed"].location) / "_delta_log").is_dir()
    assert not list(root.glob(".*.tmp"))  # the temporary file became the manifest


def test_every_job_refreshes_the_manifest_and_a_duckdb_query_does_not(
    spark: SparkSession, settings: Settings, database: str, job_in_process: JobInProcess
) -> None:
    code, _, err = job_in_process("query.py", f"CREATE TABLE {database}.made_by_sql (id INT) USING delta")
    assert code == 0, err
    manifest = catalogue_path(settings.lakehouse_root).local_path
    assert f"{database}.made_by_sql" in read_catalogue(settings.lakehouse_root).entries
    written = manifest.stat().st_mtime_ns
    code, out, err = job_in_process("query.py", "--engine", "duckdb", "--format", "json", "SELECT 1 AS one")
    assert (code, out, err) == (0, '{"one": 1}\n', "")
    assert manifest.stat().st_mtime_ns == written


@pytest.fixture(scope="module")
def made(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """Hand-made Delta tables in a database of their own (made once: the tests only read them), and the manifest of a
    lakehouse listing them."""
    tmp = tmp_path_factory.mktemp("lakeread")
    db = f"t_{uuid.uuid4().hex[:10]}"
    spark.sql(f"CREATE DATABASE {db} LOCATION '{tmp / db}'")
    spark.sql(
        f"""CREATE TABLE {db}.kinds (id INT, amount DECIMAL(20, 8), price DOUBLE, happened_at TIMESTAMP, day DATE,
            note STRING, tags ARRAY<STRING>, attrs MAP<STRING, INT>, info STRUCT<a: STRING, b: BIGINT>, ok BOOLEAN)
            USING delta"""
    )
    spark.sql(
        f"""INSERT INTO {db}.kinds VALUES
            (1, 12345678.12345678, 0.1, TIMESTAMP'2026-03-01 23:30:00', DATE'2026-03-01', 'é', array('a', NULL),
             map('k', 1), named_struct('a', 'x', 'b', 7), true),
            (2, -0.00000001, double('NaN'), TIMESTAMP'2026-03-02 00:00:00.123456', DATE'2026-03-02', '', array(),
             map(), named_struct('a', NULL, 'b', NULL), false),
            (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"""
    )
    spark.sql(f"CREATE TABLE {db}.parted (id INT, day DATE, v STRING) USING delta PARTITIONED BY (day)")
    spark.sql(f"INSERT INTO {db}.parted VALUES (1, DATE'2026-03-01', 'a'), (2, DATE'2026-03-02', 'b'), (3, NULL, 'c')")
    spark.sql(f"CREATE TABLE {db}.merged (id INT, v STRING) USING delta")
    spark.sql(f"INSERT INTO {db}.merged VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    spark.sql(
        f"""MERGE INTO {db}.merged t USING (SELECT * FROM VALUES (2, 'B'), (4, 'd') AS s(id, v)) s ON t.id = s.id
            WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"""
    )
    spark.sql(f"UPDATE {db}.merged SET v = 'C' WHERE id = 3")
    spark.sql(f"DELETE FROM {db}.merged WHERE id = 1")
    spark.sql(
        f"""CREATE TABLE {db}.dv (id INT, v STRING) USING delta
            TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')"""
    )
    spark.range(1, 11).selectExpr("CAST(id AS INT) AS id", "CAST(id AS STRING) AS v").coalesce(1).write.format(
        "delta"
    ).mode("append").saveAsTable(f"{db}.dv")
    spark.sql(f"DELETE FROM {db}.dv WHERE id % 3 = 0")
    spark.sql(f"UPDATE {db}.dv SET v = 'one' WHERE id = 1")
    spark.sql(
        f"""CREATE TABLE {db}.mapped (id INT, v STRING, gone STRING) USING delta
            TBLPROPERTIES ('delta.columnMapping.mode' = 'name')"""
    )
    spark.sql(f"INSERT INTO {db}.mapped VALUES (1, 'a', 'x'), (2, 'b', 'y')")
    spark.sql(f"ALTER TABLE {db}.mapped RENAME COLUMN v TO label")
    spark.sql(f"ALTER TABLE {db}.mapped DROP COLUMN gone")
    spark.sql(f"CREATE TABLE {db}.clustered (id INT, day DATE) USING delta CLUSTER BY (day)")
    spark.sql(f"INSERT INTO {db}.clustered VALUES (1, DATE'2026-03-01'), (2, DATE'2026-03-02')")
    root = tmp / "lh"
    publish(spark, root)
    yield root, db
    spark.sql(f"DROP DATABASE IF EXISTS {db} CASCADE")


MADE = ("kinds", "parted", "merged", "dv", "mapped", "clustered")


def test_delta_rs_and_duckdb_return_sparks_rows(spark: SparkSession, made: tuple[Path, str]) -> None:
    root, db = made
    catalogue = read_catalogue(root)
    with LakeSQL(catalogue) as lake:
        for table in MADE:
            expected = canonical.spark_rows(spark.table(f"{db}.{table}"))
            duck = lake.relation(f"SELECT * FROM {db}.{table}")
            assert duck is not None
            duck_rows = [dict(zip(duck.columns, r, strict=True)) for r in duck.fetchall()]
            arrow_rows = read_table(f"{db}.{table}", catalogue).to_pylist()
            pandas_rows = canonical.pandas_rows(
                read_table(f"{db}.{table}", catalogue).to_pandas(types_mapper=pd.ArrowDtype)
            )
            for reader, rows in (("duckdb", duck_rows), ("arrow", arrow_rows), ("pandas", pandas_rows)):
                assert canonical.digest(rows) == canonical.digest(expected), (
                    f"{table} by {reader}\n{canonical.differences(expected, rows)}"
                )


def test_values_come_back_typed_and_in_utc(made: tuple[Path, str]) -> None:
    root, db = made
    with LakeSQL(read_catalogue(root)) as lake:
        rel = lake.relation(f"SELECT id, amount, happened_at, day, tags, attrs, info FROM {db}.kinds ORDER BY id")
        assert rel is not None
        assert rel.fetchall() == [
            (
                1,
                Decimal("12345678.12345678"),
                datetime(2026, 3, 1, 23, 30, tzinfo=UTC),
                date(2026, 3, 1),
                ["a", None],
                {"k": 1},
                {"a": "x", "b": 7},
            ),
            (
                2,
                Decimal("-0.00000001"),
                datetime(2026, 3, 2, 0, 0, 0, 123456, tzinfo=UTC),
                date(2026, 3, 2),
                [],
                {},
                {"a": None, "b": None},
            ),
            (3, None, None, None, None, None, None),
        ]
        assert lake.relation(f"SELECT * FROM {db}.merged ORDER BY id").fetchall() == [(2, "B"), (3, "C"), (4, "d")]
        assert lake.relation(f"SELECT id, label FROM {db}.mapped ORDER BY id").fetchall() == [(1, "a"), (2, "b")]
        assert lake.relation(f"SELECT count(*) FROM {db}.parted WHERE day IS NULL").fetchall() == [(1,)]


def test_deletion_vectors_are_applied(spark: SparkSession, made: tuple[Path, str]) -> None:
    root, db = made
    location = read_catalogue(root).resolve(f"{db}.dv").location
    actions = delta_log_actions(location)
    assert any("deletionVector" in (a.get("add") or {}) for a in actions), "the DELETE wrote no deletion vector"
    assert "deletionVectors" in next(a["protocol"] for a in actions if "protocol" in a)["readerFeatures"]
    with LakeSQL(read_catalogue(root)) as lake:
        rel = lake.relation(f"SELECT id, v FROM {db}.dv ORDER BY id")
        assert rel is not None
        assert rel.fetchall() == [(1, "one"), (2, "2"), (4, "4"), (5, "5"), (7, "7"), (8, "8"), (10, "10")]
    assert spark.table(f"{db}.dv").count() == 7


def duckdb_job(root: Path, *args: str) -> subprocess.CompletedProcess:
    """query.py --engine duckdb as a user runs it, with Python reporting every module it imports."""
    return subprocess.run(
        [sys.executable, "-X", "importtime", str(REPO / "jobs" / "query.py"), "--engine", "duckdb", *args],
        cwd=REPO,
        env={**os.environ, "MARKETLAKE_LAKEHOUSE": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_query_answers_by_name_without_importing_spark(made: tuple[Path, str]) -> None:
    root, db = made
    result = duckdb_job(
        root,
        "--format",
        "json",
        f"SELECT id, amount, happened_at FROM {db}.kinds WHERE id < 3 ORDER BY id",
        "--limit",
        "1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"id": 1, "amount": "12345678.12345678", "happened_at": "2026-03-01 23:30:00"}  # as the Spark engine prints it
    ]
    assert "(showing the first 1 rows; raise --limit for more)" in result.stderr
    imported = [line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")]
    assert "duckdb" in imported and "deltalake" in imported
    assert not [m for m in imported if m.split(".")[0] in ("pyspark", "py4j", "delta")]


def test_query_mistakes_are_one_line(
    made: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, job_in_process: JobInProcess
) -> None:
    root, db = made

    def error(sql: str) -> str:
        code, _, err = job_in_process("query.py", "--engine", "duckdb", sql)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
        return lines[0]

    monkeypatch.setenv("MARKETLAKE_LAKEHOUSE", str(root))
    unknown = error(f"SELECT * FROM {db}.nope")
    assert f"no table {db}.nope" in unknown and "kinds" in unknown and "refresh" in unknown
    assert "Parser Error" in error(f"SELEC * FROM {db}.kinds")
    assert "nocolumn" in error(f"SELECT nocolumn FROM {db}.kinds")
    monkeypatch.setenv("MARKETLAKE_LAKEHOUSE", str(tmp_path / "no_lakehouse"))
    missing = error("SELECT 1")
    assert "no catalogue manifest" in missing and "run a job" in missing


def test_views_and_stale_entries_are_named(spark: SparkSession, database: str, tmp_path: Path) -> None:
    spark.sql(f"CREATE VIEW {database}.v AS SELECT 1 AS one")
    spark.sql(f"CREATE TABLE {database}.dropped_later (id INT) USING delta")
    root = tmp_path / "lh"
    publish(spark, root)
    with LakeSQL(read_catalogue(root)) as lake, pytest.raises(InputError, match="is a view"):
        lake.relation(f"SELECT * FROM {database}.v")
    spark.sql(f"DROP TABLE {database}.dropped_later")  # the manifest is stale until a job refreshes it
    with LakeSQL(read_catalogue(root)) as lake, pytest.raises(InputError, match=r"no Delta table at .*refresh"):
        lake.relation(f"SELECT * FROM {database}.dropped_later")


def test_a_lakehouse_on_hdfs_is_read_by_name_without_a_jvm(spark: SparkSession, hdfs: str) -> None:
    """On HDFS a job writes the manifest through Hadoop's FileSystem (a hidden temporary file renamed over the old
    manifest), and lakeread reads it, then the table it names, through delta-rs's own HDFS client."""
    root = Location.of(f"{hdfs}/lake-{uuid.uuid4().hex[:8]}")
    location = str(root / "gold" / "t")
    spark.range(3).write.format("delta").save(location)
    stale = CatalogueEntry("gold.gone", str(root / "gold" / "gone"), "delta", "EXTERNAL")
    assert write_catalogue(root, [stale], spark) == catalogue_path(root)
    entry = CatalogueEntry("gold.t", location, "delta", "EXTERNAL")
    write_catalogue(root, [entry], spark)
    catalogue = read_catalogue(root)
    assert catalogue.entries == {"gold.t": entry}
    assert sorted(read_table("gold.t", catalogue).column("id").to_pylist()) == [0, 1, 2]
    folder = spark._jvm.org.apache.hadoop.fs.Path(str(root))
    listed = folder.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).listStatus(folder)
    assert sorted(str(s.getPath().getName()) for s in listed) == ["_catalogue.json", "gold"]  # no temporary file
