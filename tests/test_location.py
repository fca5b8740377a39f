"""Lakehouse locations on any filesystem (no Spark): joins keep a URI's scheme and authority, a local folder stays the
plain path it always was, and the catalogue manifest of a lakehouse elsewhere is read through delta-rs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marketlake.catalogue import CatalogueEntry, catalogue_path, read_catalogue, write_catalogue
from marketlake.errors import ConfigError, InputError
from marketlake.location import Location

HDFS = "hdfs://namenode:8020/data/lake"


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
