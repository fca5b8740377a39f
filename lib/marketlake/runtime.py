"""The job process's own state, without pyspark (a Spark-free job imports this, never marketlake.session): its clock
pinned to UTC, and the sessions the session factory handed out, whose lakehouse's catalogue manifest the job runner
(marketlake.cli.run) refreshes when a job ends."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_HANDED_OUT: list[SparkSession] = []


def pin_utc() -> None:
    """Make this process (and the JVM it starts) live in UTC: PySpark turns a naive datetime into a timestamp, and
    a collected timestamp back into a datetime, with the Python process's local zone, whatever
    spark.sql.session.timeZone says. Called before any session starts."""
    os.environ["TZ"] = "UTC"
    time.tzset()


def hand_out(spark: SparkSession) -> None:
    """Note a session the session factory returns."""
    _HANDED_OUT.append(spark)


def take_handed_out() -> list[SparkSession]:
    """The sessions handed out since the last call (the same session once however often it was handed out)."""
    taken = list({id(s): s for s in _HANDED_OUT}.values())
    _HANDED_OUT.clear()
    return taken


def drop_checkpoints(spark: SparkSession) -> None:
    """Delete the session's reliable checkpoint folder (this application's, under lakehouse.checkpoints), through
    Hadoop's filesystem API so that any storage the folder is on works. The next get_spark sets a new one."""
    folder = spark.sparkContext.getCheckpointDir()
    if folder:
        from marketlake.fs import delete  # imports pyspark, which any process holding a session has loaded

        delete(spark, folder)
