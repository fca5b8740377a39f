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
from typing import Any

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
}


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    severity: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def failed(self, now: datetime) -> Column:
        """True when a row breaks the rule; never null."""
        p = self.params
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


def load_rules(path: Path) -> dict[str, tuple[Rule, ...]]:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read quality rules {path}: {exc}") from None
    return parse_rules(raw)


def with_quality(rules: Sequence[Rule], now: datetime) -> Callable[[DataFrame], DataFrame]:
    """Add the names of failed quarantine rules and of failed warn rules, as two string arrays (empty = clean)."""

    def failures(severity: str) -> Column:
        named = [F.when(r.failed(now), F.lit(r.name)) for r in rules if r.severity == severity]
        if not named:
            return F.array().cast("array<string>")
        return F.filter(F.array(*named), lambda n: n.isNotNull())

    def _(df: DataFrame) -> DataFrame:
        return df.withColumn(QUARANTINE_COLUMN, failures("quarantine")).withColumn(WARNINGS_COLUMN, failures("warn"))

    return _


def split_quarantine(checked: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(rows to keep, rows to quarantine) of a frame that went through with_quality."""
    broken = F.size(QUARANTINE_COLUMN) > 0
    return checked.where(~broken), checked.where(broken)


def rule_counts(checked: DataFrame, rules: Sequence[Rule]) -> DataFrame:
    """Rows failing each rule (one pass): rule, severity, failed_rows, in the rules' order."""
    aggregates = [
        F.sum(
            F.array_contains(QUARANTINE_COLUMN if r.severity == "quarantine" else WARNINGS_COLUMN, r.name).cast("long")
        ).alias(f"r{i}")
        for i, r in enumerate(rules)
    ]
    totals = checked.agg(*aggregates).first()
    spark = checked.sparkSession
    rows = [(r.name, r.severity, int(totals[f"r{i}"] or 0) if totals else 0) for i, r in enumerate(rules)]
    return spark.createDataFrame(rows, "rule string, severity string, failed_rows long")
