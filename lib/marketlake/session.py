"""The one SparkSession factory: Delta, a persistent Hive/Derby catalog under the lakehouse root, UTC."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from pyspark.sql import SparkSession

from marketlake.config import CONF_DIR, Settings
from marketlake.errors import ConfigError
from marketlake.runtime import hand_out, pin_utc

log = logging.getLogger(__name__)

JARS_DIR = Path(os.environ.get("MARKETLAKE_JARS_DIR", CONF_DIR.parent / ".jars"))
LOG4J_CONF = CONF_DIR / "log4j2.properties"


def delta_jars(jars_dir: Path = JARS_DIR) -> list[Path]:
    """Delta's JVM jars, fetched from Maven Central by `make jars` into a git-ignored folder."""
    jars = sorted(jars_dir.glob("*.jar"))
    if not any(j.name.startswith("delta-spark") for j in jars):
        raise ConfigError(f"Delta's jars are not in {jars_dir}; run `make jars` (it fetches them with Maven)")
    return jars


def under_spark_submit() -> bool:
    """True when this Python process was started by spark-submit (which already fixed master and jars)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def session_conf(settings: Settings) -> dict[str, str]:
    """Every Spark setting marketlake relies on, for the builder or for spark-submit's --conf."""
    root = settings.lakehouse_root
    metastore = settings.metastore_dir
    java_opts = f"-Dderby.system.home={metastore} -Dlog4j.configurationFile=file:{LOG4J_CONF} -Duser.timezone=UTC"
    return {
        **settings.spark.conf,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.warehouse.dir": str(settings.warehouse_dir),
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={metastore / 'metastore_db'};create=true"
        ),
        "spark.hadoop.datanucleus.schema.autoCreateAll": "true",
        "spark.hadoop.hive.metastore.schema.verification": "false",
        "spark.driver.extraJavaOptions": java_opts,
        "spark.executor.extraJavaOptions": f"-Dlog4j.configurationFile=file:{LOG4J_CONF} -Duser.timezone=UTC",
        "spark.executorEnv.TZ": "UTC",
        "spark.marketlake.root": str(root),
    }


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
    log.debug("spark %s session on %s", spark.version, spark.sparkContext.master)
    hand_out(spark)
    return spark
