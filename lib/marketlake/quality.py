"""Data-quality rules as data (conf/quality.yaml): evaluate them per row, split off what must be quarantined, and
count failures per rule.

A rule's `failed` column is true when a row breaks it; a rule on a null value passes unless it is `not_null`,
so "required" and "valid" are separate, separately reported rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import yaml
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from marketlake.errors import ConfigError

SEVERITIES = ("quarantine", "warn")
QUARANTINE_COLUMN = "_dq_quarantine"
WARNINGS_COLUMN = "_dq_warnings"
_REQUIRED_PARAMS = {
    "not_null": ("column",),
    "castable": ("column", "type"),
    "positive": ("column",),
    "range": ("column",),
    "in_set": ("column", "values"),
    "regex": ("column", "pattern"),
    "expression": ("expr",),
    "not_future": ("column",),
    "references": ("column", "table"),
    "unique": ("column",),
    "status_order": ("group", "status_column", "time_column", "earlier", "later"),
}
CONTEXT_KINDS = ("references", "unique", "status_order")


class QualityContext(Protocol):
    """What rules that look beyond the row read: other silver tables, and this table's stored rows."""

    def reference_keys(self, table: str, key: str) -> DataFrame | None:
        """Distinct values of `key` in silver.<table> (and rows accepted for it earlier in this run); None when
        the table does not exist yet."""

    def existing(self, columns: Sequence[str]) -> DataFrame | None:
        """These columns of the rows already stored for the table being checked; None when it does not exist."""


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    severity: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def context_column(self) -> str:
        """The helper column a context rule's lookup adds (see with_quality)."""
        return f"_ctx_{self.name}"

    def failed(self, now: datetime) -> Column:
        """True when a row breaks the rule; never null. Context kinds read the helper column with_quality added."""
        p = self.params
        helper = F.col(self.context_column)
        if self.kind == "references":
            return F.col(f"`{p['column']}`").isNotNull() & helper.isNull()
        if self.kind == "unique":
            return F.coalesce(helper > 1, F.lit(False))
        if self.kind == "status_order":
            late = (F.col(p["status_column"]) == p["later"]) & (F.col(p["time_column"]) < helper)
            return F.coalesce(late, F.lit(False))
        value = F.col(f"`{p['column']}`") if "column" in p else None
        if self.kind == "not_null":
            assert value is not None
            return value.isNull() | (F.trim(value.cast("string")) == "")
        if self.kind == "expression":
            return ~F.coalesce(F.expr(p["expr"]), F.lit(True))
        assert value is not None
        if self.kind == "castable":
            return value.isNotNull() & F.expr(f"try_cast(`{p['column']}` AS {p['type']})").isNull()
        number = value.try_cast("double")
        if self.kind == "positive":
            broken = number <= 0
        elif self.kind == "range":
            broken = F.lit(False)
            if "min" in p:
                broken = broken | (number < float(p["min"]))
            if "max" in p:
                broken = broken | (number > float(p["max"]))
        elif self.kind == "in_set":
            broken = ~value.cast("string").isin([str(v) for v in p["values"]])
        elif self.kind == "regex":
            broken = ~value.cast("string").rlike(str(p["pattern"]))
        else:  # not_future
            limit = F.lit(now) + F.expr(f"INTERVAL {int(p.get('tolerance_minutes', 0))} MINUTES")
            broken = value.try_cast("timestamp") > limit
        return F.coalesce(broken, F.lit(False))


def parse_rules(raw: Mapping[str, Any]) -> dict[str, tuple[Rule, ...]]:
    """Rules per table from the YAML structure, validated (unknown kinds, severities, missing parameters)."""
    rules: dict[str, tuple[Rule, ...]] = {}
    for table, entries in raw.items():
        parsed = []
        for entry in entries or []:
            entry = dict(entry)
            name, kind, severity = entry.pop("name", None), entry.pop("kind", None), entry.pop("severity", None)
            where = f"quality rules for {table}: rule {name or '(unnamed)'}"
            if not name or kind not in _REQUIRED_PARAMS:
                raise ConfigError(f"{where} needs a name and a kind in {sorted(_REQUIRED_PARAMS)}")
            if severity not in SEVERITIES:
                raise ConfigError(f"{where} has severity {severity!r}; use one of {SEVERITIES}")
            missing = [k for k in _REQUIRED_PARAMS[kind] if k not in entry]
            if missing:
                raise ConfigError(f"{where} ({kind}) lacks {missing}")
            parsed.append(Rule(name, kind, severity, entry))
        names = [r.name for r in parsed]
        if len(set(names)) != len(names):
            raise ConfigError(f"quality rules for {table}: rule names must be unique, got {names}")
        rules[table] = tuple(parsed)
    return rules


def load_rules(path: Path, overlay: Mapping[str, Any] | None = None) -> dict[str, tuple[Rule, ...]]:
    """Rules per table from a rules file, with an environment's overlay (a table's list replaces the file's)."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read quality rules {path}: {exc}") from None
    return parse_rules({**raw, **(overlay or {})})


def _lookup(rule: Rule, df: DataFrame, keys: Sequence[str], context: QualityContext) -> tuple[str, DataFrame | None]:
    """A context rule's lookup: the row column it matches, and a frame from that column's value (in
    `<helper>_v`) to the helper column; None when there is nothing to look in (every reference is unknown)."""
    p, helper, value = rule.params, rule.context_column, rule.context_column + "_v"

    def in_batch(column: str) -> DataFrame:
        """The batch's distinct non-null values of `column` (as `value`): a lookup reads only what it matches."""
        return df.select(F.col(column).alias(value)).where(F.col(value).isNotNull()).distinct()

    def with_stored(columns: list[str], match: str) -> DataFrame:
        """These columns of the batch and of the stored rows that share a `match` value with the batch."""
        stored = context.existing(columns)
        batch = df.select(*columns)
        if stored is None:
            return batch
        return batch.unionByName(stored.join(in_batch(match), F.col(match) == F.col(value), "left_semi"))

    if rule.kind == "references":
        known = context.reference_keys(p["table"], p.get("key", p["column"]))
        if known is None:
            return p["column"], None
        matches = known.select(F.col(known.columns[0]).alias(value)).join(in_batch(p["column"]), value, "left_semi")
        return p["column"], matches.distinct().withColumn(helper, F.lit(True))
    if rule.kind == "unique":
        column = p["column"]
        owners = with_stored([*keys, column], column).where(F.col(column).isNotNull())
        return column, owners.groupBy(F.col(column).alias(value)).agg(F.countDistinct(F.struct(*keys)).alias(helper))
    group, status, when = p["group"], p["status_column"], p["time_column"]
    earlier = with_stored([group, status, when], group).where(F.col(status) == p["earlier"])
    return group, earlier.groupBy(F.col(group).alias(value)).agg(F.max(when).alias(helper))


def _with_context(
    df: DataFrame, rules: Sequence[Rule], keys: Sequence[str], context: QualityContext | None
) -> DataFrame:
    """Add each context rule's helper column: a reference match flag, the number of keys holding a value, or the
    time of the `earlier` status in the row's group."""
    for rule in (r for r in rules if r.kind in CONTEXT_KINDS):
        if context is None:
            raise ValueError(f"rule {rule.name} ({rule.kind}) needs a quality context")
        column, lookup = _lookup(rule, df, keys, context)
        helper = rule.context_column
        if lookup is None:
            df = df.withColumn(helper, F.lit(None).cast("boolean"))
        else:
            df = df.join(lookup, F.col(column) == F.col(helper + "_v"), "left").drop(helper + "_v")
    return df


def with_quality(
    rules: Sequence[Rule], now: datetime, keys: Sequence[str] = (), context: QualityContext | None = None
) -> Callable[[DataFrame], DataFrame]:
    """Add the names of failed quarantine rules and of failed warn rules, as two string arrays (empty = clean).

    Rules of a context kind (references, unique, status_order) join what `context` provides; `keys` are the
    table's natural key columns (for `unique`)."""

    def failures(severity: str) -> Column:
        named = [F.when(r.failed(now), F.lit(r.name)) for r in rules if r.severity == severity]
        if not named:
            return F.array().cast("array<string>")
        return F.filter(F.array(*named), lambda n: n.isNotNull())

    def _(df: DataFrame) -> DataFrame:
        columns = df.columns
        checked = _with_context(df, rules, keys, context)
        checked = checked.withColumn(QUARANTINE_COLUMN, failures("quarantine"))
        checked = checked.withColumn(WARNINGS_COLUMN, failures("warn"))
        return checked.select(*columns, QUARANTINE_COLUMN, WARNINGS_COLUMN)

    return _


def split_quarantine(checked: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(rows to keep, rows to quarantine) of a frame that went through with_quality."""
    broken = F.size(QUARANTINE_COLUMN) > 0
    return checked.where(~broken), checked.where(broken)
