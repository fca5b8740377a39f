"""The one SparkSession factory: Delta, a persistent Hive/Derby catalog under the lakehouse root, UTC."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import DataFrame, SparkSession

from marketlake.config import CONF_DIR, Settings
from marketlake.errors import CatalogBusy, ConfigError
from marketlake.runtime import hand_out, pin_utc

log = logging.getLogger(__name__)

JARS_DIR = Path(os.environ.get("MARKETLAKE_JARS_DIR", CONF_DIR.parent / ".jars"))
LOG4J_CONF = CONF_DIR / "log4j2.properties"
METASTORE_URL = "spark.hadoop.javax.jdo.option.ConnectionURL"


def delta_jars(jars_dir: Path = JARS_DIR) -> list[Path]:
    """Delta's JVM jars, fetched from Maven Central by `make jars` into a git-ignored folder, and the S3A
    connector's once `make s3a-jars` has fetched them (into its subfolder s3a/): what every job ships."""
    jars = sorted(jars_dir.glob("*.jar"))
    if not any(j.name.startswith("delta-spark") for j in jars):
        raise ConfigError(f"Delta's jars are not in {jars_dir}; run `make jars` (it fetches them with Maven)")
    return jars + sorted((jars_dir / "s3a").glob("*.jar"))


def under_spark_submit() -> bool:
    """True when this Python process was started by spark-submit (which already fixed master and jars)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def session_conf(settings: Settings) -> dict[str, str]:
    """Every Spark setting marketlake relies on, for the builder or for spark-submit's --conf."""
    root = settings.lakehouse_root
    java_opts = f"-Dlog4j.configurationFile=file:{LOG4J_CONF} -Duser.timezone=UTC"
    if root.is_local:  # Derby's home; a lakehouse elsewhere has its metastore in a server
        java_opts = f"-Dderby.system.home={settings.metastore_dir} {java_opts}"
    return {
        **settings.spark.conf,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.warehouse.dir": str(settings.warehouse_dir),
        METASTORE_URL: metastore_url(settings),
        "spark.hadoop.datanucleus.schema.autoCreateAll": "true",
        "spark.hadoop.hive.metastore.schema.verification": "false",
        "spark.driver.extraJavaOptions": java_opts,
        "spark.executor.extraJavaOptions": f"-Dlog4j.configurationFile=file:{LOG4J_CONF} -Duser.timezone=UTC",
        "spark.executorEnv.TZ": "UTC",
        "spark.marketlake.root": str(root),
        **metastore_client_conf(settings),
    }


def derby_url(settings: Settings) -> str:
    """The embedded Derby metastore under the lakehouse root."""
    return f"jdbc:derby:;databaseName={settings.metastore_dir / 'metastore_db'};create=true"


def metastore_embedded(settings: Settings) -> bool:
    """Whether the catalog is the embedded Derby database under the lakehouse root: neither the user's own database
    (spark.conf) nor a server's (metastore.kind: server)."""
    return not (settings.spark.conf.get(METASTORE_URL) or settings.metastore_server)


def metastore_url(settings: Settings) -> str:
    """The metastore database: the user's own (spark.conf), else a server's (metastore.kind: server), else the
    embedded Derby one (a local lakehouse only: Settings.metastore_dir)."""
    if metastore_embedded(settings):
        return derby_url(settings)
    return str(settings.spark.conf.get(METASTORE_URL) or settings.metastore_server)


def derby_client_jar(jars_dir: Path = JARS_DIR) -> Path:
    """Derby's network client driver (pyspark ships Derby's embedded driver, not this one)."""
    jars = sorted((jars_dir / "derby").glob("derbyclient-*.jar"))
    if not jars:
        raise ConfigError(
            f"the metastore is a Derby network server, whose client driver is not in {jars_dir / 'derby'}; "
            "run `make derby-jars` (it fetches it with Maven)"
        )
    return jars[-1]


def metastore_client_conf(settings: Settings) -> dict[str, str]:
    """What the driver needs to reach a Derby network server metastore: its JDBC driver, on the driver JVM's
    classpath (spark.jars loads it too late for the metastore's connection pool). Empty for any other metastore."""
    if not metastore_url(settings).startswith("jdbc:derby://"):
        return {}
    classpath = [str(derby_client_jar()), settings.spark.conf.get("spark.driver.extraClassPath", "")]
    return {
        "spark.hadoop.javax.jdo.option.ConnectionDriverName": "org.apache.derby.jdbc.ClientDriver",
        "spark.driver.extraClassPath": ":".join(p for p in classpath if p),
    }


SERVING_FILE = "serving.json"


def serving_marker(settings: Settings) -> Path | None:
    """Where the SQL endpoint says it is running (beside the embedded metastore it may hold, read by
    check_catalog_free); a lakehouse on distributed storage has no embedded metastore, so no marker."""
    return settings.metastore_dir / SERVING_FILE if settings.lakehouse_root.is_local else None


def check_catalog_free(settings: Settings, wait_seconds: float = 20) -> None:
    """Fail with one clear line, before a JVM starts, when another process holds this lakehouse's embedded Derby
    metastore (Derby admits one JVM at a time; a second one would fail deep in the Hive client). Derby keeps an
    exclusive lock on dbex.lck while the database is booted, released when that process ends, so a lock file
    left by a killed process does not count. A job that just ended may still be stopping its JVM, so a held lock
    is given `wait_seconds` to clear, unless the SQL endpoint holds it."""
    if not metastore_embedded(settings):
        return  # a shared metastore database: any number of processes
    lock = settings.metastore_dir / "metastore_db" / "dbex.lck"
    deadline = time.monotonic() + wait_seconds
    while not _lock_free(lock):
        endpoint = _serving(settings)
        if endpoint or time.monotonic() >= deadline:
            raise CatalogBusy(_busy_message(settings, endpoint))
        time.sleep(0.25)


def _lock_free(lock: Path) -> bool:
    if not lock.exists():
        return True
    with lock.open("rb+") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.lockf(handle, fcntl.LOCK_UN)
    return True


def _serving(settings: Settings) -> dict | None:
    """The running SQL endpoint's pid and URL (from the file jobs/serve.py keeps while it runs), or None."""
    try:
        endpoint = json.loads((settings.metastore_dir / SERVING_FILE).read_text())
        os.kill(int(endpoint["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return dict(endpoint)


def _busy_message(settings: Settings, endpoint: dict | None) -> str:
    where = f"the catalog of {settings.lakehouse_root} is open in another Spark process"
    if endpoint:
        return (
            f"{where}: the SQL endpoint (jobs/serve.py, pid {endpoint['pid']}) at {endpoint['url']}; query "
            "through it, or stop it (Ctrl-C, or kill the pid) before running a job"
        )
    return (
        f"{where} (another job, or the SQL endpoint); wait for it to finish, or give this run a lakehouse of its "
        "own (MARKETLAKE_LAKEHOUSE), or share a metastore server (metastore: {kind: server} in conf/<env>.yaml, "
        "make metastore-server; or spark.hadoop.javax.jdo.option.ConnectionURL for another database)"
    )


def get_spark(
    settings: Settings,
    app_name: str | None = None,
    master: str | None = None,
    extra_conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """Create (or return the running) SparkSession for marketlake.

    The master comes from the argument, else the config (MARKETLAKE_SPARK_MASTER overrides it); under
    spark-submit the submitted master and jars are kept.
    """
    pin_utc()
    if SparkContext._active_spark_context is None:  # a new JVM, or spark-submit's before it opened the catalog
        check_catalog_free(settings)
    if settings.lakehouse_root.is_local:
        settings.metastore_dir.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.appName(app_name or settings.spark.app_name)
    conf = session_conf(settings)
    if not under_spark_submit():
        builder = builder.master(master or settings.spark.master)
        conf["spark.jars"] = ",".join(str(j) for j in delta_jars())
        # Python workers (pandas UDFs, xgboost.spark) run this interpreter, the one with our dependencies,
        # unless PYSPARK_PYTHON says otherwise.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in {**conf, **(extra_conf or {})}.items():
        builder = builder.config(key, value)
    spark = builder.enableHiveSupport().getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    if reliable_checkpoints(settings, spark.sparkContext.master):
        spark.sparkContext.setCheckpointDir(str(settings.checkpoint_dir))  # Spark adds a folder of its own inside
    log.debug("spark %s session on %s", spark.version, spark.sparkContext.master)
    hand_out(spark)
    return spark


def reliable_checkpoints(settings: Settings, master: str) -> bool:
    """lakehouse.checkpoints: reliable, local, or auto (reliable on a cluster, local on a local[N] master)."""
    if settings.checkpoints == "auto":
        return not master.startswith("local")
    return settings.checkpoints == "reliable"


def checkpoint(df: DataFrame) -> DataFrame:
    """df computed once and kept for the reads that follow, with its lineage cut: as files under the session's
    checkpoint folder when it has one (they survive a lost executor; lakehouse.checkpoints), else in the
    executors' memory and disk (faster, lost with an executor)."""
    if df.sparkSession.sparkContext.getCheckpointDir():
        return df.checkpoint(eager=True)
    return df.localCheckpoint(eager=True)
