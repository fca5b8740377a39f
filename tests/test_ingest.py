"""Bronze ingestion: every line accounted for, idempotent by file, atomic, and open to users' own exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import marketlake.ingest as ingest_mod
from marketlake.config import Settings, SourceSpec
from marketlake.errors import InputError
from marketlake.ingest import IngestReport, ingest_files, landing_files, source_files
from marketlake.tables import append_exactly_once, current_version

GOOD = (
    '{"trade_id":"T%d","order_id":"O1","user_id":"U1","pair":"BTC/USDT","side":"buy","quantity":"0.5",'
    '"price":"65000.00","fee":"0.1","fee_asset":"USDT","executed_at":"2026-01-02T10:00:00Z"}'
)


def _landing_file(root: Path, day: str, name: str, lines: list[str]) -> Path:
    folder = root / "exchange" / "trades" / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _ingest(spark: SparkSession, spec: SourceSpec, root: Path, table: str, day: str | None = None) -> IngestReport:
    """Ingest whatever landing files of the entity lie under root (one day's, with day)."""
    return ingest_files(spark, spec, landing_files(spark, str(root), spec, day), table)


def _trades_spec(settings: Settings) -> SourceSpec:
    return settings.domain_sources("exchange")["trades"]


@pytest.fixture
def trades_with_three_rows(
    spark: SparkSession, settings: Settings, database: str, tmp_path: Path
) -> tuple[SourceSpec, str]:
    """A bronze trades table in this test's database holding one ingested landing file of three trades."""
    spec, table = _trades_spec(settings), f"{database}.exchange_trades"
    _landing_file(tmp_path, "2026-01-02", "a.jsonl", [GOOD % i for i in range(3)])
    _ingest(spark, spec, tmp_path, table)
    return spec, table


def test_malformed_mistyped_and_truncated_lines_are_all_accounted_for(
    spark: SparkSession, settings: Settings, database: str, tmp_path: Path
) -> None:
    lines = [
        GOOD % 1,
        GOOD.replace('"price":"65000.00"', '"price":"sixty-five"') % 2,  # mistyped
        (GOOD % 3)[:57],  # truncated
        "<html><body>Bad Gateway</body></html>",  # malformed
        "",  # blank
        GOOD.replace('"fee":"0.1",', "") % 6,  # missing a field: parses, silver judges it
        GOOD % 1,  # exact duplicate: kept in bronze, deduplicated in silver
    ]
    _landing_file(tmp_path, "2026-01-02", "trades-2026-01-02-000.jsonl", lines)
    table = f"{database}.exchange_trades"
    files = landing_files(spark, str(tmp_path), _trades_spec(settings))
    report = ingest_files(spark, _trades_spec(settings), files, table)

    assert (report.lines_read, report.rows_written, report.unparseable) == (7, 7, 3)
    assert [(b[1], b[2]) for b in report.bad_lines] == [(3, "malformed_json"), (4, "malformed_json"), (5, "blank_line")]
    actual = spark.table(table).select(
        "_line_no", "_parse_error", "trade_id", "price", "fee", F.col("_landing_date").cast("string"), "_raw_record"
    )
    expected = spark.createDataFrame(
        [
            (1, None, "T1", "65000.00", "0.1", "2026-01-02", lines[0]),
            (2, None, "T2", "sixty-five", "0.1", "2026-01-02", lines[1]),
            (3, "malformed_json", None, None, None, "2026-01-02", lines[2]),
            (4, "malformed_json", None, None, None, "2026-01-02", lines[3]),
            (5, "blank_line", None, None, None, "2026-01-02", ""),
            (6, None, "T6", "65000.00", None, "2026-01-02", lines[5]),
            (7, None, "T1", "65000.00", "0.1", "2026-01-02", lines[6]),
        ],
        "_line_no long, _parse_error string, trade_id string, price string, fee string, "
        "_landing_date string, _raw_record string",
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_reingesting_the_same_files_adds_nothing(
    spark: SparkSession, settings: Settings, database: str, tmp_path: Path
) -> None:
    spec = _trades_spec(settings)
    table = f"{database}.exchange_trades"
    _landing_file(tmp_path, "2026-01-02", "a.jsonl", [GOOD % i for i in range(5)])
    _landing_file(tmp_path, "2026-01-03", "b.jsonl", [GOOD % i for i in range(5, 8)])
    first = _ingest(spark, spec, tmp_path, table)
    version = current_version(spark, table)

    again = _ingest(spark, spec, tmp_path, table)
    one_day = _ingest(spark, spec, tmp_path, table, "2026-01-03")

    assert (first.files_new, first.rows_written) == (2, 8)
    assert (again.files_found, again.files_new, again.rows_written) == (2, 0, 0)
    assert (one_day.files_found, one_day.files_new) == (1, 0)
    assert current_version(spark, table) == version
    assert spark.table(table).count() == 8

    _landing_file(tmp_path, "2026-01-04", "c.jsonl", [GOOD % 9])
    later = _ingest(spark, spec, tmp_path, table)
    assert (later.files_found, later.files_new, later.rows_written) == (3, 1, 1)
    assert spark.table(table).count() == 9


def test_a_job_killed_mid_write_leaves_the_table_as_it_was(
    spark: SparkSession,
    trades_with_three_rows: tuple[SourceSpec, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec, table = trades_with_three_rows
    version, rows = current_version(spark, table), spark.table(table).count()
    for day in ("2026-01-03", "2026-01-04", "2026-01-05"):
        _landing_file(tmp_path, day, f"{day}.jsonl", [GOOD % i for i in range(50)])
    real = ingest_mod.with_bronze_metadata

    def dies_on_one_file(*args: Any, **kwargs: Any) -> DataFrame:
        df = real(*args, **kwargs)
        crash = F.when(
            F.col("_source_file").endswith("2026-01-04.jsonl") & (F.col("_line_no") == 40),
            F.raise_error(F.lit("executor killed")),
        )
        return df.withColumn("trade_id", F.coalesce(crash, F.col("trade_id")))

    monkeypatch.setattr(ingest_mod, "with_bronze_metadata", dies_on_one_file)
    with pytest.raises(Exception, match="executor killed"):
        _ingest(spark, spec, tmp_path, table)
    assert current_version(spark, table) == version
    assert spark.table(table).count() == rows

    monkeypatch.setattr(ingest_mod, "with_bronze_metadata", real)
    rerun = _ingest(spark, spec, tmp_path, table)
    assert (rerun.files_new, rerun.rows_written) == (3, 150)
    assert spark.table(table).count() == rows + 150


def test_a_second_writer_planned_from_the_same_snapshot_adds_nothing(spark: SparkSession, database: str) -> None:
    table = f"{database}.t"
    spark.createDataFrame([(1,)], "x int").write.format("delta").saveAsTable(table)
    planned = current_version(spark, table) + 1
    batch = spark.createDataFrame([(2,), (3,)], "x int")
    assert append_exactly_once(batch, table, "marketlake:test", planned) == 2
    assert append_exactly_once(batch, table, "marketlake:test", planned) is None
    assert sorted(r.x for r in spark.table(table).collect()) == [1, 2, 3]


def test_an_ingest_that_planned_before_a_concurrent_one_committed_adds_nothing(
    spark: SparkSession,
    trades_with_three_rows: tuple[SourceSpec, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec, table = trades_with_three_rows
    stale = current_version(spark, table)  # our run plans here ...
    _landing_file(tmp_path, "2026-01-03", "b.jsonl", [GOOD % i for i in range(3, 5)])
    files = landing_files(spark, str(tmp_path), spec)
    assert ingest_files(spark, spec, files, table).rows_written == 2  # ... another run commits b first ...
    monkeypatch.setattr(ingest_mod, "current_version", lambda *_: stale)
    report = ingest_files(spark, spec, files, table)  # ... then ours, planned from the old snapshot, commits
    assert (report.files_found, report.files_new, report.rows_written) == (2, 0, 0)
    assert spark.table(table).count() == 5


def test_a_count_mismatch_undoes_the_commit_and_fails(
    spark: SparkSession,
    trades_with_three_rows: tuple[SourceSpec, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec, table = trades_with_three_rows
    _landing_file(tmp_path, "2026-01-03", "b.jsonl", [GOOD % i for i in range(3, 5)])
    real = ingest_mod.parse_files
    monkeypatch.setattr(ingest_mod, "parse_files", lambda *a, **k: (real(*a, **k)[0], 99))
    with pytest.raises(RuntimeError, match=r"read 99 lines but wrote 2 rows .* the commit was undone"):
        _ingest(spark, spec, tmp_path, table)
    assert sorted(r.trade_id for r in spark.table(table).collect()) == ["T0", "T1", "T2"]
    monkeypatch.setattr(ingest_mod, "parse_files", real)
    assert _ingest(spark, spec, tmp_path, table).rows_written == 2


def test_paths_with_spaces_cr_line_ends_and_rewritten_files(
    spark: SparkSession, settings: Settings, database: str, tmp_path: Path
) -> None:
    spec = _trades_spec(settings)
    table = f"{database}.exchange_trades"
    root = tmp_path / "my exports"
    path = _landing_file(root, "2026-01-02", "trades 1.jsonl", [])
    path.write_text((GOOD % 1) + "\r" + (GOOD % 2) + "\r\n")
    first_size = path.stat().st_size
    first = _ingest(spark, spec, root, table)
    again = _ingest(spark, spec, root, table)
    assert (first.lines_read, first.rows_written, again.files_new) == (2, 2, 0)
    path.write_text((GOOD % 1) + "\n" + (GOOD % 2) + "\n" + (GOOD % 3) + "\n")  # same name, new content
    rewritten = _ingest(spark, spec, root, table)
    assert (rewritten.files_new, rewritten.rows_written) == (1, 3)
    sizes = spark.table(table).groupBy("_source_size").count().orderBy("_source_size").collect()
    assert [(r["_source_size"], r["count"]) for r in sizes] == [(first_size, 2), (path.stat().st_size, 3)]
    assert {r[0] for r in spark.table(table).select("_source_file").distinct().collect()} == {
        "file:" + quote(str(path), safe="/=")
    }


def test_users_own_exports_in_csv_jsonl_and_parquet(
    spark: SparkSession, settings: Settings, database: str, tmp_path: Path
) -> None:
    specs = settings.domain_sources("exchange")
    src = tmp_path / "exports"
    (src / "trades").mkdir(parents=True)
    (src / "logins.csv").write_text("login_id,user_id,login_at,browser\nL1,U1,2026-01-02 10:00:00,firefox\n")
    (src / "trades" / "part-1.jsonl").write_text((GOOD % 1) + "\n" + (GOOD % 2) + "\n")
    (src / "users").mkdir()
    pd.DataFrame({"user_id": ["U1"], "email": ["a@x.org"], "tier": ["VIP"], "age": [31]}).to_parquet(
        src / "users" / "part-1.parquet"
    )
    pd.DataFrame({"user_id": ["U2"], "email": ["b@x.org"], "tier": ["Basic"]}).to_parquet(
        src / "users" / "part-2.parquet"
    )

    plan = source_files(spark, str(src), specs)
    assert {e: len(f) for e, f in plan.items()} == {"logins": 1, "trades": 1, "users": 2}
    reports = {
        e: ingest_files(spark, specs[e], files, f"{database}.{e}", landing_date="2026-01-02", user_files=True)
        for e, files in plan.items()
    }
    assert {e: (r.lines_read, r.rows_written, r.unparseable) for e, r in reports.items()} == {
        "logins": (1, 1, 0),
        "trades": (2, 2, 0),
        "users": (2, 2, 0),
    }
    users = spark.table(f"{database}.users").select(
        "user_id", "tier", "_rescued_data", "_source_format", F.col("_landing_date").cast("string")
    )
    expected = spark.createDataFrame(
        [
            ("U1", "VIP", '{"age":"31"}', "parquet", "2026-01-02"),
            ("U2", "Basic", None, "parquet", "2026-01-02"),
        ],
        "user_id string, tier string, _rescued_data string, _source_format string, _landing_date string",
    )
    assert_df_equality(users, expected, ignore_row_order=True, ignore_nullable=True)
    login = spark.table(f"{database}.logins").select("login_id", "login_at", "_rescued_data").first()
    assert login.asDict() == {
        "login_id": "L1",
        "login_at": "2026-01-02 10:00:00",
        "_rescued_data": '{"browser":"firefox"}',
    }


def test_user_exports_that_cannot_be_placed_fail_clearly(
    spark: SparkSession, settings: Settings, database: str, tmp_path: Path
) -> None:
    specs = settings.domain_sources("exchange")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "logins.csv").write_text("user,when\nU1,2026-01-02\n")
    plan = source_files(spark, str(tmp_path / "a"), specs)
    with pytest.raises(InputError, match=r"lacks the key column\(s\) \['login_id'\] of exchange.logins"):
        ingest_files(spark, specs["logins"], plan["logins"], f"{database}.logins", user_files=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "clients.csv").write_text("id\n1\n")
    with pytest.raises(InputError, match="cannot tell which entity this is"):
        source_files(spark, str(tmp_path / "b"), specs)
    with pytest.raises(InputError, match="does not exist"):
        source_files(spark, str(tmp_path / "nope"), specs)
