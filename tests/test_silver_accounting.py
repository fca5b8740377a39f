"""Silver's row accounting adds counts measured at each sink on their own, so it can fail: a row lost between the
check and the writes unbalances the run and check_balanced fails it."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from marketlake.config import CONF_DIR, Settings
from marketlake.silver import build as silver_build
from marketlake.silver.build import (
    BuildOptions,
    DomainBuilder,
    TableRun,
    UnbalancedRun,
    build_domains,
    check_balanced,
    domain_dependencies,
)
from marketlake.silver.spec import TableSpec, load_all
from marketlake.tables import create_table_if_missing
from tests.frames import bronze_frame

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
USERS = [
    {"user_id": "U1", "tier": "basic", "updated_at": "2026-03-01T10:00:00Z"},
    {"user_id": "U2", "tier": "pro", "updated_at": "2026-03-01T10:00:00Z"},
    {"user_id": "U2", "tier": "vip", "updated_at": "2026-03-01T11:00:00Z"},  # a later version of U2
    {"user_id": "U3", "tier": "vip", "updated_at": "2026-03-01T10:00:00Z"},
    {"user_id": "U3", "tier": "vip", "updated_at": "2026-03-01T10:00:00Z"},  # the same line sent twice
    {"user_id": "U4", "tier": "gold", "updated_at": "2026-03-01T10:00:00Z"},  # unknown tier: quarantined
    {"user_id": "U5", "tier": "basic", "updated_at": "2026-03-01T10:00:00Z", "registered_at": None},  # missing
]


def _bronze_rows(spark: SparkSession, settings: Settings) -> DataFrame:
    defaults = {"status": "active", "kyc_status": "verified", "registered_at": "2026-02-01T09:00:00Z"}
    records = [{"email": f"{u['user_id'].lower()}@example.com", **defaults, **u} for u in USERS]
    return bronze_frame(spark, settings.sources["exchange"]["users"], records, date(2026, 3, 1), NOW)


@pytest.fixture
def builder(spark: SparkSession, settings: Settings, tmp_path: Path) -> Iterator[DomainBuilder]:
    """A builder of silver.exchange_users alone over a bronze table of USERS, in this test's own databases."""
    names = {db: f"{db}_{tmp_path.name[-12:].replace('-', '_')}" for db in ("bronze", "silver", "quarantine")}
    for db, name in names.items():
        spark.sql(f"CREATE DATABASE {name} LOCATION '{tmp_path / db}'")
    local = dataclasses.replace(settings, lakehouse_root=tmp_path)
    _bronze_rows(spark, settings).write.format("delta").save(str(tmp_path / "bronze" / "exchange_users"))
    specs, rules = load_all(CONF_DIR, settings.sources)
    users = [s for s in specs["exchange"] if s.name == "users"]
    options = BuildOptions("run-1", NOW, b"test-key", {"USD": 1.0})

    class Local(DomainBuilder):
        """Registers its tables in this test's databases (their locations are the paths it reads)."""

        def ensure(
            self,
            database: str,
            table: str,
            schema: StructType,
            partition: bool,
            comment: str,
            properties: dict[str, str] | None = None,
        ) -> str:
            path = self.path(database, table)
            if not self.is_table(path):
                partitions = ["event_date"] if partition else []
                name = f"{names[database]}.{table}"
                create_table_if_missing(self.spark, name, schema, partitions, comment, properties)
            return path

    yield Local(spark, local, "exchange", users, rules, options, {})
    for name in names.values():
        spark.sql(f"DROP DATABASE IF EXISTS {name} CASCADE")


def _only(runs: list[TableRun]) -> TableRun:
    (run,) = runs
    return run


def test_each_sink_counts_for_itself_and_a_replay_still_balances(builder: DomainBuilder) -> None:
    first = _only(builder.build())
    assert (first.rows_in, first.duplicates, first.merge_source_rows) == (7, 2, 3)
    assert (first.quarantined, first.quarantine_inserted, first.quarantine_known) == (2, 2, 0)
    assert (first.inserted, first.updated, first.unchanged) == (3, 0, 0)
    assert first.balanced
    again = _only(builder.build())  # the same bronze rows read again: nothing new anywhere
    assert (again.merge_source_rows, again.unchanged, again.duplicates) == (3, 3, 2)
    assert (again.quarantine_inserted, again.quarantine_known) == (0, 2)
    assert again.balanced
    check_balanced([first, again])


@pytest.mark.parametrize(
    ("lose", "sinks"),
    [
        ("silver", {"merge_source_rows": 2, "duplicates": 2, "quarantine_inserted": 2, "quarantine_known": 0}),
        ("quarantine", {"merge_source_rows": 3, "duplicates": 2, "quarantine_inserted": 1, "quarantine_known": 0}),
    ],
)
def test_a_row_lost_between_the_check_and_a_write_unbalances_the_run(
    builder: DomainBuilder, monkeypatch: pytest.MonkeyPatch, lose: str, sinks: dict[str, int]
) -> None:
    split = silver_build.split_quarantine

    def leaky(checked: DataFrame) -> tuple[DataFrame, DataFrame]:
        """A filter slipped between the check and the silver (U1) or quarantine (U4) write."""
        accepted, failed = split(checked)
        if lose == "silver":
            return accepted.where(F.col("user_id") != "U1"), failed
        return accepted, failed.where(F.col("user_id") != "U4")

    monkeypatch.setattr(silver_build, "split_quarantine", leaky)
    run = _only(builder.build())
    assert (run.rows_in, run.quarantined) == (7, 2)
    assert {k: getattr(run, k) for k in sinks} == sinks
    assert not run.balanced
    with pytest.raises(UnbalancedRun, match=f"exchange_users: read 7 != silver source {sinks['merge_source_rows']}"):
        check_balanced([run])


def test_the_pruned_merge_updates_a_key_whose_event_date_moved(builder: DomainBuilder, spark: SparkSession) -> None:
    """The silver MERGE reads only the partitions the batch can touch: its own event dates and those where its keys
    are stored, so a later version dated on another day replaces the stored row instead of adding a second one."""
    spec = TableSpec("exchange", "moves", ("order_id",), "updated_at", event_date="created_at")
    schema = "order_id string, status string, created_at timestamp, updated_at timestamp"

    def batch(rows: list[tuple]) -> DataFrame:
        return spark.createDataFrame(rows, schema).withColumn("event_date", F.to_date("created_at"))

    first = [
        ("O1", "pending", datetime(2026, 3, 1, 9), datetime(2026, 3, 1, 9)),
        ("O2", "pending", datetime(2026, 3, 2, 9), datetime(2026, 3, 2, 9)),
        ("O3", "pending", datetime(2026, 3, 3, 9), datetime(2026, 3, 3, 9)),
    ]
    run = TableRun(spec.table)
    builder.upsert(spec, batch(first), run).unpersist()
    assert (run.inserted, sorted(run.touched_dates)) == (3, [date(2026, 3, d) for d in (1, 2, 3)])
    # O1 corrected to another creation day, O4 new on day 4: touched are days 1 (where O1 was) and 4
    moved = [
        ("O1", "filled", datetime(2026, 3, 4, 8), datetime(2026, 3, 4, 10)),
        ("O4", "pending", datetime(2026, 3, 4, 9), datetime(2026, 3, 4, 9)),
    ]
    run = TableRun(spec.table)
    builder.upsert(spec, batch(moved), run).unpersist()
    assert sorted(run.touched_dates) == [date(2026, 3, 1), date(2026, 3, 4)]
    assert (run.inserted, run.updated) == (1, 1)
    stored = spark.read.format("delta").load(builder.path("silver", spec.table))
    expected = batch([*moved, *first[1:]])
    assert_df_equality(stored.select(*expected.columns), expected, ignore_row_order=True, ignore_nullable=True)


def test_domains_build_side_by_side_and_after_the_domains_they_read(spark: SparkSession, settings: Settings) -> None:
    specs, rules = load_all(CONF_DIR, settings.sources)
    domains = ["exchange", "commerce", "trends"]
    dependencies = domain_dependencies(specs, rules, domains)
    assert dependencies == {"exchange": set(), "commerce": set(), "trends": {"commerce"}}
    events: list[tuple[str, str]] = []
    sessions: set[int] = set()

    def build(session: SparkSession, domain: str) -> list[TableRun]:
        sessions.add(id(session))
        events.append(("start", domain))
        time.sleep(0.5)
        events.append(("end", domain))
        return [TableRun(domain)]

    runs = build_domains(spark, domains, dependencies, build, parallelism=2)
    assert [r.table for r in runs] == domains
    assert events.index(("end", "commerce")) < events.index(("start", "trends"))
    assert {e for e, _ in events[:2]} == {"start"}  # exchange and commerce overlap
    assert len(sessions) == 3 and id(spark) not in sessions  # each domain in a session of its own
    events.clear()
    assert [r.table for r in build_domains(spark, domains, dependencies, build, parallelism=1)] == domains
    assert events == [(e, d) for d in domains for e in ("start", "end")]
