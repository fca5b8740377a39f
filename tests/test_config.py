from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from marketlake.config import CONF_DIR, deep_merge, load_settings, parse_date
from marketlake.errors import ConfigError, InputError
from marketlake.experiments.spec import load_experiments
from marketlake.fraud.spec import load_fraud
from marketlake.gold.spec import days_from, load_gold
from marketlake.models.spec import load_models
from marketlake.silver.spec import load_all


def test_env_file_is_merged_over_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARKETLAKE_LAKEHOUSE", raising=False)
    monkeypatch.chdir(tmp_path)
    local = load_settings("local")
    cluster = load_settings("cluster")
    assert local.spark.master == "local[2]"
    assert cluster.spark.master == "spark://127.0.0.1:7077"
    assert cluster.spark.conf["spark.sql.shuffle.partitions"] == "16"
    assert cluster.spark.conf["spark.sql.session.timeZone"] == "UTC"  # from base, kept
    assert local.lakehouse_root.local_path == tmp_path / "lakehouse"
    assert local.landing_dir.local_path == tmp_path / "lakehouse" / "landing"


def test_environment_variables_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETLAKE_LAKEHOUSE", str(tmp_path / "lh"))
    monkeypatch.setenv("MARKETLAKE_SPARK_MASTER", "local[1]")
    s = load_settings("local")
    assert s.lakehouse_root.local_path == tmp_path / "lh"
    assert s.landing_dir.local_path == tmp_path / "lh" / "landing"
    assert s.spark.master == "local[1]"
    assert str(s.database_location("bronze")) == str(tmp_path / "lh" / "bronze")


def test_a_file_uri_is_the_local_folder_and_distributed_storage_is_kept_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A distributed root keeps its scheme and authority in every location made from it (a pathlib join would make
    hdfs://nn:8020/lake the local folder hdfs:/nn:8020/lake), and nothing is created on the local disk."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MARKETLAKE_LANDING", raising=False)
    monkeypatch.setenv("MARKETLAKE_LAKEHOUSE", f"file://{tmp_path}/my%20lake")
    assert load_settings("local").lakehouse_root.local_path == tmp_path / "my lake"
    for uri in ("hdfs://127.0.0.1:8020/lake", "s3a://bucket/lake", "s3://bucket/lake", "gs://bucket/lake"):
        monkeypatch.setenv("MARKETLAKE_LAKEHOUSE", f"{uri}/")
        s = load_settings("local")
        assert (str(s.lakehouse_root), str(s.landing_dir)) == (uri, f"{uri}/landing")
        assert str(s.database_location("silver") / "exchange_trades") == f"{uri}/silver/exchange_trades"
        assert (str(s.warehouse_dir), str(s.checkpoint_dir)) == (f"{uri}/_warehouse", f"{uri}/_checkpoints")
        assert not s.lakehouse_root.is_local
    abfss = "abfss://lake@account.dfs.core.windows.net/marketlake"
    monkeypatch.setenv("MARKETLAKE_LAKEHOUSE", abfss)
    monkeypatch.setenv("MARKETLAKE_LANDING", "landing")
    s = load_settings("local")
    assert str(s.database_location("gold")) == f"{abfss}/gold"
    assert s.landing_dir.local_path == tmp_path / "landing"  # a local landing zone beside a distributed lakehouse
    assert not any(tmp_path.iterdir())  # nothing created, no `hdfs:` folder


def test_a_root_marketlake_cannot_use_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    refused = {
        "http://host/lake": r"http: is not a filesystem marketlake reads and writes; use a local folder, a file:/// "
        r"URI or one of hdfs://, s3a://, s3://, abfss://, gs://$",
        "hdfs:/lake": r"write a hdfs: location as hdfs://authority/path$",
    }
    for root, error in refused.items():
        monkeypatch.setenv("MARKETLAKE_LAKEHOUSE", root)
        with pytest.raises(ConfigError, match=rf"^lakehouse root {root}: {error}"):
            load_settings("local")
    monkeypatch.setenv("MARKETLAKE_LAKEHOUSE", str(tmp_path / "lh"))
    monkeypatch.setenv("MARKETLAKE_LANDING", "file://otherhost/landing")
    with pytest.raises(ConfigError, match=r"^landing folder file://otherhost/landing: a file: URI must name this host"):
        load_settings("local")
    assert not any(tmp_path.iterdir())


def test_checkpoints_mode_is_one_of_three(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings("local").checkpoints == "auto"
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "local.yaml").write_text("lakehouse:\n  checkpoints: Reliable\n")
    assert load_settings("local", conf).checkpoints == "reliable"
    (conf / "local.yaml").write_text("lakehouse:\n  checkpoints: disk\n")
    with pytest.raises(ConfigError, match=r"^lakehouse\.checkpoints is 'disk'; choose one of auto, local, reliable$"):
        load_settings("local", conf)


def test_the_metastore_is_embedded_or_a_server_with_a_jdbc_url(tmp_path: Path) -> None:
    assert load_settings("local").metastore_server is None
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    url = "jdbc:derby://127.0.0.1:1527/marketlake;create=true"
    (conf / "local.yaml").write_text(f"metastore: {{kind: server, url: '{url}'}}\n")
    assert load_settings("local", conf).metastore_server == url
    (conf / "local.yaml").write_text("metastore: {kind: server, url: '127.0.0.1:1527'}\n")
    with pytest.raises(ConfigError, match=r"^metastore.kind is server, so metastore.url must be a JDBC URL"):
        load_settings("local", conf)
    (conf / "local.yaml").write_text("metastore: {kind: shared}\n")
    with pytest.raises(ConfigError, match=r"^metastore.kind is 'shared'; choose embedded or server$"):
        load_settings("local", conf)


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


def test_broken_spec_files_are_one_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"config file not found: {tmp_path}/gold.yaml")):
        load_gold(tmp_path)
    (tmp_path / "models.yaml").write_text("models: {regret: [unclosed\n")
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path}/models.yaml: malformed model spec")):
        load_models(tmp_path)
    (tmp_path / "experiments.yaml").write_text("experiments: {}\n")
    assert load_experiments(tmp_path) == {}
    (tmp_path / "experiments.yaml").write_text("{}\n")
    with pytest.raises(ConfigError, match=re.escape("experiments.yaml: malformed experiment spec ('experiments')")):
        load_experiments(tmp_path)
    shutil.copy(CONF_DIR / "fraud.yaml", tmp_path / "fraud.yaml")
    with pytest.raises(ConfigError, match=re.escape("malformed fraud spec (thresholds need 0 < review < block")):
        load_fraud(tmp_path, {"thresholds": {"review": 0.9}})


def test_deep_merge_and_dates() -> None:
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}, "d": 1}
    assert parse_date("2026-02-28") == date(2026, 2, 28)
    with pytest.raises(InputError, match="--start '2026-02-30' is not a date in YYYY-MM-DD form"):
        parse_date("2026-02-30", "--start")


def test_every_conf_file_takes_the_environments_overlay(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "tight.yaml").write_text(
        "overlays:\n"
        "  gold: {churn: {label_days: 14}}\n"
        "  models: {risk_band_default: calm}\n"
        "  experiments: {experiments: {regret_interventions: {maturity_days: 45}}}\n"
        "  fraud: {thresholds: {block: 0.9}}\n"
        "  quality: {exchange_users: []}\n"
        "  sources: {exchange: {users: {required: [user_id]}}}\n"
    )
    s = load_settings("tight", conf_dir=conf)
    assert s.sources["exchange"]["users"].required == ("user_id",)
    gold = load_gold(s.conf_dir, s.overlay("gold"))
    assert (gold.params["churn"]["label_days"], gold.tables["exchange_churn_features"].lookahead) == (14, 14)
    assert load_models(s.conf_dir, s.overlay("models")).risk_band_default == "calm"
    assert load_experiments(s.conf_dir, s.overlay("experiments"))["regret_interventions"].maturity_days == 45
    assert (load_fraud(s.conf_dir, s.overlay("fraud")).block, load_fraud(s.conf_dir).block) == (0.9, 0.8)
    _, rules = load_all(s.conf_dir, s.sources, {"quality": s.overlay("quality")})
    assert [r.name for r in rules["exchange_users"]] == ["record_parseable", "user_id_present"] + [
        r.name for r in rules["exchange_users"] if r.kind == "castable"
    ]
    (conf / "typo.yaml").write_text("overlays: {gol: {}}\n")
    with pytest.raises(ConfigError, match="overlays must map conf files"):
        load_settings("typo", conf_dir=conf)


def test_windows_are_derived_from_the_parameters() -> None:
    params = {"rfm": {"window_days": 90}, "exchange": {"price_lookback_days": 1, "compliance": {"rapid_hours": 30}}}
    assert days_from(7, params) == 7
    assert days_from("rfm.window_days + exchange.price_lookback_days", params) == 91
    assert days_from("max((exchange.compliance.rapid_hours + 23) // 24, exchange.price_lookback_days)", params) == 2
    with pytest.raises(ValueError, match=r"no parameter rfm\.nope"):
        days_from("rfm.nope", params)
    with pytest.raises(ValueError, match="unsupported expression"):
        days_from("__import__('os')", params)
