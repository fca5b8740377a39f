"""pandas -> Spark for oracle tests: pandas' NaT/NaN become nulls and Timestamps plain datetimes."""

from __future__ import annotations

import json
import re
from datetime import date, datetime

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from marketlake.bronze import bronze_schema
from marketlake.config import SourceSpec


def plain(value: object) -> object:
    if value is None or value is pd.NaT or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.to_pydatetime() if isinstance(value, pd.Timestamp) else value


def to_spark(spark: SparkSession, pdf: pd.DataFrame, schema: str) -> DataFrame:
    """The frame's columns named in the DDL schema, in its order, as a Spark DataFrame of that schema."""
    columns = [c.strip().split()[0] for c in re.split(r",(?![^()]*\))", schema)]
    rows = [tuple(plain(v) for v in r) for r in pdf[columns].astype(object).itertuples(index=False)]
    return spark.createDataFrame(rows, schema)


def bronze_frame(
    spark: SparkSession, source: SourceSpec, records: list[dict], landing: date, ingest: datetime
) -> DataFrame:
    """Bronze rows of one source entity as ingestion lands them: one line per record of one file, fields as text."""
    rows = []
    for n, record in enumerate(records, start=1):
        meta = {
            "_batch_id": "b1",
            "_landing_date": landing,
            "_source_file": f"{source.entity}.jsonl",
            "_source_size": 1,
            "_line_no": n,
            "_ingest_ts": ingest,
            "_source_format": "jsonl",
            "_raw_record": json.dumps(record),
        }
        rows.append(tuple({**meta, **record}.get(f.name) for f in bronze_schema(source).fields))
    return spark.createDataFrame(rows, bronze_schema(source))
