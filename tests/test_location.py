"""Lakehouse locations on any filesystem (no Spark): joins keep a URI's scheme and authority, a local folder stays the
plain path it always was, and the state that needs a local disk (the embedded metastore, MLflow's SQLite store, the
SQL endpoint's marker) is refused or skipped, in one line naming the fix, when the lakehouse is elsewhere."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from marketlake.catalogue import CatalogueEntry, catalogue_path, read_catalogue, write_catalogue
from marketlake.config import Settings, load_settings
from marketlake.errors import ConfigError, InputError
from marketlake.location import Location
from marketlake.models import registry
from marketlake.models.spec import load_models
from marketlake.session import check_catalog_free, metastore_url, serving_marker, session_conf

HDFS = "hdfs://namenode:8020/data/lake"
SERVER = "jdbc:postgresql://db:5432/hive"  # a metastore server whose driver the session does not look up


def test_a_join_keeps_the_scheme_and_authority_with_one_slash() -> None:
    for uri in (HDFS, "s3a://bucket/lake", "abfss://c@account.dfs.core.windows.net/lake", "gs://bucket"):
        root = Location.of(f"{uri}/")
        assert str(root) == uri
        assert str(root / "silver" / "exchange_trades") == f"{uri}/silver/exchange_trades"
        assert str(root / "/gold/") == f"{uri}/gold"
        assert str(root / "a/b") == f"{uri}/a/b"
        assert not root.is_local
    assert Location.of(HDFS).scheme == "hdfs" and Location.of("S3A://bucket/lake").scheme == "s3a"
    assert str(Location.of("hdfs:///lake") / "bronze") == "hdfs:///lake/bronze"  # the default namenode
    with pytest.raises(ValueError, match="cannot join an empty name"):
        Location.of(HDFS) / "/"


def test_a_local_location_is_the_path_it_always_was(tmp_path: Path) -> None:
    root = Location.of(tmp_path / "lake")
    assert root.is_local and root.scheme is None
    assert str(root) == str(tmp_path / "lake")
    assert str(root / "silver" / "t") == str(tmp_path / "lake" / "silver" / "t")
    assert (root / "_metastore").local_path == tmp_path / "lake" / "_metastore"
    assert Location.of(f"file://{tmp_path}/my%20lake/") == Location.of(tmp_path / "my lake")
    assert Location.of(f"file://localhost{tmp_path}") == Location.of(tmp_path)
    assert Location.of(root) is root
    assert root == Location.of(str(tmp_path / "lake")) and root != Location.of(HDFS)


def test_a_remote_location_has_no_local_path_and_a_malformed_uri_is_refused() -> None:
    with pytest.raises(ConfigError, match=rf"^{HDFS}/x is not on the local filesystem, and this needs a local path$"):
        _ = (Location.of(HDFS) / "x").local_path
    with pytest.raises(ValueError, match=r"^a file: URI must name this host \(file:///path\)$"):
        Location.of("file://otherhost/lake")
    with pytest.raises(ValueError, match=r"^write a s3a: location as s3a://authority/path$"):
        Location.of("s3a:bucket/lake")


def test_settings_given_a_path_hold_a_location(tmp_path: Path) -> None:
    """dataclasses.replace with a tmp_path (as the Spark tests do) gives the same Settings as a configured root."""
    settings = dataclasses.replace(load_settings("local"), lakehouse_root=tmp_path, landing_dir=str(tmp_path / "in"))
    assert settings.lakehouse_root == Location.of(tmp_path) and settings.landing_dir == Location.of(tmp_path / "in")
    assert settings.metastore_dir == tmp_path / "_metastore"
    assert str(settings.database_location("gold") / "exchange_rfm") == str(tmp_path / "gold" / "exchange_rfm")


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """A lakehouse on HDFS with the default, embedded, metastore (the working directory an empty temp folder)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MARKETLAKE_LAKEHOUSE", HDFS)
    monkeypatch.delenv("MARKETLAKE_LANDING", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return load_settings("local")


def test_a_distributed_lakehouse_needs_a_metastore_server_in_one_line(remote: Settings, tmp_path: Path) -> None:
    expected = (
        rf"^lakehouse root {HDFS} is not a local folder, so the embedded metastore \(Derby, on local disk\) cannot "
        r"live in it; use a metastore every driver reaches: metastore: \{kind: server, url: \.\.\.\} in "
        r"conf/<env>\.yaml \(make metastore-server\), or spark\.hadoop\.javax\.jdo\.option\.ConnectionURL$"
    )
    for needs_derby in (lambda: remote.metastore_dir, lambda: metastore_url(remote), lambda: session_conf(remote)):
        with pytest.raises(ConfigError, match=expected):
            needs_derby()
    with pytest.raises(ConfigError, match=expected):
        check_catalog_free(remote, wait_seconds=0)
    assert not any(tmp_path.iterdir())


def test_with_a_metastore_server_nothing_of_a_distributed_lakehouse_is_local(remote: Settings) -> None:
    served = dataclasses.replace(remote, metastore_server=SERVER)
    conf = session_conf(served)
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == SERVER
    assert conf["spark.sql.warehouse.dir"] == f"{HDFS}/_warehouse"
    assert conf["spark.marketlake.root"] == HDFS
    assert "derby.system.home" not in conf["spark.driver.extraJavaOptions"]
    check_catalog_free(served, wait_seconds=0)
    assert serving_marker(served) is None
    own = dataclasses.replace(remote, spark=dataclasses.replace(remote.spark, conf={**remote.spark.conf, **conf}))
    assert metastore_url(own) == SERVER


def test_a_local_lakehouse_keeps_its_metastore_and_marker_under_the_root(tmp_path: Path) -> None:
    settings = dataclasses.replace(load_settings("local"), lakehouse_root=tmp_path)
    conf = session_conf(settings)
    assert conf["spark.driver.extraJavaOptions"].startswith(f"-Dderby.system.home={tmp_path / '_metastore'} ")
    assert conf["spark.sql.warehouse.dir"] == str(tmp_path / "_warehouse")
    assert conf["spark.marketlake.root"] == str(tmp_path)
    assert metastore_url(settings) == f"jdbc:derby:;databaseName={tmp_path / '_metastore' / 'metastore_db'};create=true"
    assert serving_marker(settings) == tmp_path / "_metastore" / "serving.json"


def test_mlflow_needs_a_tracking_server_for_a_distributed_lakehouse(
    remote: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = load_models(remote.conf_dir, remote.overlay("models"))
    with pytest.raises(ConfigError, match=rf"^lakehouse root {HDFS} is not a local folder, so MLflow's default SQLite"):
        registry.tracking_uri(remote, conf)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert registry.tracking_uri(remote, conf) == "http://mlflow.internal:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    local = dataclasses.replace(remote, lakehouse_root=tmp_path)
    assert registry.tracking_uri(local, conf) == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"


def test_the_manifest_of_a_distributed_lakehouse_is_read_through_delta_rs(tmp_path: Path) -> None:
    """The object store delta-rs opens that lakehouse's tables with reads the manifest, without a JVM: here on the
    local filesystem, named by a URI as an hdfs:// or s3a:// one would be (Location.of makes file: URIs local)."""
    entries = [CatalogueEntry("gold.exchange_rfm", f"{HDFS}/gold/exchange_rfm", "delta", "EXTERNAL")]
    written = write_catalogue(tmp_path, entries)
    assert written == catalogue_path(tmp_path) and written.local_path == tmp_path / "_catalogue.json"
    assert json.loads(written.local_path.read_text())["tables"]["gold.exchange_rfm"]["type"] == "EXTERNAL"
    uri = Location(f"file://{tmp_path}")
    assert not uri.is_local
    catalogue = read_catalogue(uri)
    assert catalogue.path == Location(f"file://{tmp_path}/_catalogue.json")
    assert catalogue.resolve("GOLD.exchange_rfm") == entries[0]
    with pytest.raises(InputError, match=r"^no catalogue manifest at file://.*/elsewhere/_catalogue\.json: run a job"):
        read_catalogue(Location(f"file://{tmp_path}/elsewhere"))
    (tmp_path / "_catalogue.json").write_text("{not json")
    with pytest.raises(InputError, match=r"^the catalogue manifest file://\S+ is unreadable \(.*\); run any job"):
        read_catalogue(uri)
    with pytest.raises(ValueError, match="needs a SparkSession"):
        write_catalogue(Location.of(HDFS), entries)


def test_an_unreachable_store_is_one_line_saying_why() -> None:
    with pytest.raises(InputError) as caught:
        read_catalogue("hdfs://127.0.0.1:9/lake")  # nothing listens on the discard port
    message = str(caught.value)
    assert message.startswith("cannot read the catalogue manifest hdfs://127.0.0.1:9/lake/_catalogue.json: ")
    assert "Connection refused" in message and "\n" not in message and "\x1b" not in message
