"""Retention: every table's rows belong to a data class (conf privacy.retention) that is kept for a period; rows
dated before the as-of date minus that period are deleted, and the table is vacuumed.

Planning is pure: which rule covers a table, the column its rows are dated by, the cutoff. The deletion counts a
table's expired rows first and writes nothing when there are none, so a re-run commits nothing. Tables are handled
derived layers first (LAYER_ORDER: gold, silver, quarantine, bronze, then the ops logs): at no moment does a derived
row outlive the rows it was computed from, and since every cutoff follows from the as-of date alone, a run that
stopped midway is finished by running it again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from fnmatch import fnmatchcase

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, StructType, TimestampNTZType, TimestampType

from marketlake.config import Settings
from marketlake.errors import ConfigError
from marketlake.maintain import TableRef, VacuumResult, table_state, vacuum_table
from marketlake.tables import DeleteResult, delete_where, read_delta

log = logging.getLogger(__name__)

SECTION = "privacy.retention"
# Derived layers first, so that nothing derived outlives its source; layers not listed come last.
LAYER_ORDER = ("gold", "silver", "quarantine", "bronze", "ops")
PARTITION = "partition"  # as a layer's date column: each table's partition column in conf/gold.yaml, conf/models.yaml
NO_RULE = f"NO RULE: no entry of {SECTION}.tables matches this table; left alone"
_PERIOD = re.compile(r"(\d+)([yd])")


# ---- configuration -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    """How long a data class is kept: `count` calendar years (unit y) or days (unit d)."""

    count: int
    unit: str

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"

    def cutoff(self, as_of: date) -> date:
        """The oldest day kept: as_of minus the period. Years are calendar years, and 29 Feb becomes 28 Feb in a year
        without one (a row is kept a day less rather than a day more than the period)."""
        if self.unit == "d":
            return as_of - timedelta(days=self.count) if self.count < (as_of - date.min).days else date.min
        year = as_of.year - self.count
        if year < date.min.year:
            return date.min
        try:
            return as_of.replace(year=year)
        except ValueError:  # 29 Feb, in a year without one
            return as_of.replace(year=year, day=28)


def parse_period(value: object, where: str) -> Period:
    match = _PERIOD.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or int(match.group(1)) < 1:
        raise ConfigError(f"{where} must be a period such as 7y (calendar years) or 90d (days), not {value!r}")
    return Period(int(match.group(1)), match.group(2))


@dataclass(frozen=True)
class Rule:
    """One entry of privacy.retention.tables: the tables matching `pattern` (layer.table, * and ? as wildcards) are
    of `data_class`, dated by `column` (None: their layer's date column), or kept, for the reason `keep`."""

    pattern: str
    data_class: str | None = None
    column: str | None = None
    keep: str | None = None

    @property
    def specificity(self) -> float:
        """An exact name beats every pattern; a pattern with more characters besides the wildcards beats one with
        fewer."""
        wildcards = self.pattern.count("*") + self.pattern.count("?")
        return float("inf") if not wildcards else len(self.pattern) - wildcards


@dataclass(frozen=True)
class RetentionConf:
    periods: Mapping[str, Period]
    date_columns: Mapping[str, str]  # layer -> the column its tables are dated by (or PARTITION)
    rules: tuple[Rule, ...]

    def rule_for(self, table: str) -> Rule | None:
        """The most specific rule matching `table` (layer.table), None when none does; two equally specific rules
        that disagree are a ConfigError."""
        matching = [r for r in self.rules if fnmatchcase(table, r.pattern)]
        if not matching:
            return None
        best = max(r.specificity for r in matching)
        top = [r for r in matching if r.specificity == best]
        if len({(r.data_class, r.column, r.keep) for r in top}) > 1:
            patterns = " and ".join(f"'{r.pattern}'" for r in top)
            raise ConfigError(f"{SECTION}.tables: {table} matches {patterns}, equally specific and disagreeing")
        return top[0]


def _rule(pattern: str, value: object, periods: Mapping[str, Period]) -> Rule:
    where = f"{SECTION}.tables['{pattern}']"
    classes = ", ".join(periods)
    spec = {"class": value} if isinstance(value, str) else value
    known_keys = isinstance(spec, Mapping) and not set(spec) - {"class", "column", "keep"}
    if not known_keys or ("class" in spec) == ("keep" in spec):
        raise ConfigError(f"{where} must be a data class ({classes}), {{class: C, column: X}} or {{keep: why}}")
    if "keep" in spec:
        reason = spec["keep"]
        if "column" in spec or not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"{where}: keep must be the reason the table is not time-expired, and alone")
        return Rule(pattern, keep=reason.strip())
    data_class, column = spec["class"], spec.get("column")
    if not isinstance(data_class, str) or data_class not in periods:
        raise ConfigError(f"{where}: unknown data class {data_class!r}; {SECTION}.periods has {classes}")
    if column is not None and (not isinstance(column, str) or not column.strip()):
        raise ConfigError(f"{where}: column must be a column name, not {column!r}")
    return Rule(pattern, data_class=str(data_class), column=column.strip() if column else None)


def parse_retention(raw: object) -> RetentionConf:
    """Validate the retention section; a wrong value is one ConfigError naming its key."""
    if not isinstance(raw, Mapping) or set(raw) - {"periods", "date_columns", "tables"}:
        raise ConfigError(f"{SECTION} must be a mapping of periods, date_columns and tables")
    periods_raw = raw.get("periods")
    if not isinstance(periods_raw, Mapping) or not periods_raw:
        raise ConfigError(f"{SECTION}.periods must map each data class to a period such as 7y or 90d")
    periods = {str(name): parse_period(value, f"{SECTION}.periods.{name}") for name, value in periods_raw.items()}
    columns = raw.get("date_columns") or {}
    if not isinstance(columns, Mapping) or not all(isinstance(c, str) and c.strip() for c in columns.values()):
        raise ConfigError(f"{SECTION}.date_columns must map layers to a column name (or '{PARTITION}')")
    tables = raw.get("tables") or {}
    if not isinstance(tables, Mapping):
        raise ConfigError(f"{SECTION}.tables must map table names or patterns (layer.table) to a data class")
    rules = tuple(_rule(str(pattern), value, periods) for pattern, value in tables.items())
    return RetentionConf(periods, {str(k): str(v).strip() for k, v in columns.items()}, rules)


def read_retention(settings: Settings) -> RetentionConf:
    """The retention section of conf/base.yaml with conf/<env>.yaml merged over it; its layers must be databases."""
    conf = parse_retention(settings.privacy.get("retention"))
    unknown = sorted(set(conf.date_columns) - set(settings.databases))
    if unknown:
        databases = ", ".join(settings.databases)
        raise ConfigError(f"{SECTION}.date_columns names {', '.join(unknown)}, not a database ({databases})")
    return conf


# ---- planning ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TablePlan:
    """What retention does to one table: delete rows whose `column` is before `cutoff`; or nothing, because the table
    is kept (`keep` says why) or cannot be expired (`problem` says why: reported, never skipped silently)."""

    ref: TableRef
    data_class: str | None = None
    period: Period | None = None
    column: str | None = None
    cutoff: date | None = None
    keep: str | None = None
    problem: str | None = None

    @property
    def expires(self) -> bool:
        return self.cutoff is not None and self.problem is None


def plan_table(conf: RetentionConf, ref: TableRef, as_of: date, partitions: Mapping[str, str]) -> TablePlan:
    """The plan for one table; `partitions` holds the gold tables' partition columns (gold name -> column)."""
    rule = conf.rule_for(ref.qualified)
    if rule is None:
        return TablePlan(ref, problem=NO_RULE)
    if rule.keep is not None:
        return TablePlan(ref, keep=rule.keep)
    column = rule.column or conf.date_columns.get(ref.layer)
    if column == PARTITION:
        column = partitions.get(ref.name)
        if column is None:
            problem = "no partition column in conf/gold.yaml or conf/models.yaml: give its rule a column"
            return TablePlan(ref, rule.data_class, problem=problem)
    if column is None:
        problem = f"no date column: set {SECTION}.date_columns.{ref.layer} or a column in its rule"
        return TablePlan(ref, rule.data_class, problem=problem)
    assert rule.data_class is not None
    period = conf.periods[rule.data_class]
    return TablePlan(ref, rule.data_class, period, column, period.cutoff(as_of))


def layer_rank(layer: str) -> int:
    return LAYER_ORDER.index(layer) if layer in LAYER_ORDER else len(LAYER_ORDER)


def plan_retention(
    conf: RetentionConf, tables: Sequence[TableRef], as_of: date, partitions: Mapping[str, str]
) -> list[TablePlan]:
    """Every table's plan, in the order they are handled: by LAYER_ORDER, then by name."""
    plans = [plan_table(conf, ref, as_of, partitions) for ref in tables]
    return sorted(plans, key=lambda p: (layer_rank(p.ref.layer), p.ref.layer, p.ref.name))


# ---- deleting ----------------------------------------------------------------------------------------------------
def row_date(schema: StructType, column: str) -> Column:
    """The date a row is expired by: the column when it is a date, a timestamp's date in the session's zone (UTC).
    A ValueError when the table has no such column of either type."""
    field = next((f for f in schema.fields if f.name == column), None)
    if field is None:
        raise ValueError(f"no column {column}")
    if isinstance(field.dataType, DateType):
        return F.col(column)
    if isinstance(field.dataType, TimestampType | TimestampNTZType):
        return F.to_date(F.col(column))
    raise ValueError(f"{column} is a {field.dataType.simpleString()}, not a date or timestamp")


@dataclass(frozen=True)
class Expired:
    rows: int
    oldest: date | None
    newest: date | None


def expired_rows(spark: SparkSession, path: str, day: Column, cutoff: date) -> Expired:
    """How many rows are dated before the cutoff, and the oldest and newest of their dates (a null date never
    expires)."""
    row = read_delta(spark, path).where(day < F.lit(cutoff)).agg(F.count(F.lit(1)), F.min(day), F.max(day)).first()
    assert row is not None
    return Expired(int(row[0]), row[1], row[2])


@dataclass(frozen=True)
class TableOutcome:
    plan: TablePlan
    expired: Expired | None = None  # None: the table is not time-expired
    deleted: DeleteResult | None = None  # the DELETE this run committed
    vacuum: VacuumResult | None = None


def expire_table(
    spark: SparkSession,
    plan: TablePlan,
    retention_hours: float,
    dry_run: bool = False,
    change_feed_read_up_to: int | None = None,
) -> TableOutcome:
    """Count the table's expired rows; unless dry_run, delete them (nothing is written when there are none) and
    vacuum the table (see marketlake.maintain.vacuum_table: it needs vacuum_retention around it for a retention below
    Delta's minimum, and waits while a change-feed reader still needs the files)."""
    if not plan.expires:
        return TableOutcome(plan)
    assert plan.column is not None and plan.cutoff is not None
    path = plan.ref.path
    try:
        day = row_date(read_delta(spark, path).schema, plan.column)
    except ValueError as exc:
        problem = f"{exc}: give its rule a date column"
        log.warning("%s: %s; left alone", plan.ref.qualified, problem)
        return TableOutcome(replace(plan, problem=problem))
    expired = expired_rows(spark, path, day, plan.cutoff)
    if dry_run or expired.rows == 0:
        return TableOutcome(plan, expired)
    properties = table_state(spark, path).properties
    deleted = delete_where(spark, path, day < F.lit(plan.cutoff))
    if deleted is None or deleted.deleted != expired.rows:
        log.warning(
            "%s: counted %d expired rows but the DELETE reports %s: did another job write meanwhile?",
            plan.ref.qualified,
            expired.rows,
            deleted.deleted if deleted else "no commit",
        )
    log.info(
        "%s: deleted %d rows dated %s..%s (%s before %s, class %s)",
        plan.ref.qualified,
        deleted.deleted if deleted else 0,
        expired.oldest,
        expired.newest,
        plan.column,
        plan.cutoff,
        plan.data_class,
    )
    vacuum = vacuum_table(spark, plan.ref, properties, retention_hours, change_feed_read_up_to)
    return TableOutcome(plan, expired, deleted, vacuum)


# ---- reporting ---------------------------------------------------------------------------------------------------
def _vacuum_cell(vacuum: VacuumResult | None) -> str:
    if vacuum is None:
        return "-"
    if vacuum.held:
        return "held"
    return f"{vacuum.files} files" if vacuum.vacuumed else "none due"


def report_rows(outcomes: Sequence[TableOutcome], dry_run: bool) -> list[dict[str, object]]:
    """One row per table: its class, period, date column and cutoff; the expired rows that would go (dry run) or
    went, with their oldest and newest date; in a real run, the version the DELETE wrote and what VACUUM did ("-":
    nothing); why a table is kept or left alone."""
    rows: list[dict[str, object]] = []
    for o in outcomes:
        p, expired = o.plan, o.expired
        if expired is None:
            count: object = "-"
        elif dry_run or o.deleted is None:
            count = expired.rows if dry_run else 0
        else:
            count = o.deleted.deleted
        row: dict[str, object] = {
            "layer": p.ref.layer,
            "table": p.ref.name,
            "class": p.data_class or "-",
            "period": str(p.period) if p.period else "-",
            "date_column": p.column or "-",
            "cutoff": p.cutoff.isoformat() if p.cutoff and not p.problem else "-",
            "would_delete" if dry_run else "deleted": count,
            "oldest": expired.oldest.isoformat() if expired and expired.oldest else "-",
            "newest": expired.newest.isoformat() if expired and expired.newest else "-",
        }
        if not dry_run:
            row |= {"version": o.deleted.version if o.deleted else "-", "vacuum": _vacuum_cell(o.vacuum)}
        held = f"vacuum held: {o.vacuum.held}" if o.vacuum and o.vacuum.held else ""
        rows.append(row | {"note": p.keep or p.problem or held})
    return rows
