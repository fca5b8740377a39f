"""Rows in one canonical text form whoever read them (Spark, DuckDB, pandas), hashed: the oracle that two readers of a
table return the same rows. Written for the tests, independently of marketlake's own code.

Values keep their type in the text (`d:` decimal, compared by value, `f:` float, `ts:` zoned timestamp in UTC, `ntz:`
timestamp without zone, `date:`), so a decimal read as a float, or a zoned timestamp read as a naive local one, is a
difference.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import types as T


def value(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, np.ndarray):
        v = v.tolist()
    elif isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, pd.Timestamp):
        v = v.to_pydatetime()
    if isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return "f:nan" if math.isnan(v) else f"f:{v!r}"
    if isinstance(v, Decimal):  # by value: Spark hands out -0.00000001 of a DECIMAL(20, 8) as Decimal('-1.0E-8')
        return f"d:{v.normalize():f}"
    if isinstance(v, datetime):
        return f"ts:{v.astimezone(UTC).replace(tzinfo=None).isoformat()}" if v.tzinfo else f"ntz:{v.isoformat()}"
    if isinstance(v, date):
        return f"date:{v.isoformat()}"
    if isinstance(v, bytes | bytearray):
        return f"b:{bytes(v).hex()}"
    if isinstance(v, Mapping):  # empty, it reads as an empty array would: Arrow hands out an empty map as []
        return {str(k): value(x) for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))} if v else []
    if isinstance(v, list | tuple):
        if v and all(isinstance(x, tuple) and len(x) == 2 for x in v):  # an Arrow map: (key, value) pairs
            return value(dict(v))
        return [value(x) for x in v]
    raise TypeError(f"no canonical form for {type(v).__name__}: {v!r}")


def row(r: Mapping[str, Any]) -> str:
    return json.dumps({k: value(v) for k, v in r.items()}, sort_keys=True, ensure_ascii=False)


def digest(rows: Iterable[Mapping[str, Any]]) -> tuple[int, str]:
    """(row count, SHA-256 of the sorted canonical rows)."""
    lines = sorted(row(r) for r in rows)
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _zoned(v: Any, dtype: T.DataType) -> Any:
    """A Spark value with its TIMESTAMP (session-zone) values made zone-aware: Spark hands them out naive, in the
    process's zone, which the session factory pins to UTC."""
    if v is None:
        return None
    if isinstance(dtype, T.TimestampType):
        return v.replace(tzinfo=UTC)
    if isinstance(dtype, T.ArrayType):
        return [_zoned(x, dtype.elementType) for x in v]
    if isinstance(dtype, T.MapType):
        return {k: _zoned(x, dtype.valueType) for k, x in v.items()}
    if isinstance(dtype, T.StructType):
        return {f.name: _zoned(v[f.name], f.dataType) for f in dtype.fields}
    return v


def spark_rows(df: DataFrame) -> list[dict[str, Any]]:
    fields = df.schema.fields
    return [{f.name: _zoned(r[f.name], f.dataType) for f in fields} for r in df.collect()]


def pandas_rows(pdf: pd.DataFrame) -> list[dict[str, Any]]:
    columns = list(pdf.columns)
    return [dict(zip(columns, values, strict=True)) for values in pdf.itertuples(index=False, name=None)]


def differences(left: list[Mapping[str, Any]], right: list[Mapping[str, Any]], n: int = 3) -> str:
    """A few rows only one side holds, for a failure message."""
    a, b = {row(r) for r in left}, {row(r) for r in right}
    return f"only left: {sorted(a - b)[:n]}\nonly right: {sorted(b - a)[:n]}"
