"""Intermediate results a stage reuses: reliable checkpoints (files under the lakehouse, which survive a lost
executor) on a cluster or when conf asks, local ones otherwise; a job's reliable checkpoints end with the job."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from marketlake.config import Settings
from marketlake.runtime import drop_checkpoints
from marketlake.session import checkpoint, reliable_checkpoints


def test_auto_is_reliable_on_a_cluster_and_local_on_a_local_master(settings: Settings) -> None:
    assert settings.checkpoints == "auto"
    assert not reliable_checkpoints(settings, "local[2]")
    assert reliable_checkpoints(settings, "spark://127.0.0.1:7077")
    reliable, local = (dataclasses.replace(settings, checkpoints=m) for m in ("reliable", "local"))
    assert reliable_checkpoints(reliable, "local[2]") and not reliable_checkpoints(local, "spark://127.0.0.1:7077")


@pytest.fixture
def on_hdfs(spark: SparkSession, hdfs: str) -> Iterator[str]:
    """The shared session with its reliable checkpoints on the real HDFS for one test, then none again."""
    folder = f"{hdfs}/lake/_checkpoints"
    spark.sparkContext.setCheckpointDir(folder)
    yield folder
    context = spark.sparkContext._jsc.sc()  # no public API unsets it
    getattr(context, "checkpointDir_$eq")(spark._jvm.scala.Option.empty())


def test_a_reliable_checkpoint_is_files_on_hdfs_and_ends_with_the_job(spark: SparkSession, on_hdfs: str) -> None:
    jvm = spark._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()

    def files_under(folder: str) -> list[str]:
        path = jvm.org.apache.hadoop.fs.Path(folder)
        fs = path.getFileSystem(conf)
        if not fs.exists(path):
            return []
        found, listing = [], fs.listFiles(path, True)
        while listing.hasNext():
            found.append(str(listing.next().getPath()))
        return found

    df = spark.range(200).select(F.col("id"), (F.col("id") % 7).alias("bucket"))
    kept = checkpoint(df.where("bucket = 3"))
    folder = spark.sparkContext.getCheckpointDir()
    assert folder is not None and folder.startswith(on_hdfs)
    written = files_under(folder)
    assert written and all(f.startswith(f"{on_hdfs}/") and "/rdd-" in f for f in written), written
    assert "LogicalRDD" in kept._jdf.queryExecution().logical().toString()  # read back from the files, no lineage
    expected = spark.createDataFrame([(i, 3) for i in range(3, 200, 7)], "id long, bucket long")
    assert_df_equality(kept.withColumn("bucket", F.col("bucket").cast("long")), expected, ignore_nullable=True)
    drop_checkpoints(spark)  # what every job does when it ends (marketlake.cli.run)
    assert files_under(folder) == []


def test_without_a_checkpoint_folder_the_checkpoint_is_local(spark: SparkSession) -> None:
    assert spark.sparkContext.getCheckpointDir() is None
    kept = checkpoint(spark.range(5))
    assert "LogicalRDD" in kept._jdf.queryExecution().logical().toString()
    assert sorted(r.id for r in kept.collect()) == [0, 1, 2, 3, 4]
    drop_checkpoints(spark)  # nothing to remove: no error
