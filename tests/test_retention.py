"""Retention (issue 15): a dry run lists exactly the rows a real run then deletes and writes nothing; the real run
deletes exactly the rows dated before each class's cutoff (counted here with pyarrow from the tables as they were),
keeps the cutoff day and every other row, vacuums what it deleted, and a second run writes nothing. Every table on
disk is listed, a table no rule covers as NO RULE."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from marketlake.config import CONF_DIR, load_settings
from marketlake.errors import ConfigError
from marketlake.maintain import TableRef
from marketlake.privacy.retention import (
    NO_RULE,
    Period,
    parse_period,
    parse_retention,
    plan_retention,
    plan_table,
    read_retention,
)
from tests.conftest import JobRunners

LAYERS = ("bronze", "silver", "gold", "quarantine", "ops")
AS_OF = "2027-03-03"  # the lakehouse holds 2026-03-01..04: 1-year classes lose 03-01 and 03-02, the cutoff day stays
LATER = "2029-03-03"  # 3-year classes expire too, and the ops run logs written today
CUTOFFS = {  # as-of minus the period, worked out by hand
    AS_OF: {"1y": "2026-03-03", "3y": "2024-03-03", "7y": "2020-03-03"},
    LATER: {"1y": "2028-03-03", "3y": "2026-03-03", "7y": "2022-03-03"},
}
PROBE = ("ops", "retention_probe")  # a table no rule covers, written for this module
Key = tuple[str, str]


# ---- the independent side: the tables read by path with delta-rs, dates counted in plain Python ------------------
def tables_on_disk(lakehouse: Path) -> dict[Key, Path]:
    return {
        (layer, p.name): p
        for layer in LAYERS
        if (lakehouse / layer).is_dir()
        for p in sorted((lakehouse / layer).iterdir())
        if (p / "_delta_log").is_dir()
    }


def versions(lakehouse: Path) -> dict[Key, int]:
    return {key: DeltaTable(str(path)).version() for key, path in tables_on_disk(lakehouse).items()}


def day_of(value: object) -> date | None:
    """A date as it is, a timestamp's UTC date."""
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    assert value is None or isinstance(value, date), value
    return value


def rows_of(table: pa.Table) -> Counter[str]:
    """The table's rows as a multiset, each row as canonical JSON."""
    return Counter(json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist())


@dataclass(frozen=True)
class Expected:
    rows: int
    oldest: str
    newest: str


def expected(table: pa.Table, column: str, cutoff: str) -> Expected:
    days = [d for d in (day_of(v) for v in table.column(column).to_pylist()) if d is not None]
    gone = sorted(d for d in days if d < date.fromisoformat(cutoff))
    return Expected(len(gone), str(gone[0]) if gone else "-", str(gone[-1]) if gone else "-")


def kept(table: pa.Table, column: str, cutoff: str) -> pa.Table:
    """The rows a deletion of everything dated before the cutoff leaves (a row without a date stays)."""
    days = [day_of(v) for v in table.column(column).to_pylist()]
    return table.filter(pa.array([d is None or d >= date.fromisoformat(cutoff) for d in days]))


def listing(stdout: str) -> dict[Key, dict[str, object]]:
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    by_table = {(str(r["layer"]), str(r["table"])): r for r in rows}
    assert len(by_table) == len(rows), "a table is listed twice"
    return by_table


# ---- planning, without Spark -------------------------------------------------------------------------------------
def test_cutoff_goes_back_calendar_years_or_days() -> None:
    assert Period(1, "y").cutoff(date(2027, 3, 3)) == date(2026, 3, 3)
    assert Period(1, "y").cutoff(date(2028, 2, 29)) == date(2027, 2, 28)  # no 29 Feb in 2027
    assert Period(4, "y").cutoff(date(2028, 2, 29)) == date(2024, 2, 29)
    assert Period(7, "y").cutoff(date(2026, 12, 31)) == date(2019, 12, 31)
    assert Period(90, "d").cutoff(date(2026, 3, 1)) == date(2025, 12, 1)
    assert Period(1, "d").cutoff(date(2026, 1, 1)) == date(2025, 12, 31)
    assert Period(5000, "y").cutoff(date(2026, 1, 1)) == date.min  # nothing is that old
    assert parse_period(" 3y ", "p") == Period(3, "y") and str(parse_period("90d", "p")) == "90d"


CONF = {
    "periods": {"long": "7y", "short": "1y"},
    "date_columns": {"bronze": "_landing_date", "silver": "event_date", "gold": "partition"},
    "tables": {
        "*.orders": "long",
        "*.orders_*": "long",
        "silver.orders_archive": {"keep": "frozen by legal hold"},
        "gold.*": "short",
        "gold.*_daily": "long",
        "gold.audit": {"class": "long", "column": "audited_at"},
        "*.users": {"keep": "kept while the account exists"},
        "bronze.x*": "short",
        "bronze.*y": "long",
    },
}


def test_the_most_specific_rule_decides() -> None:
    conf = parse_retention(CONF)
    partitions = {"kpis_daily": "date", "scores": "as_of_date"}
    as_of = date(2026, 6, 30)
    refs = [
        TableRef(layer, name, f"/lh/{layer}/{name}")
        for layer, name in [
            ("bronze", "orders"),
            ("silver", "orders_archive"),
            ("silver", "orders_lines"),
            ("gold", "kpis_daily"),
            ("gold", "scores"),
            ("gold", "audit"),
            ("gold", "unknown_to_conf"),
            ("silver", "users"),
            ("ops", "runs"),
            ("quarantine", "orders"),
        ]
    ]
    plans = {p.ref.qualified: p for p in plan_retention(conf, refs, as_of, partitions)}
    summary = {name: (p.data_class, p.column, p.cutoff, p.keep, p.problem) for name, p in plans.items()}
    assert summary == {
        "bronze.orders": ("long", "_landing_date", date(2019, 6, 30), None, None),
        "silver.orders_archive": (None, None, None, "frozen by legal hold", None),  # exact name beats *.orders_*
        "silver.orders_lines": ("long", "event_date", date(2019, 6, 30), None, None),
        "gold.kpis_daily": ("long", "date", date(2019, 6, 30), None, None),  # gold.*_daily beats gold.*
        "gold.scores": ("short", "as_of_date", date(2025, 6, 30), None, None),
        "gold.audit": ("long", "audited_at", date(2019, 6, 30), None, None),
        "gold.unknown_to_conf": ("short", None, None, None, plans["gold.unknown_to_conf"].problem),
        "silver.users": (None, None, None, "kept while the account exists", None),
        "ops.runs": (None, None, None, None, NO_RULE),
        "quarantine.orders": ("long", None, None, None, plans["quarantine.orders"].problem),  # no date column
    }
    assert "conf/gold.yaml" in str(plans["gold.unknown_to_conf"].problem)
    assert "date_columns.quarantine" in str(plans["quarantine.orders"].problem)
    assert not plans["gold.unknown_to_conf"].expires and plans["gold.scores"].expires
    order = [p.ref.layer for p in plan_retention(conf, refs, as_of, partitions)]
    assert order == sorted(order, key=("gold", "silver", "quarantine", "bronze", "ops").index)
    # bronze.xy: two patterns of 8 characters each, of different classes
    with pytest.raises(ConfigError, match=r"bronze\.xy matches 'bronze\.x\*' and 'bronze\.\*y'"):
        plan_table(conf, TableRef("bronze", "xy", "/lh/bronze/xy"), as_of, partitions)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"periods": {"long": "7 years"}}, r"privacy\.retention\.periods\.long must be a period such as 7y"),
        ({"periods": {"long": "0d"}}, r"privacy\.retention\.periods\.long must be a period"),
        ({"periods": {"long": 7}}, r"privacy\.retention\.periods\.long must be a period"),
        ({"tables": {"gold.x": "forever"}}, r"tables\['gold\.x'\]: unknown data class 'forever'"),
        ({"tables": {"gold.x": {"keep": "why", "column": "d"}}}, r"tables\['gold\.x'\]: keep must be the reason"),
        ({"tables": {"gold.x": {"class": "long", "keep": "why"}}}, r"tables\['gold\.x'\] must be a data class"),
        ({"tables": {"gold.x": {"class": "long", "colum": "d"}}}, r"tables\['gold\.x'\] must be a data class"),
        ({"date_columns": {"gold": ""}}, r"date_columns must map layers to a column name"),
        ({"period": {}}, r"privacy\.retention must be a mapping of periods, date_columns and tables"),
    ],
)
def test_a_bad_retention_conf_is_one_config_error(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_retention({**CONF, **change})


def test_the_shipped_conf_is_valid() -> None:
    conf = read_retention(load_settings("local", CONF_DIR))
    assert {name: str(p) for name, p in conf.periods.items()} == {
        "transactions": "7y",
        "behavioural": "3y",
        "marketing": "1y",
        "logs": "1y",
        "audit": "7y",
    }
    audit = plan_table(conf, TableRef("ops", "erasure_audit", "/lh/ops/erasure_audit"), date(2026, 12, 1), {})
    assert (audit.data_class, audit.column, audit.cutoff) == ("audit", "erased_at", date(2019, 12, 1))
    interventions = plan_table(conf, TableRef("gold", "churn_interventions", "/x"), date(2026, 12, 1), {})
    assert interventions.data_class == "marketing" and interventions.problem is not None  # no partitions given


# ---- user errors -------------------------------------------------------------------------------------------------
def test_user_errors_are_one_line(
    job_in_process: Callable[..., tuple[int, str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for argv, message in (
        (["--as-of", "2026-02-30"], "error: --as-of '2026-02-30' is not a date in YYYY-MM-DD form"),
        (["--as-of", "2999-01-01"], "error: --as-of 2999-01-01 is after today"),
    ):
        code, _, err = job_in_process("retention.py", *argv)
        assert code == 2 and err.strip().startswith(message) and "\n" not in err.strip(), err
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    base = conf / "base.yaml"
    base.write_text(base.read_text().replace("logs: 1y", "logs: 1 year", 1))
    monkeypatch.setenv("MARKETLAKE_CONF_DIR", str(conf))
    code, _, err = job_in_process("retention.py", "--dry-run")
    message = "error: privacy.retention.periods.logs must be a period such as 7y (calendar years) or 90d (days)"
    assert code == 2 and err.strip().startswith(message) and "\n" not in err.strip(), err


def test_unknown_table_is_one_line(privacy_lakehouse: Path, warm_jobs: JobRunners) -> None:
    result = warm_jobs(privacy_lakehouse)("retention.py", "--table", "silver.no_such", "--dry-run", check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith("error: no Delta table named silver.no_such")


# ---- the runs ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Runs:
    lakehouse: Path
    before: dict[Key, pa.Table]  # every table's rows before any run of this module
    versions_before: dict[Key, int]
    dry: dict[Key, dict[str, object]]  # the listing of each run
    later: dict[Key, dict[str, object]]
    versions_after_dry: dict[Key, int]
    real: dict[Key, dict[str, object]]
    after_real: dict[Key, pa.Table]
    versions_after_real: dict[Key, int]
    again: dict[Key, dict[str, object]]
    versions_after_again: dict[Key, int]

    def deleted_from(self) -> list[Key]:
        return [key for key, row in self.real.items() if isinstance(row["deleted"], int) and row["deleted"] > 0]


@pytest.fixture(scope="module")
def runs(privacy_lakehouse: Path, warm_jobs: JobRunners) -> Runs:
    """Dry runs as of AS_OF and LATER, a real run as of AS_OF (vacuum retaining 0 h), and the same real run again,
    over the privacy lakehouse as the modules before this one left it."""
    lakehouse, jobs = privacy_lakehouse, warm_jobs(privacy_lakehouse)
    probe = lakehouse.joinpath(*PROBE)
    write_deltalake(str(probe), pa.table({"id": [1, 2]}))
    real_run = ("retention.py", "--as-of", AS_OF, "--allow-future", "--retention-hours", "0", "--format", "json")
    try:
        paths = tables_on_disk(lakehouse)
        before = {key: DeltaTable(str(path)).to_pyarrow_table() for key, path in paths.items()}
        versions_before = versions(lakehouse)
        dry = listing(jobs("retention.py", "--as-of", AS_OF, "--dry-run", "--format", "json").stdout)
        later = listing(jobs("retention.py", "--as-of", LATER, "--dry-run", "--format", "json").stdout)
        versions_after_dry = versions(lakehouse)
        real = listing(jobs(*real_run).stdout)
        after_real = {key: DeltaTable(str(path)).to_pyarrow_table() for key, path in paths.items()}
        versions_after_real = versions(lakehouse)
        again = listing(jobs(*real_run).stdout)
        versions_after_again = versions(lakehouse)
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return Runs(
        lakehouse,
        before,
        versions_before,
        dry,
        later,
        versions_after_dry,
        real,
        after_real,
        versions_after_real,
        again,
        versions_after_again,
    )


def test_every_table_is_listed_with_its_class_or_why_it_stays(runs: Runs) -> None:
    for run in (runs.dry, runs.later, runs.real, runs.again):
        assert set(run) == set(runs.before)
    probe = runs.dry[PROBE]
    assert probe["class"] == "-" and str(probe["note"]).startswith("NO RULE") and probe["would_delete"] == "-"
    classes = {key: (row["class"], row["period"], row["date_column"]) for key, row in runs.dry.items()}
    assert classes[("bronze", "exchange_logins")] == ("logs", "1y", "_landing_date")
    assert classes[("silver", "exchange_logins")] == ("logs", "1y", "event_date")
    assert classes[("quarantine", "exchange")] == ("logs", "1y", "_landing_date")
    assert classes[("ops", "silver_runs")] == ("logs", "1y", "run_started_at")
    assert classes[("silver", "exchange_trades")] == ("transactions", "7y", "event_date")
    assert classes[("bronze", "commerce_orders_shopify")] == ("transactions", "7y", "_landing_date")
    assert classes[("silver", "commerce_web_sessions")] == ("behavioural", "3y", "event_date")
    assert classes[("gold", "exchange_rfm")] == ("behavioural", "3y", "as_of_date")
    assert classes[("gold", "commerce_daily_kpis")] == ("behavioural", "3y", "date")
    assert classes[("gold", "exchange_compliance_flags")] == ("audit", "7y", "date")
    for layer in ("bronze", "silver"):
        for table in ("exchange_users", "commerce_customers"):
            row = runs.dry[(layer, table)]
            assert (row["class"], row["cutoff"], row["would_delete"]) == ("-", "-", "-")
            assert row["note"] == "kept while the account exists"
    assert str(runs.dry[("ops", "silver_watermarks")]["note"]).startswith("pipeline state")
    for run, as_of in ((runs.dry, AS_OF), (runs.later, LATER)):
        for row in run.values():
            if row["period"] != "-":
                assert row["cutoff"] == CUTOFFS[as_of][str(row["period"])], row
    # the layers are handled derived first
    assert [layer for layer, _ in runs.dry] == sorted(
        (layer for layer, _ in runs.dry), key=("gold", "silver", "quarantine", "bronze", "ops").index
    )


def test_dry_runs_list_what_pyarrow_counts_and_write_nothing(runs: Runs) -> None:
    for run, as_of in ((runs.dry, AS_OF), (runs.later, LATER)):
        for key, row in run.items():
            if row["cutoff"] == "-":
                continue
            want = expected(runs.before[key], str(row["date_column"]), str(row["cutoff"]))
            assert (row["would_delete"], row["oldest"], row["newest"]) == (want.rows, want.oldest, want.newest), key
            assert CUTOFFS[as_of][str(row["period"])] == row["cutoff"]
    assert runs.versions_after_dry == runs.versions_before
    # the data holds each case: the 1-year class expires as of AS_OF, and its cutoff day is there to be kept; the
    # 3-year class expires only as of LATER; the 7-year class in neither
    logins = runs.before[("silver", "exchange_logins")].column("event_date").to_pylist()
    assert date(2026, 3, 3) in logins and runs.dry[("silver", "exchange_logins")]["would_delete"] > 0
    assert runs.dry[("silver", "commerce_web_sessions")]["would_delete"] == 0
    assert runs.later[("silver", "commerce_web_sessions")]["would_delete"] > 0
    assert runs.later[("silver", "exchange_trades")]["would_delete"] == 0
    assert runs.before[("silver", "exchange_trades")].num_rows > 0
    assert runs.later[("ops", "bronze_ingest_runs")]["would_delete"] > 0  # timestamps, by their UTC date


def test_real_run_deletes_exactly_the_listed_rows_and_keeps_the_rest(runs: Runs) -> None:
    changed = runs.deleted_from()
    assert ("silver", "exchange_logins") in changed and ("bronze", "exchange_logins") in changed
    on_cutoff_day: set[Key] = set()  # tables holding rows of the cutoff day, which stay
    for key, row in runs.real.items():
        assert row["deleted"] == runs.dry[key]["would_delete"], key
        if key not in changed:
            assert row["version"] == "-" and runs.versions_after_real[key] == runs.versions_before[key], key
            continue
        before, column, cutoff = runs.before[key], str(row["date_column"]), str(row["cutoff"])
        assert row["deleted"] == expected(before, column, cutoff).rows, key
        assert isinstance(row["version"], int) and row["version"] > runs.versions_before[key]
        assert rows_of(runs.after_real[key]) == rows_of(kept(before, column, cutoff)), key
        assert expected(runs.after_real[key], column, cutoff).rows == 0
        if any(day_of(d) == date.fromisoformat(cutoff) for d in before.column(column).to_pylist()):
            on_cutoff_day.add(key)
    assert {("silver", "exchange_logins"), ("bronze", "exchange_logins")} <= on_cutoff_day


def test_deleted_rows_files_are_vacuumed_unless_silver_still_reads_them(runs: Runs) -> None:
    """VACUUM retaining 0 h removes the files the DELETE dropped, so the version before it can no longer be read;
    bronze's are kept until silver has read the DELETE from bronze's change feed (maintain.vacuum_hold)."""
    for key in runs.deleted_from():
        path = str(tables_on_disk(runs.lakehouse)[key])
        dropped = set(DeltaTable(path, version=runs.versions_before[key]).file_uris()) - set(
            DeltaTable(path).file_uris()
        )
        assert dropped, key
        row = runs.real[key]
        if key[0] == "bronze":
            assert row["vacuum"] == "held" and "silver_build" in str(row["note"]), row
            assert all(Path(f.removeprefix("file://")).exists() for f in dropped), key
        else:
            assert row["vacuum"] != "held" and str(row["vacuum"]).endswith(" files"), row
            assert not any(Path(f.removeprefix("file://")).exists() for f in dropped), key


def test_second_run_deletes_nothing_and_writes_nothing(runs: Runs) -> None:
    for key, row in runs.again.items():
        assert row["deleted"] in (0, "-") and row["version"] == "-" and row["vacuum"] == "-", key
    assert runs.versions_after_again == runs.versions_after_real
