"""Data-quality rule kinds, each with breaking and passing rows (the configured rules: test_silver_rules.py)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from marketlake.errors import ConfigError
from marketlake.quality import Rule, load_rules, parse_rules, split_quarantine, with_quality

NOW = datetime(2026, 3, 1, 12, 0, 0)
CHECKED = "id int, _dq_quarantine array<string>, _dq_warnings array<string>"

KINDS = [
    (Rule("v_present", "not_null", "quarantine", {"column": "v"}), ["7", None, "  "], [False, True, True]),
    (
        Rule("v_decimal", "castable", "quarantine", {"column": "v", "type": "decimal(20,8)"}),
        ["1.5", "N/A", None],
        [False, True, False],
    ),
    (Rule("v_positive", "positive", "quarantine", {"column": "v"}), ["0.01", "0", "-3"], [False, True, True]),
    (
        Rule("v_range", "range", "quarantine", {"column": "v", "min": 0, "max": 1}),
        ["1", "1.01", "-0.1"],
        [False, True, True],
    ),
    (
        Rule("v_known", "in_set", "quarantine", {"column": "v", "values": ["buy", "sell"]}),
        ["buy", "BUY", None],
        [False, True, False],
    ),
    (
        Rule("v_format", "regex", "quarantine", {"column": "v", "pattern": "^0x[0-9a-f]{4}$"}),
        ["0xab12", "ab12", None],
        [False, True, False],
    ),
    (
        Rule("v_small", "expression", "quarantine", {"expr": "try_cast(v AS int) < 10"}),
        ["9", "10", "x"],
        [False, True, False],
    ),
    (
        Rule("v_not_future", "not_future", "quarantine", {"column": "v", "tolerance_minutes": 5}),
        ["2026-03-01 12:05:00", "2026-03-01 12:05:01", None],
        [False, True, False],
    ),
]


@pytest.mark.parametrize(("rule", "values", "broken"), KINDS, ids=[k[0].kind for k in KINDS])
def test_each_rule_kind_flags_the_rows_that_break_it(
    spark: SparkSession, rule: Rule, values: list[str | None], broken: list[bool]
) -> None:
    df = spark.createDataFrame(list(enumerate(values)), "id int, v string")
    actual = df.transform(with_quality([rule], NOW)).drop("v")
    expected = spark.createDataFrame([(i, [rule.name] if b else [], []) for i, b in enumerate(broken)], CHECKED)
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_warnings_keep_the_row_and_quarantine_rules_split_it_off(spark: SparkSession) -> None:
    rules = [
        Rule("id_present", "not_null", "quarantine", {"column": "id"}),
        Rule("v_positive", "positive", "quarantine", {"column": "v"}),
        Rule("v_small", "range", "warn", {"column": "v", "max": 100}),
    ]
    df = spark.createDataFrame([(1, "5"), (2, "500"), (3, "-500"), (None, "1")], "id int, v string")
    checked = df.transform(with_quality(rules, NOW))
    keep, quarantine = split_quarantine(checked)
    assert_df_equality(
        keep.drop("v"), spark.createDataFrame([(1, [], []), (2, [], ["v_small"])], CHECKED), ignore_nullable=True
    )
    assert_df_equality(
        quarantine.drop("v"),
        spark.createDataFrame([(3, ["v_positive"], []), (None, ["id_present"], [])], CHECKED),
        ignore_nullable=True,
    )


def test_rule_files_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a name and a kind"):
        parse_rules({"t": [{"name": "x", "kind": "sometimes", "severity": "warn"}]})
    with pytest.raises(ConfigError, match="has severity 'fatal'"):
        parse_rules({"t": [{"name": "x", "kind": "not_null", "column": "a", "severity": "fatal"}]})
    with pytest.raises(ConfigError, match=r"\(castable\) lacks \['type'\]"):
        parse_rules({"t": [{"name": "x", "kind": "castable", "column": "a", "severity": "warn"}]})
    with pytest.raises(ConfigError, match="rule names must be unique"):
        parse_rules({"t": [{"name": "x", "kind": "not_null", "column": "a", "severity": "warn"}] * 2})
    (tmp_path / "q.yaml").write_text("t: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read quality rules"):
        load_rules(tmp_path / "q.yaml")
