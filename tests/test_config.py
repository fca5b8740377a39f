from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from marketlake.config import deep_merge, load_settings, parse_date
from marketlake.errors import ConfigError, InputError


def test_env_file_is_merged_over_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARKETLAKE_LAKEHOUSE", raising=False)
    monkeypatch.chdir(tmp_path)
    local = load_settings("local")
    cluster = load_settings("cluster")
    assert local.spark.master == "local[2]"
    assert cluster.spark.master == "spark://127.0.0.1:7077"
    assert cluster.spark.conf["spark.sql.shuffle.partitions"] == "16"
    assert cluster.spark.conf["spark.sql.session.timeZone"] == "UTC"  # from base, kept
    assert local.lakehouse_root == tmp_path / "lakehouse"
    assert local.landing_dir == tmp_path / "lakehouse" / "landing"


def test_environment_variables_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETLAKE_LAKEHOUSE", str(tmp_path / "lh"))
    monkeypatch.setenv("MARKETLAKE_SPARK_MASTER", "local[1]")
    s = load_settings("local")
    assert s.lakehouse_root == tmp_path / "lh"
    assert s.landing_dir == tmp_path / "lh" / "landing"
    assert s.spark.master == "local[1]"
    assert s.database_location("bronze") == tmp_path / "lh" / "bronze"


def test_sources_are_typed_contracts() -> None:
    s = load_settings("local")
    trades = s.domain_sources("exchange")["trades"]
    assert trades.bronze_table == "bronze.exchange_trades"
    assert trades.key == ("trade_id",)
    assert set(trades.required) <= set(trades.columns)
    assert {d: len(e) for d, e in s.sources.items()} == {"exchange": 6, "commerce": 8, "trends": 1}


def test_unknown_env_and_domain_fail_clearly() -> None:
    with pytest.raises(ConfigError, match=r"unknown config environment 'prod'.*cluster.*local"):
        load_settings("prod")
    with pytest.raises(ConfigError, match="unknown domain 'crypto'; known domains: exchange, commerce, trends"):
        load_settings("local").domain_sources("crypto")


def test_broken_config_files_fail_clearly(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("lakehouse: [unclosed\n")
    (tmp_path / "local.yaml").write_text("{}\n")
    (tmp_path / "sources.yaml").write_text("{}\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_settings("local", conf_dir=tmp_path)
    (tmp_path / "base.yaml").write_text("spark: {master: local}\n")
    with pytest.raises(ConfigError, match="missing the required key 'lakehouse'"):
        load_settings("local", conf_dir=tmp_path)


def test_deep_merge_and_dates() -> None:
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}, "d": 1}
    assert parse_date("2026-02-28") == date(2026, 2, 28)
    with pytest.raises(InputError, match="--start '2026-02-30' is not a date in YYYY-MM-DD form"):
        parse_date("2026-02-30", "--start")
