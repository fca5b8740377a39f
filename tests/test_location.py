"""Lakehouse locations on any filesystem (no Spark): joins keep a URI's scheme and authority, a local folder stays the
plain path it always was."""

from __future__ import annotations

from pathlib import Path

import pytest

from marketlake.errors import ConfigError
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
