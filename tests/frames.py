"""pandas -> Spark for oracle tests: pandas' NaT/NaN become nulls and Timestamps plain datetimes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession


def plain(value: object) -> object:
    if value is None or value is pd.NaT or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.to_pydatetime() if isinstance(value, pd.Timestamp) else value


def to_spark(spark: SparkSession, pdf: pd.DataFrame, schema: str) -> DataFrame:
    """The frame's columns named in the DDL schema, in its order, as a Spark DataFrame of that schema."""
    columns = [c.strip().split()[0] for c in re.split(r",(?![^()]*\))", schema)]
    rows = [tuple(plain(v) for v in r) for r in pdf[columns].astype(object).itertuples(index=False)]
    return spark.createDataFrame(rows, schema)
