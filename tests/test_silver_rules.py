"""Every data-quality rule of every silver table, generated and configured, with a row that passes and a row that
breaks it, through the real conform + check steps (cases: tests/data/rule_cases.yaml)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from marketlake.bronze import bronze_schema
from marketlake.config import CONF_DIR, SourceSpec, load_settings
from marketlake.quality import QUARANTINE_COLUMN, WARNINGS_COLUMN, Rule
from marketlake.silver.build import BuildOptions, check, conform_table
from marketlake.silver.spec import TableSpec, load_all

CASES = yaml.safe_load((Path(__file__).parent / "data" / "rule_cases.yaml").read_text())
SOURCES = load_settings("local").sources
SPECS, RULES = load_all(CONF_DIR, SOURCES)
BY_TABLE = {s.table: s for domain in SPECS.values() for s in domain}
NOW = datetime(2026, 3, 1, 12, 0, 0)
OPTIONS = BuildOptions("test", NOW, b"test-key", {"USD": 1.0, "EUR": 1.1, "GBP": 1.3})
RESULT = "_line_no long, _dq_quarantine array<string>, _dq_warnings array<string>"


def all_rules() -> Iterator[Any]:
    for table, rules in RULES.items():
        for rule in rules:
            yield pytest.param(table, rule, id=f"{table}:{rule.name}")


def break_of(table: str, rule: Rule) -> dict[str, Any]:
    """How to break a rule: configured in the cases file, or generated with the rule."""
    spec = BY_TABLE[table]
    case = dict(CASES["breaks"].get(table, {}).get(rule.name, {}))
    entity = case.get("entity", spec.sources[0])
    if "set" not in case and "stored" not in case:
        if rule.name == "record_parseable":
            case["parse_error"] = True
        elif rule.name.endswith("_present"):
            case["set"] = {rule.name.removesuffix("_present"): None}
        elif rule.name.endswith("_wrong_type"):
            column = next(c for c in spec.columns if c.name == rule.name.removesuffix("_wrong_type"))
            case["set"] = {column.source or column.name: "N/A"}
        else:
            raise AssertionError(f"no break configured for {table}:{rule.name} in tests/data/rule_cases.yaml")
    case["entity"] = entity
    return case


def record(entity: str, n: int, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    values = {**CASES["bases"][entity], **(overrides or {})}
    out = {}
    for k, v in values.items():
        v = CASES["future"] if v == "future" else v
        out[k] = None if v is None else str(v).replace("@N@", str(n))
    return out


def bronze_frame(
    spark: SparkSession, source: SourceSpec, rows: Sequence[tuple[int, dict[str, Any], bool]]
) -> DataFrame:
    schema = bronze_schema(source)
    data = []
    for n, values, broken in rows:
        meta = {
            "_batch_id": "b1",
            "_landing_date": NOW.date(),
            "_source_file": f"file:/landing/{source.entity}.jsonl",
            "_source_size": 1,
            "_line_no": n,
            "_ingest_ts": NOW,
            "_source_format": source.format,
            "_parse_error": "malformed JSON" if broken else None,
            "_raw_record": str(values),
        }
        data.append(tuple({**meta, **values}.get(f.name) for f in schema.fields))
    return spark.createDataFrame(data, schema).withColumn("_retry", F.lit(False))


class CaseContext:
    def __init__(self, spark: SparkSession, spec: TableSpec, stored: DataFrame | None) -> None:
        self.spark, self.spec, self.stored = spark, spec, stored

    def reference_keys(self, table: str, key: str) -> DataFrame | None:
        return self.spark.createDataFrame([(v,) for v in CASES["references"][table]], f"`{key}` string")

    def existing(self, columns: Sequence[str]) -> DataFrame | None:
        return None if self.stored is None else self.stored.select(*columns)


def products(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(list(CASES["products"].items()), "sku string, product_id string")


def conformed(
    spark: SparkSession, spec: TableSpec, rows: dict[str, list[tuple[int, dict[str, Any], bool]]]
) -> DataFrame:
    inputs = {e: bronze_frame(spark, SOURCES[spec.domain][e], rows.get(e, [])) for e in spec.sources}
    return conform_table(spec, SOURCES[spec.domain], inputs, products(spark), OPTIONS)


@pytest.fixture(scope="module")
def checked_tables(spark: SparkSession) -> Iterator[dict[str, DataFrame]]:
    """Per table, all its cases checked in one batch (rule i: passing row 2i+1, breaking row 2i+2), computed once."""
    cache: dict[str, DataFrame] = {}

    class Lazy(dict):
        def __missing__(self, table: str) -> DataFrame:
            spec = BY_TABLE[table]
            rows: dict[str, list[tuple[int, dict[str, Any], bool]]] = {}
            stored: dict[str, list[tuple[int, dict[str, Any], bool]]] = {}
            for i, rule in enumerate(RULES[table]):
                case = break_of(table, rule)
                entity, ok, bad = case["entity"], 2 * i + 1, 2 * i + 2
                rows.setdefault(entity, []).append((ok, record(entity, ok), False))
                rows[entity].append((bad, record(entity, bad, case.get("set")), "parse_error" in case))
                for j, r in enumerate(case.get("stored", [])):
                    stored.setdefault(entity, []).append((10_000 + 10 * i + j, record(entity, bad, r), False))
            existing = conformed(spark, spec, stored) if stored else None
            context = CaseContext(spark, spec, existing)
            result = conformed(spark, spec, rows).transform(check(spec, RULES[table], NOW, context))
            cache[table] = self[table] = result.select("_line_no", QUARANTINE_COLUMN, WARNINGS_COLUMN).persist()
            return cache[table]

    yield Lazy()
    for df in cache.values():
        df.unpersist()


@pytest.mark.parametrize(("table", "rule"), list(all_rules()))
def test_rule_flags_the_row_that_breaks_it(
    spark: SparkSession, checked_tables: dict[str, DataFrame], table: str, rule: Rule
) -> None:
    i = RULES[table].index(rule)
    actual = checked_tables[table].where(F.col("_line_no").isin(2 * i + 1, 2 * i + 2))
    failed = [rule.name, *break_of(table, rule).get("also", [])]
    by_severity = {
        s: [r.name for r in RULES[table] if r.name in failed and r.severity == s] for s in ("quarantine", "warn")
    }
    expected = spark.createDataFrame(
        [(2 * i + 1, [], []), (2 * i + 2, by_severity["quarantine"], by_severity["warn"])], RESULT
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_every_table_with_rules_has_cases_for_its_configured_rules() -> None:
    configured = {t: {r.name for r in rules} for t, rules in RULES.items()}
    for table, breaks in CASES["breaks"].items():
        assert set(breaks) <= configured[table], f"{table}: cases for rules that do not exist"
