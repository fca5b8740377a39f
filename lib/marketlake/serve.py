"""The SQL endpoint for BI tools: Spark's Thrift server (the HiveServer2 protocol that JDBC/ODBC drivers, Power BI,
Tableau and DBeaver speak) over the lakehouse's catalog, inside a session made like every job's (Delta's extension
and catalog, the persistent metastore, UTC), bound to one address."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from marketlake.catalogue import list_catalogue
from marketlake.errors import InputError

log = logging.getLogger(__name__)

THRIFT_SERVER = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @property
    def url(self) -> str:
        """The JDBC URL a BI tool connects to (Hive JDBC driver; no SASL, as nothing but this host can reach it)."""
        return f"jdbc:hive2://{self.host}:{self.port}/default;auth=noSasl"

    def conf(self) -> dict[str, str]:
        """What the Thrift server reads from the session's Hadoop configuration."""
        return {
            "spark.hadoop.hive.server2.thrift.bind.host": self.host,
            "spark.hadoop.hive.server2.thrift.port": str(self.port),
            "spark.hadoop.hive.server2.transport.mode": "binary",
            "spark.hadoop.hive.server2.authentication": "NOSASL",
        }


def check_port_free(endpoint: Endpoint) -> None:
    """One clear line, before anything starts, for a port out of range or taken."""
    if not 0 < endpoint.port < 65536:
        raise InputError(f"--port must be between 1 and 65535, not {endpoint.port}")
    with socket.socket() as s:
        try:
            s.bind((endpoint.host, endpoint.port))
        except OSError as exc:
            raise InputError(
                f"cannot listen on {endpoint.host}:{endpoint.port} ({exc.strerror}); is an endpoint already "
                "running? choose another with --port"
            ) from None


def wait_listening(endpoint: Endpoint, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((endpoint.host, endpoint.port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the Thrift server did not listen on {endpoint.host}:{endpoint.port} in {seconds:.0f} s")


def sync_catalog_schemas(spark: SparkSession, databases: Sequence[str]) -> list[str]:
    """Write each Delta table's schema into the metastore where the metastore's copy differs, so that a client
    asking the protocol for a table's columns (GetColumns: a BI tool's navigator) sees them. Delta keeps the schema
    in its log; tables created before spark.databricks.delta.catalog.update.enabled was on (conf/base.yaml) hold an
    empty one in the metastore, and that setting updates the copy after a commit in the background. The tables come
    from the catalogue's own listing (one batched metastore call per database). Returns the tables updated."""
    external = spark._jsparkSession.sharedState().externalCatalog()
    updated = []
    for entry in list_catalogue(spark):
        if entry.database not in databases or entry.provider != "delta":
            continue
        stored = external.getTable(entry.database, entry.table)
        schema = spark.table(entry.name).schema
        if StructType.fromJson(json.loads(stored.schema().json())) != schema:
            jschema = spark._jsparkSession.parseDataType(schema.json())
            external.alterTableDataSchema(entry.database, entry.table, jschema)
            updated.append(entry.name)
    return updated


class Server:
    """A started Thrift server; stop() ends it and removes the marker other processes read (serving.json; None
    where there is none: session.serving_marker)."""

    def __init__(self, spark: SparkSession, endpoint: Endpoint, marker: Path | None) -> None:
        self.spark, self.endpoint, self.marker = spark, endpoint, marker
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        server_class = getattr(jvm, THRIFT_SERVER)
        self._server = server_class.startWithSparkSession(spark._jsparkSession, False)
        wait_listening(endpoint)
        if marker is not None:
            marker.write_text(json.dumps({"pid": os.getpid(), "url": endpoint.url}))

    def stop(self) -> None:
        if self.marker is not None:
            self.marker.unlink(missing_ok=True)
        self._server.stop()
