"""Table upkeep: OPTIMIZE and VACUUM keep every row, time travel holds within the retention and ends beyond it, a
second run commits nothing, a dry run changes nothing, and the job reports files before and after."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType
from pyspark.testing import assertDataFrameEqual

from marketlake.bronze import bronze_schema
from marketlake.config import CONF_DIR, Settings, load_settings
from marketlake.errors import ConfigError
from marketlake.gold.spec import load_gold
from marketlake.ingest import ingest_files, landing_files
from marketlake.maintain import (
    RETENTION_CHECK,
    LiveFile,
    TableRef,
    TableState,
    live_files,
    maintain_table,
    parse_maintenance,
    plan_compaction,
    read_maintenance,
    report_rows,
    retention_check_disabled,
    table_retention_hours,
    zorder_columns,
)
from marketlake.silver.spec import load_table_specs
from marketlake.tables import current_version, delta_table, read_delta
from tests.conftest import load_job

SCHEMA = "event_date date, user_id string, pair string, amount decimal(20,8), note string"
DAYS = ("2026-03-01", "2026-03-02", "2026-03-03")
GONE = r"FILE_NOT_EXIST|does not exist"  # reading a version whose files VACUUM deleted


def batch(spark: SparkSession, i: int, days: tuple[str, ...] = DAYS) -> DataFrame:
    """The rows of append number i: 40 rows on day i % len(days), with a null and a quote among the values."""
    rows = [
        (
            days[i % len(days)],
            f"u{(i * 7 + n) % 13:03d}",
            ("BTC-USD", "ETH-USD", None)[n % 3],
            Decimal(f"{i}.{n:08d}"),
            f"append {i} row {n} 'quoted'",
        )
        for n in range(40)
    ]
    return spark.createDataFrame(rows, SCHEMA.replace("event_date date", "event_date string")).withColumn(
        "event_date", F.to_date("event_date")
    )


def build(spark: SparkSession, path: Path, appends: int = 6, partitioned: bool = True) -> list[Row]:
    """A Delta table written by `appends` appends of one file each (two per day with the defaults); its rows."""
    for i in range(appends):
        writer = batch(spark, i).coalesce(1).write.format("delta").mode("append")
        (writer.partitionBy("event_date") if partitioned else writer).save(str(path))
    return read_delta(spark, str(path)).collect()


def fingerprint(df: DataFrame) -> tuple[int, int]:
    """(rows, sum of a 64-bit hash of every row): reads every data file, unlike a count Delta answers from its log."""
    checksum = F.sum(F.xxhash64(*df.columns).cast("decimal(38,0)"))
    row = df.agg(F.count(F.lit(1)), checksum).first()
    assert row is not None
    return int(row[0]), int(row[1])


def data_files(path: Path) -> set[str]:
    """Parquet data files on disk (live or not), counted by the file system rather than by Delta."""
    return {str(p.relative_to(path)) for p in path.rglob("*.parquet") if "_delta_log" not in p.parts}


def operations_since(spark: SparkSession, path: Path, version: int) -> list[str]:
    history = delta_table(spark, str(path)).history().where(F.col("version") > version).orderBy("version")
    return [r["operation"] for r in history.collect()]


@pytest.fixture
def table(spark: SparkSession, tmp_path: Path) -> tuple[TableRef, list[Row]]:
    """silver.events: 3 day partitions of 2 small files each (versions 0..5), and its rows."""
    path = tmp_path / "events"
    return TableRef("silver", "events", str(path)), build(spark, path)


# ---- whole runs on a table ---------------------------------------------------------------------------------------
def test_compaction_keeps_rows_and_time_travel_within_retention(
    spark: SparkSession, table: tuple[TableRef, list[Row]]
) -> None:
    ref, rows = table
    path = Path(ref.path)
    before = fingerprint(read_delta(spark, ref.path))
    files = live_files(spark, ref.path, ["event_date"])  # what the plan is made of: partitions and sizes
    assert files is not None and sorted({f.partition for f in files}) == [(("event_date", d),) for d in DAYS]
    assert sum(f.size for f in files) == sum((path / f).stat().st_size for f in data_files(path)) > 0
    with retention_check_disabled(spark):
        result = maintain_table(spark, ref, ["pair", "user_id", "no_such_column", "event_date"], retention_hours=1)

    assert (result.before.num_files, result.after.num_files) == (6, 3)
    assert result.after.size_bytes < result.before.size_bytes
    assert result.versions_written == 1 and operations_since(spark, path, 5) == ["OPTIMIZE"]
    params = delta_table(spark, ref.path).history(1).first()["operationParameters"]
    assert params["zOrderBy"] == '["pair","user_id"]'
    assert any("no_such_column" in w for w in result.warnings)
    assert any("event_date is a partition column" in w for w in result.warnings)
    assert fingerprint(read_delta(spark, ref.path)) == before
    assertDataFrameEqual(read_delta(spark, ref.path), rows)
    # files removed by OPTIMIZE a moment ago are younger than the 1 h retention: kept, and every version still reads
    assert result.vacuum_files == 0 and not result.vacuumed
    assert len(data_files(path)) == 9
    assertDataFrameEqual(read_delta(spark, ref.path, version=5), rows)
    assertDataFrameEqual(read_delta(spark, ref.path, version=0), batch(spark, 0))


def test_vacuum_beyond_retention_keeps_rows_and_ends_time_travel(
    spark: SparkSession, table: tuple[TableRef, list[Row]]
) -> None:
    ref, rows = table
    path = Path(ref.path)
    before = fingerprint(read_delta(spark, ref.path))
    old_files = data_files(path)
    with retention_check_disabled(spark):
        result = maintain_table(spark, ref, ["pair", "user_id"], retention_hours=0)

    assert operations_since(spark, path, 5) == ["OPTIMIZE", "VACUUM START", "VACUUM END"]
    assert result.versions_written == 3
    assert result.vacuum_files == 6 and result.vacuumed
    assert not data_files(path) & old_files and len(data_files(path)) == 3
    assert fingerprint(read_delta(spark, ref.path)) == before
    assertDataFrameEqual(read_delta(spark, ref.path), rows)
    with pytest.raises(Exception, match=GONE):
        fingerprint(read_delta(spark, ref.path, version=5))


def test_second_run_commits_nothing(spark: SparkSession, table: tuple[TableRef, list[Row]]) -> None:
    ref, rows = table
    with retention_check_disabled(spark):
        maintain_table(spark, ref, ["pair", "user_id"], retention_hours=0)
        version, files = current_version(spark, ref.path), data_files(Path(ref.path))
        again = maintain_table(spark, ref, ["pair", "user_id"], retention_hours=0)

    # Z-order alone would rewrite every partition again, and VACUUM logs two commits even with nothing to delete
    assert current_version(spark, ref.path) == version and again.versions_written == 0
    assert again.plan is not None and not again.plan.needed and not again.compacted
    assert again.vacuum_files == 0 and not again.vacuumed
    assert data_files(Path(ref.path)) == files
    assertDataFrameEqual(read_delta(spark, ref.path), rows)


def test_dry_run_changes_nothing_and_predicts_the_run(spark: SparkSession, table: tuple[TableRef, list[Row]]) -> None:
    ref, _ = table
    path = Path(ref.path)
    maintain_table(spark, ref, [], retention_hours=168)  # compacts; the 6 replaced files stay (retention)
    for i in (3, 6):  # two more files on day 1 (appends 3 and 6 both land on DAYS[0])
        batch(spark, i).coalesce(1).write.format("delta").mode("append").partitionBy("event_date").save(ref.path)
    rows = read_delta(spark, ref.path).collect()
    version, files = current_version(spark, ref.path), data_files(path)

    with retention_check_disabled(spark):
        dry = maintain_table(spark, ref, ["pair", "user_id"], retention_hours=0, dry_run=True)
    assert current_version(spark, ref.path) == version and data_files(path) == files
    assert dry.plan is not None and dry.plan.partitions == ((("event_date", DAYS[0]),),) and dry.plan.files == 3
    assert dry.vacuum_files == 6 and not dry.vacuumed and not dry.compacted
    row = report_rows([dry], dry_run=True)[0]
    assert row["optimize"] == "would run zorder(pair,user_id)" and row["vacuum"] == "would delete"
    assert "files_after" not in row

    with retention_check_disabled(spark):
        done = maintain_table(spark, ref, ["pair", "user_id"], retention_hours=0)
    metrics = delta_table(spark, ref.path).history().where("operation = 'OPTIMIZE'").orderBy(F.desc("version"))
    assert int(metrics.first()["operationMetrics"]["numRemovedFiles"]) == dry.plan.files
    assert done.after.num_files == 3 and done.vacuum_files == 6 + 3  # the earlier 6, and the 3 it just replaced
    assertDataFrameEqual(read_delta(spark, ref.path), rows)


def test_unpartitioned_table_becomes_one_file(spark: SparkSession, tmp_path: Path) -> None:
    ref = TableRef("ops", "runs", str(tmp_path / "runs"))
    rows = build(spark, Path(ref.path), appends=4, partitioned=False)
    before = fingerprint(read_delta(spark, ref.path))
    with retention_check_disabled(spark):
        result = maintain_table(spark, ref, ["user_id"], retention_hours=0)
    assert (result.before.num_files, result.after.num_files) == (4, 1)
    assert result.plan is not None and result.plan.predicate() is None
    assert len(data_files(Path(ref.path))) == 1
    assert fingerprint(read_delta(spark, ref.path)) == before
    assertDataFrameEqual(read_delta(spark, ref.path), rows)


def test_bronze_days_landed_one_by_one_become_one_file(
    spark: SparkSession, settings: Settings, database: str, tmp_path: Path
) -> None:
    """What bronze_ingest leaves after a daily landing each day, one small file per day, is what OPTIMIZE merges:
    bronze is clustered by landing date, not partitioned by it, and a day's rows still read alone."""
    spec = settings.sources["exchange"]["users"]
    for day in DAYS:
        folder = tmp_path / "landing" / "exchange" / "users" / f"date={day}"
        folder.mkdir(parents=True)
        lines = [f'{{"user_id":"U{day[-1]}{n}","email":"u{n}@example.com","tier":"basic"}}' for n in range(5)]
        (folder / "users.jsonl").write_text("\n".join([*lines, "not json"]) + "\n")
        files = landing_files(spark, str(tmp_path / "landing"), spec, day)
        assert ingest_files(spark, spec, files, f"{database}.exchange_users").rows_written == 6
    path = str(tmp_path / database / "exchange_users")
    before = fingerprint(read_delta(spark, path))
    day_two = read_delta(spark, path).where(f"_landing_date = '{DAYS[1]}'").collect()
    with retention_check_disabled(spark):
        result = maintain_table(spark, TableRef("bronze", "exchange_users", path), ["user_id"], retention_hours=0)
    assert result.before.clustering_columns == ("_landing_date",) and result.before.partition_columns == ()
    assert (result.before.num_files, result.after.num_files, len(data_files(Path(path)))) == (3, 1, 1)
    assert result.plan is not None and result.plan.mode == "clustering" and not result.warnings
    assert fingerprint(read_delta(spark, path)) == before == (18, before[1])
    assertDataFrameEqual(read_delta(spark, path).where(f"_landing_date = '{DAYS[1]}'"), day_two)


def test_vacuum_waits_for_a_change_feed_reader(spark: SparkSession, tmp_path: Path) -> None:
    """Silver reads bronze's change feed from its watermark on: VACUUM must not delete files it has yet to read."""
    ref = TableRef("bronze", "events", str(tmp_path / "events"))
    schema = spark.createDataFrame([], SCHEMA).schema
    feed = DeltaTable.create(spark).location(ref.path).addColumns(schema).partitionedBy("event_date")
    feed.property("delta.enableChangeDataFeed", "true").execute()  # version 0; appends 0..5 are versions 1..6
    rows = build(spark, Path(ref.path))

    def unread_changes() -> DataFrame:  # what silver's next incremental read takes: appends 3, 4 and 5
        changes = spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 4)
        return (
            changes.option("endingVersion", 6)
            .load(ref.path)
            .drop("_change_type", "_commit_version", "_commit_timestamp")
        )

    with retention_check_disabled(spark):
        held = maintain_table(spark, ref, [], retention_hours=0, change_feed_read_up_to=3)
    assert held.compacted and held.vacuum_files == 6 and not held.vacuumed
    assert held.vacuum_held is not None and "up to version 3" in held.vacuum_held and "OPTIMIZE" in held.vacuum_held
    assertDataFrameEqual(unread_changes(), batch(spark, 3).unionByName(batch(spark, 4)).unionByName(batch(spark, 5)))

    with retention_check_disabled(spark):
        caught_up = maintain_table(spark, ref, [], retention_hours=0, change_feed_read_up_to=7)
    assert caught_up.vacuumed and caught_up.vacuum_held is None and caught_up.vacuum_files == 6
    assertDataFrameEqual(read_delta(spark, ref.path), rows)
    with pytest.raises(Exception, match=GONE):
        unread_changes().collect()  # what the hold prevented


def test_a_table_keeps_its_own_longer_retention(spark: SparkSession, table: tuple[TableRef, list[Row]]) -> None:
    ref, rows = table
    keep = "delta.deletedFileRetentionDuration = 'interval 2 hours'"
    spark.sql(f"ALTER TABLE delta.`{ref.path}` SET TBLPROPERTIES ({keep})")  # version 6
    with retention_check_disabled(spark):
        result = maintain_table(spark, ref, [], retention_hours=0)
    assert result.compacted and result.vacuum_files == 0 and not result.vacuumed
    assert len(data_files(Path(ref.path))) == 6 + 3  # the 6 compacted files are younger than 2 h
    assertDataFrameEqual(read_delta(spark, ref.path, version=5), rows)
    assert table_retention_hours({"delta.deletedFileRetentionDuration": "interval 30 days"}) == 720
    assert table_retention_hours({"delta.deletedFileRetentionDuration": "interval 1 week"}) == 168
    assert table_retention_hours({}) is None


# ---- planning rules (no Spark) -----------------------------------------------------------------------------------
def test_plan_rewrites_only_partitions_with_two_small_files() -> None:
    small, big = 10, 2 * 1024**3

    def files(day: str | None, *sizes: int) -> list[LiveFile]:
        return [LiveFile((("d", day),), s) for s in sizes]

    layout = [*files("a", small), *files("b", small, small), *files("c", big, small), *files(None, small, small)]
    layout += files("it's", small, big, small)
    compaction = plan_compaction(layout, (), False, 1024**3)
    assert [p[0][1] for p in compaction.partitions] == ["b", "it's", None]
    assert compaction.files == 2 + 2 + 2  # compaction leaves the big file alone
    assert compaction.predicate() == "(`d` = 'b') OR (`d` = 'it\\'s') OR (`d` IS NULL)"
    zorder = plan_compaction(layout, ("u",), False, 1024**3)
    assert zorder.files == 2 + 3 + 2 and zorder.mode == "zorder(u)"  # Z-order rewrites every file of a partition
    assert not plan_compaction(files("a", small, big), ("u",), False, 1024**3).needed
    everything = plan_compaction([*files("a", small, small), *files("b", small, small)], (), False, 1024**3)
    assert everything.every_partition and everything.predicate() is None


def test_zorder_columns_skip_what_the_table_cannot_use() -> None:
    schema = StructType.fromDDL("d date, nested struct<a: int, b: int>, user_id string, pair string, late string")
    state = TableState(0, 0, 0, partition_columns=("d",), properties={"delta.dataSkippingNumIndexedCols": "4"})
    usable, warnings = zorder_columns(schema, state, ["PAIR", "user_id", "d", "late", "gone"], "t")
    assert usable == ("pair", "user_id")
    assert len(warnings) == 3 and all(w.startswith("t: ") for w in warnings)
    assert ["d is a partition" in w for w in warnings] == [True, False, False]
    assert "no statistics for late" in warnings[1] and "no column gone" in warnings[2]
    clustered = TableState(0, 0, 0, clustering_columns=("user_id",))
    assert zorder_columns(schema, clustered, ["pair"], "t")[0] == ()


def test_maintenance_conf_names_real_tables_and_columns() -> None:
    settings = load_settings("local", CONF_DIR)
    conf = read_maintenance(settings)
    assert conf.retention_hours == 168
    declared: dict[str, set[str]] = {}  # a table name's columns in every layer that declares them (PII left out)

    def declare(table: str, columns: set[str]) -> None:
        declared[table] = declared[table] & columns if table in declared else columns

    for entities in settings.sources.values():
        for source in entities.values():
            declare(source.bronze_table.split(".")[1], set(bronze_schema(source).fieldNames()))
    silver: set[str] = set()
    for specs in load_table_specs(CONF_DIR, settings.sources).values():
        for spec in specs:
            silver.add(spec.table)
            if spec.columns:  # tables conformed or derived in code declare none
                declare(spec.table, {c.name for c in spec.columns if not c.pii})
    known = set(declared) | silver | set(load_gold(CONF_DIR).tables)
    assert set(conf.zorder) <= known, set(conf.zorder) - known
    for table, cols in conf.zorder.items():
        assert set(cols) <= declared.get(table, set(cols)), (table, cols)
    assert conf.zorder["exchange_trades"] == ("pair", "user_id")
    with pytest.raises(ConfigError, match="retention_hours"):
        parse_maintenance({"retention_hours": -1})
    with pytest.raises(ConfigError, match="zorder"):
        parse_maintenance({"zorder": {"t": "user_id"}})


# ---- the job, in process -----------------------------------------------------------------------------------------
@pytest.fixture
def job(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """jobs/maintain.py loaded in this process; its run() leaves pytest's log handlers in place."""
    monkeypatch.setattr("marketlake.cli.configure_logging", lambda verbose=False: None)
    return load_job("maintain.py")


def test_job_user_errors_are_one_line(job_in_process: Callable[..., tuple[int, str, str]]) -> None:
    for argv, message in (
        (["--layer", "platinum"], "error: unknown layer 'platinum'; choose one of bronze, silver, gold, ops"),
        (["--retention-hours", "-1"], "error: --retention-hours must be >= 0, not -1"),
    ):
        code, _, err = job_in_process("maintain.py", *argv)
        assert code == 2 and err.strip().startswith(message) and "\n" not in err.strip()


def test_job_maintains_tables_and_reports(
    job: ModuleType,
    spark: SparkSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(job, "get_spark", lambda *args, **kwargs: spark)  # keep the test session's settings
    names = [f"mt_{uuid.uuid4().hex[:8]}_{kind}" for kind in ("daily", "flat")]
    paths = [settings.database_location("quarantine") / name for name in names]
    rows = [build(spark, paths[0], appends=4), build(spark, paths[1], appends=3, partitioned=False)]
    versions = [current_version(spark, str(p)) for p in paths]
    check_before = spark.conf.get(RETENTION_CHECK, None)
    argv = ["--layer", "quarantine", "--tables", ",".join(names), "--retention-hours", "0"]

    with caplog.at_level(logging.WARNING, logger="marketlake.maintain"):
        assert job.run(job.main, job.parser(), [*argv, "--dry-run"]) == 0
        assert [current_version(spark, str(p)) for p in paths] == versions
        assert job.run(job.main, job.parser(), argv) == 0
    assert "retention 0 h is below Delta's 168 h safety minimum" in caplog.text
    assert spark.conf.get(RETENTION_CHECK, None) == check_before
    dry, done = capsys.readouterr().out.split("Maintenance:")
    assert "Dry run (nothing changed)" in dry and "files_after" not in dry
    lines = done.strip().splitlines()  # the title's tail, the header, a rule, then one row per table
    report = {cells[0]: dict(zip(lines[1].split(), cells, strict=True)) for cells in map(str.split, lines[3:])}
    # the daily table: 4 appends over 3 days, 2 files on the first; the flat one: 3 appends, unpartitioned
    for name, (before, after, vacuumed) in zip(names, ((4, 3, 2), (3, 1, 3)), strict=True):
        cells = report[f"quarantine.{name}"]
        assert (int(cells["files_before"]), int(cells["files_after"]), int(cells["vacuum_files"])) == (
            before,
            after,
            vacuumed,
        )
        assert (cells["optimize"], cells["vacuum"], cells["versions"]) == ("compaction", "deleted", "3")
    for path, expected in zip(paths, rows, strict=True):
        assertDataFrameEqual(read_delta(spark, str(path)), expected)
    assert job.run(job.main, job.parser(), ["--layer", "quarantine", "--tables", "no_such_table"]) == 2
    assert "error: no Delta table named no_such_table" in capsys.readouterr().err
