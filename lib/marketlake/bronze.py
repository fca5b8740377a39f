"""Bronze: landing lines -> one append-only Delta table per source entity, keeping every record.

Each row carries ingestion metadata (batch id, landing date, source file and size, line number, ingest time,
format), every contract column as a string (CSV fields and JSON strings exactly as they arrived; JSON numbers and
objects as Spark's JSON parser renders them, so a 20-digit number may be shortened), any other field in
`_rescued_data` (JSON), the original line exactly as it arrived in `_raw_record`, and `_parse_error` (null when
the line parsed) naming why a line could not be parsed.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, LongType, StringType, StructField, StructType, TimestampType

from marketlake.config import SourceSpec
from marketlake.errors import InputError

META_FIELDS = [
    StructField("_batch_id", StringType(), False),
    StructField("_landing_date", DateType(), False),
    StructField("_source_file", StringType(), False),
    StructField("_source_size", LongType(), False),
    StructField("_line_no", LongType(), True),
    StructField("_ingest_ts", TimestampType(), False),
    StructField("_source_format", StringType(), False),
    StructField("_parse_error", StringType(), True),
]
TAIL_FIELDS = [
    StructField("_rescued_data", StringType(), True),
    StructField("_raw_record", StringType(), True),
]
# Bronze tables are liquid-clustered by the landing date, not partitioned by it: a daily landing adds one small file
# per table, and jobs/maintain.py's OPTIMIZE can merge a clustered table's days, never a partitioned one's.
LANDING_DATE = "_landing_date"
LANDING_DATE_PATTERN = r"/date=(\d{4}-\d{2}-\d{2})/"  # the landing date folder in a file's path
FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
_CORRUPT = "_ml_corrupt_record"
SOURCE_COLUMNS = ("_source_file", "_source_size", "_line_no")


# Delta keeps min/max statistics of the first 32 columns of every file in its log, which no VACUUM removes: for bronze
# they would be raw emails and phones. Statistics are kept for these lineage columns only (ingestion filters on
# _source_file and _landing_date; _landing_date is the clustering column).
STATS_COLUMNS_PROPERTY = "delta.dataSkippingStatsColumns"
BRONZE_STATS_COLUMNS = "_batch_id,_landing_date,_source_file,_source_size,_line_no,_ingest_ts,_source_format"


def bronze_schema(spec: SourceSpec) -> StructType:
    """Metadata, then the contract columns as strings, then rescued data and the raw record."""
    contract = [StructField(c, StringType(), True) for c in spec.columns]
    return StructType(META_FIELDS + contract + TAIL_FIELDS)


def format_of(path: str) -> str | None:
    name = path.rsplit("/", 1)[-1].lower()
    for ext, fmt in FORMATS.items():
        if name.endswith(ext):
            return fmt
    return None


def read_lines(spark: SparkSession, files: Sequence[str]) -> DataFrame:
    """(_source_file, _source_size, _line_no, line) for every line of the text files.

    Lines end at LF, CRLF or a lone CR (as Hadoop's line reader counts them); a final line break ends the last
    line. Each file is read whole into one task, so a single file should stay well below 2 GB.
    """
    whole = spark.read.text(list(files), wholetext=True).select(
        F.col("_metadata.file_path").alias("_source_file"),
        F.col("_metadata.file_size").alias("_source_size"),
        F.split("value", r"\r\n|\r|\n", -1).alias("lines"),
    )
    lines = F.when(F.element_at("lines", -1) == "", F.slice("lines", 1, F.size("lines") - 1)).otherwise(F.col("lines"))
    return whole.select("_source_file", "_source_size", F.posexplode(lines).alias("pos", "line")).select(
        "_source_file", "_source_size", (F.col("pos") + 1).cast("long").alias("_line_no"), "line"
    )


def _contract_and_rescued(values: Column, spec: SourceSpec) -> list[Column]:
    """Contract columns from a map<string,string> of a record, plus the other keys as JSON."""
    contract = list(spec.columns)
    known = F.array(*[F.lit(c) for c in contract])
    extra = F.map_filter(values, lambda k, _: ~F.array_contains(known, k))
    rescued = F.when(F.size(extra) > 0, F.to_json(extra))
    return [values[c].alias(c) for c in contract] + [rescued.alias("_rescued_data")]


def parse_jsonl(lines: DataFrame, spec: SourceSpec) -> DataFrame:
    """Parse JSON-lines records; an unparseable line keeps its text and a reason, never disappears."""
    values = F.from_json("line", "map<string,string>", {"mode": "PERMISSIVE"})
    error = F.when(F.trim("line") == "", F.lit("blank_line")).when(F.col("_values").isNull(), F.lit("malformed_json"))
    return lines.withColumn("_values", values).select(
        *SOURCE_COLUMNS,
        error.alias("_parse_error"),
        *_contract_and_rescued(F.col("_values"), spec),
        F.col("line").alias("_raw_record"),
    )


def csv_header(line: str) -> list[str]:
    """The field names of a CSV header line (quotes and a byte-order mark handled)."""
    return [h.strip() for h in next(csv.reader([line.lstrip("\ufeff")]))]


def check_csv_header(path: str, header: list[str]) -> None:
    """A CSV file needs a header line of distinct, non-empty names."""
    names = [h for h in header if h]
    if not names or len(names) != len(header) or len(set(header)) != len(header) or any("`" in h for h in header):
        raise InputError(f"{path}: the first line must be a header of distinct column names, got {header!r}")


def parse_csv(lines: DataFrame, spec: SourceSpec, headers: dict[str, list[str]]) -> DataFrame:
    """Parse CSV records using each file's own header (line 1), so a column added mid-stream is kept.

    `headers` maps each source file (as `_source_file` names it) to its header fields. A line whose field count
    differs from its header's is kept as unparseable ('csv_field_count').
    """
    data = lines.where(F.col("_line_no") > 1)
    parsed: DataFrame | None = None
    by_header: dict[tuple[str, ...], list[str]] = {}
    for path, header in headers.items():
        by_header.setdefault(tuple(header), []).append(path)
    for header, paths in by_header.items():
        ddl = ", ".join(f"`{h}` string" for h in header) + f", {_CORRUPT} string"
        record = F.from_csv("line", ddl, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT})
        part = data.where(F.col("_source_file").isin(paths)).withColumn("_rec", record)
        pairs = F.map_from_arrays(
            F.array(*[F.lit(h) for h in header]), F.array(*[F.col("_rec").getField(h) for h in header])
        )
        error = F.when(F.trim("line") == "", F.lit("blank_line")).when(
            F.col("_rec").isNull() | F.col("_rec").getField(_CORRUPT).isNotNull(), F.lit("csv_field_count")
        )
        part = part.withColumn("_error", error).withColumn(
            "_values", F.when(F.col("_error").isNull(), F.map_filter(pairs, lambda _, v: v.isNotNull()))
        )
        part = part.select(
            *SOURCE_COLUMNS,
            F.col("_error").alias("_parse_error"),
            *_contract_and_rescued(F.col("_values"), spec),
            F.col("line").alias("_raw_record"),
        )
        parsed = part if parsed is None else parsed.unionByName(part)
    if parsed is None:
        return lines.sparkSession.createDataFrame([], _parsed_schema(spec))
    return parsed


def parse_parquet(spark: SparkSession, files: Sequence[str], spec: SourceSpec) -> DataFrame:
    """User exports in Parquet: typed columns become their string (or JSON) form; extras are rescued.

    Files may differ in columns (schemas are merged); a column a file lacks is simply absent from its records.
    """
    df = spark.read.option("mergeSchema", "true").parquet(*files)
    as_string = {
        f.name: (
            F.to_json(F.col(f"`{f.name}`"))
            if f.dataType.typeName() in ("struct", "array", "map")
            else F.col(f"`{f.name}`").cast("string")
        )
        for f in df.schema.fields
    }
    values = F.map_from_arrays(F.array(*[F.lit(k) for k in as_string]), F.array(*as_string.values()))
    values = F.map_filter(values, lambda _, v: v.isNotNull())
    return df.select(
        F.col("_metadata.file_path").alias("_source_file"),
        F.col("_metadata.file_size").alias("_source_size"),
        F.lit(None).cast("long").alias("_line_no"),
        F.lit(None).cast("string").alias("_parse_error"),
        *_contract_and_rescued(values, spec),
        F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns])).alias("_raw_record"),
    )


def _parsed_schema(spec: SourceSpec) -> StructType:
    fields = [
        StructField("_source_file", StringType()),
        StructField("_source_size", LongType()),
        StructField("_line_no", LongType()),
        StructField("_parse_error", StringType()),
    ]
    return StructType(fields + [StructField(c, StringType()) for c in spec.columns] + TAIL_FIELDS)


def with_bronze_metadata(
    parsed: DataFrame, spec: SourceSpec, batch_id: str, source_format: str, landing_date: str | None = None
) -> DataFrame:
    """Complete parsed rows into the bronze schema. The landing date comes from a `date=YYYY-MM-DD` folder in
    the file's path, else from `landing_date`."""
    found = F.regexp_extract("_source_file", LANDING_DATE_PATTERN, 1)
    fallback = F.lit(landing_date).cast("date") if landing_date else F.current_date()
    landing = F.coalesce(F.try_to_date(F.nullif(found, F.lit(""))), fallback)
    meta = {
        "_batch_id": F.lit(batch_id),
        "_landing_date": landing,
        "_ingest_ts": F.current_timestamp(),
        "_source_format": F.lit(source_format),
    }
    schema = bronze_schema(spec)
    return parsed.select(
        *[(meta[f.name] if f.name in meta else F.col(f.name)).cast(f.dataType).alias(f.name) for f in schema.fields]
    )


def check_user_header(path: str, header: list[str], spec: SourceSpec) -> None:
    """A user's CSV export must carry the entity's key columns; anything else is accepted and kept."""
    missing = [k for k in spec.key if k not in header]
    if missing:
        raise InputError(
            f"{path}: the header lacks the key column(s) {missing} of {spec.domain}.{spec.entity}; "
            f"expected columns: {', '.join(spec.columns)}"
        )
