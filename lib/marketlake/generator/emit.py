"""Turn clean generated records into landing lines with configurable dirt, and write them as export files."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from marketlake import fs
from marketlake.config import SourceSpec
from marketlake.generator.params import GeneratorParams
from marketlake.generator.rand import Rng

log = logging.getLogger(__name__)

JSON_OPTIONS = {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss'Z'", "ignoreNullFields": "true"}
CSV_TIMESTAMP = "yyyy-MM-dd HH:mm:ss"
# What an export tool sometimes writes into a file instead of a record.
GARBAGE_LINES = [
    "ERROR 502: upstream timeout while exporting",
    "\ufeff",
    "<html><body>Bad Gateway</body></html>",
]

LINES_SCHEMA = ["_date", "_part", "_k1", "_k2", "_k3", "line"]
LINES_SCHEMA_NO_PART = ["_date", "_k1", "_k2", "_k3", "line"]
LINES_DDL = "_date string, _part int, _k1 long, _k2 string, _k3 int, line string"


def _which(rng: Rng, stream: str, n: int, rid: Column) -> Column:
    return F.floor(rng.uniform(stream, rid) * n).cast("int")


def _struct_level_dirt(df: DataFrame, spec: SourceSpec, rng: Rng, dirty: dict[str, float]) -> DataFrame:
    """Drop a required field, or point a foreign key at nothing."""
    rid = F.col("_rid")
    missing = rng.bernoulli("dirty:missing", dirty.get("missing_required", 0.0), rid)
    which_missing = _which(rng, "dirty:missing:which", len(spec.required), rid)
    for i, name in enumerate(spec.required):
        df = df.withColumn(name, F.when(missing & (which_missing == i), F.lit(None)).otherwise(F.col(name)))
    refs = list(spec.references)
    if refs:
        unknown = rng.bernoulli("dirty:fk", dirty.get("unknown_reference", 0.0), rid)
        which_ref = _which(rng, "dirty:fk:which", len(refs), rid)
        for i, name in enumerate(refs):
            bad = F.concat(F.lit("UNKNOWN-"), F.col(name))
            df = df.withColumn(name, F.when(unknown & (which_ref == i), bad).otherwise(F.col(name)))
    return df


def _json_value_dirt(line: Column, spec: SourceSpec, rng: Rng, dirty: dict[str, float], rid: Column) -> Column:
    """Put text into a numeric JSON field, or make a positive one zero or negative."""
    if spec.numeric:
        wrong = rng.bernoulli("dirty:type", dirty.get("wrong_type", 0.0), rid)
        which = _which(rng, "dirty:type:which", len(spec.numeric), rid)
        for i, name in enumerate(spec.numeric):
            replaced = F.regexp_replace(line, f'(?<p>"{name}":)("[^"]*"|[-0-9.eE+]+)', '${p}"N/A"')
            line = F.when(wrong & (which == i), replaced).otherwise(line)
    if spec.positive:
        bad = rng.bernoulli("dirty:nonpos", dirty.get("non_positive", 0.0), rid)
        which = _which(rng, "dirty:nonpos:which", len(spec.positive), rid)
        zero = rng.bernoulli("dirty:nonpos:zero", 0.5, rid)
        for i, name in enumerate(spec.positive):
            negative = F.regexp_replace(line, f'(?<p>"{name}":"?)(?<v>[0-9])', "${p}-${v}")
            zeroed = F.regexp_replace(line, f'(?<p>"{name}":"?)[0-9.eE+]+', "${p}0")
            line = F.when(bad & (which == i), F.when(zero, zeroed).otherwise(negative)).otherwise(line)
    return line


def _csv_value_dirt(df: DataFrame, spec: SourceSpec, rng: Rng, dirty: dict[str, float]) -> DataFrame:
    rid = F.col("_rid")
    if spec.numeric:
        wrong = rng.bernoulli("dirty:type", dirty.get("wrong_type", 0.0), rid)
        which = _which(rng, "dirty:type:which", len(spec.numeric), rid)
        for i, name in enumerate(spec.numeric):
            df = df.withColumn(name, F.when(wrong & (which == i), F.lit("N/A")).otherwise(F.col(name)))
    if spec.positive:
        bad = rng.bernoulli("dirty:nonpos", dirty.get("non_positive", 0.0), rid)
        which = _which(rng, "dirty:nonpos:which", len(spec.positive), rid)
        zero = rng.bernoulli("dirty:nonpos:zero", 0.5, rid)
        for i, name in enumerate(spec.positive):
            value = F.when(zero, F.lit("0")).otherwise(F.concat(F.lit("-"), F.col(name)))
            df = df.withColumn(name, F.when(bad & (which == i), value).otherwise(F.col(name)))
    return df


def _garble(line: Column, rng: Rng, rid: Column) -> Column:
    """A truncated line (most often) or a line of garbage."""
    cut = F.greatest(F.lit(1), F.floor(F.length(line) * rng.uniform("dirty:cut", rid) * 0.9).cast("int"))
    garbage = F.element_at(F.array(*[F.lit(g) for g in GARBAGE_LINES]), _which(rng, "dirty:junk", 3, rid) + 1)
    return F.when(rng.bernoulli("dirty:junk?", 0.25, rid), garbage).otherwise(F.substring(line, 1, cut))


def to_lines(
    records: DataFrame,
    spec: SourceSpec,
    params: GeneratorParams,
    rng: Rng,
    drift_columns: Sequence[str] = (),
) -> DataFrame:
    """Serialise records (spec columns + drift columns + `_ts` epoch seconds + `_rid`) into dirty landing lines.

    A record lands in the file of its event date, or 1..late_max_days later when it is late; drift columns
    appear only in files dated on or after the drift date.
    """
    dirty = dict(params.dirty)
    rid = F.col("_rid")
    df = records.where((F.col("_ts") >= params.start_s) & (F.col("_ts") < params.end_s))
    df = _struct_level_dirt(df, spec, rng, dirty)
    late_days = F.when(
        rng.bernoulli("dirty:late", dirty.get("late", 0.0), rid),
        rng.randint("dirty:late:days", 1, int(dirty.get("late_max_days", 3)), rid),
    ).otherwise(F.lit(0))
    df = df.withColumn("_date", F.date_add(F.to_date(F.timestamp_seconds("_ts")), late_days.cast("int")))
    df = df.where(F.col("_date") <= F.lit(params.end))
    drifted = F.col("_date") >= F.lit(params.drift_date)
    base_cols = list(spec.columns)
    all_cols = base_cols + list(drift_columns)
    if spec.format == "jsonl":
        for name in drift_columns:
            df = df.withColumn(name, F.when(drifted, F.col(name)))
        line = F.to_json(F.struct(*all_cols), JSON_OPTIONS)
        df = df.withColumn("line", line).withColumn("line", _json_value_dirt(F.col("line"), spec, rng, dirty, rid))
    else:
        for name in all_cols:
            column = F.col(name)
            if dict(df.dtypes)[name] == "timestamp":
                column = F.date_format(column, CSV_TIMESTAMP)
            df = df.withColumn(name, column.cast("string"))
        df = _csv_value_dirt(df, spec, rng, dirty)
        with_drift = F.to_csv(F.struct(*all_cols))
        df = df.withColumn("line", F.when(drifted, with_drift).otherwise(F.to_csv(F.struct(*base_cols))))
    malformed = rng.bernoulli("dirty:malformed", dirty.get("malformed", 0.0), rid)
    df = df.withColumn("line", F.when(malformed, _garble(F.col("line"), rng, rid)).otherwise(F.col("line")))
    copies = F.when(
        rng.bernoulli("dirty:dup", dirty.get("duplicate", 0.0), rid), F.array(F.lit(0), F.lit(1))
    ).otherwise(F.array(F.lit(0)))
    return df.select(
        F.date_format("_date", "yyyy-MM-dd").alias("_date"),
        F.col("_ts").cast("long").alias("_k1"),
        rid.alias("_k2"),
        F.explode(copies).alias("_k3"),
        "line",
    )


@dataclass(frozen=True)
class LandingOutput:
    """The lines of one entity and how its files are laid out."""

    spec: SourceSpec
    lines: DataFrame
    drift_columns: Sequence[str] = ()

    @property
    def name(self) -> str:
        return f"{self.spec.domain}/{self.spec.entity}"

    def header(self, day: str, params: GeneratorParams) -> str:
        drifted = day >= params.drift_date.isoformat()
        return ",".join(list(self.spec.columns) + (list(self.drift_columns) if drifted else []))


def write_landing(
    spark: SparkSession, outputs: Sequence[LandingOutput], params: GeneratorParams, out_dir: str
) -> dict[str, dict[str, int]]:
    """Write every entity's lines as <out>/<domain>/<entity>/date=D/<entity>-D-NNN.<ext> in one Spark job.

    Files are chunks of at most max_lines_per_file lines, with stable names and a stable row order, so identical
    inputs give byte-identical files. Returns lines per entity and date.
    """
    tagged = [o.lines.select(F.lit(o.name).alias("_entity"), *LINES_SCHEMA_NO_PART) for o in outputs]
    lines = tagged[0]
    for more in tagged[1:]:
        lines = lines.unionByName(more)
    lines = lines.persist(StorageLevel.MEMORY_AND_DISK)
    counted = lines.groupBy("_entity", "_date").agg(F.count("*").alias("n")).collect()
    counts: dict[str, dict[str, int]] = {o.name: {} for o in outputs}
    for row in counted:
        counts[row["_entity"]][row["_date"]] = int(row["n"])
    parts = {(e, d): max(1, -(-n // params.max_lines_per_file)) for e, days in counts.items() for d, n in days.items()}
    if not parts:
        lines.unpersist()
        return counts
    part_map = F.create_map(*[x for (e, d), p in parts.items() for x in (F.lit(f"{e}|{d}"), F.lit(p))])
    n_parts = part_map[F.concat_ws("|", "_entity", "_date")]
    data = lines.withColumn("_part", F.pmod(F.xxhash64("_k2"), n_parts).cast("int"))
    headers = [
        (o.name, d, p, -1, "", 0, o.header(d, params))
        for o in outputs
        if o.spec.format == "csv"
        for d in counts[o.name]
        for p in range(parts[(o.name, d)])
    ]
    if headers:
        header_df = spark.createDataFrame(headers, f"_entity string, {LINES_DDL}")
        data = data.select("_entity", *LINES_SCHEMA).unionByName(header_df)
    tmp = f"{out_dir.rstrip('/')}/_tmp-{uuid.uuid4().hex}"
    keys = ["_entity", "_date", "_part"]
    (
        data.repartition(max(2, min(len(parts), 200)), *keys)
        .sortWithinPartitions(*keys, "_k1", "_k2", "_k3")
        .select(*keys, "line")
        .write.partitionBy(*keys)
        .option("lineSep", "\n")
        .text(tmp)
    )
    lines.unpersist()
    for o in outputs:
        ext = "jsonl" if o.spec.format == "jsonl" else "csv"
        entity_dir = f"{out_dir.rstrip('/')}/{o.name}"
        entity_tmp = f"{tmp}/_entity={o.name.replace('/', '%2F')}"
        for d in counts[o.name]:
            fs.delete(spark, f"{entity_dir}/date={d}")
            for p in range(parts[(o.name, d)]):
                written = [f for f in fs.list_files(spark, f"{entity_tmp}/_date={d}/_part={p}") if "part-" in f.path]
                assert len(written) == 1, f"expected one file for {o.name} {d} part {p}, got {written}"
                fs.move(spark, written[0].path, f"{entity_dir}/date={d}/{o.spec.entity}-{d}-{p:03d}.{ext}")
    fs.delete(spark, tmp)
    return counts
