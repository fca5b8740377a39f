"""Spark's I/O floor for a landing: every entity's files read with Spark's own reader (`spark.read.json` / `csv`)
and written as Parquet, in one process with the same master and driver memory as the jobs. Prints the
entities copied. Usage: python -m tests.benchmarks.floor LANDING OUT [MASTER]"""

from __future__ import annotations

import sys
from pathlib import Path

from pyspark.sql import SparkSession

from marketlake.config import load_settings


def copy_landing(spark: SparkSession, landing: Path, out: Path) -> int:
    settings = load_settings("local")
    copied = 0
    for domain, entities in settings.sources.items():
        for entity, spec in entities.items():
            files = [str(p) for p in sorted((landing / domain / entity).glob("date=*/*")) if p.is_file()]
            if not files:
                continue
            reader = spark.read.option("header", "true") if spec.format == "csv" else spark.read
            df = reader.csv(files) if spec.format == "csv" else reader.json(files)
            df.write.mode("overwrite").parquet(str(out / f"{domain}_{entity}"))
            copied += 1
    return copied


def main() -> None:
    landing, out = Path(sys.argv[1]), Path(sys.argv[2])
    master = sys.argv[3] if len(sys.argv) > 3 else "local[2]"
    settings = load_settings("local")
    builder = SparkSession.builder.master(master).appName("marketlake-floor")
    for key in ("spark.driver.memory", "spark.sql.shuffle.partitions", "spark.sql.parquet.compression.codec"):
        builder = builder.config(key, settings.spark.conf[key])
    spark = builder.config("spark.ui.enabled", "false").getOrCreate()
    print(f"floor entities {copy_landing(spark, landing, out)}")
    spark.stop()


if __name__ == "__main__":
    main()
