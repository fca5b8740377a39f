"""Bronze ingestion: find landing files, skip the ones already ingested, append the rest as one Delta commit.

Idempotent by file: a file whose path is already in the table (at the snapshot the run planned from) is skipped,
and the append is tagged with Delta's (txnAppId, txnVersion) so a concurrent run that planned from the same
snapshot adds nothing. A run killed before its commit leaves the table as it was.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from marketlake import fs
from marketlake.bronze import (
    PARTITION_COLUMN,
    bronze_schema,
    check_user_header,
    csv_header,
    format_of,
    parse_csv,
    parse_jsonl,
    parse_parquet,
    read_lines,
    with_bronze_metadata,
)
from marketlake.config import SourceSpec
from marketlake.errors import InputError
from marketlake.tables import append_exactly_once, create_table_if_missing, current_version, read_delta

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestReport:
    table: str
    files_found: int
    files_new: int
    lines_read: int = 0
    rows_written: int = 0
    unparseable: int = 0
    batch_id: str | None = None
    seconds: float = 0.0
    bad_lines: list[tuple[str, int | None, str]] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return self.lines_read == self.rows_written


def landing_files(spark: SparkSession, landing_dir: str, spec: SourceSpec, day: str | None = None) -> list[fs.FileInfo]:
    """Landing files of one entity (optionally one landing date) in a readable format."""
    root = f"{str(landing_dir).rstrip('/')}/{spec.domain}/{spec.entity}"
    if day:
        root = f"{root}/date={day}"
    return [f for f in fs.list_files(spark, root) if format_of(f.path)]


def source_files(
    spark: SparkSession, source: str, specs: Mapping[str, SourceSpec], entity: str | None = None
) -> dict[str, list[fs.FileInfo]]:
    """A user's exports: with --entity, every file under `source`; else children named <entity>.<ext> or
    <entity>/ (files below)."""
    if not fs.exists(spark, source):
        raise InputError(f"--source {source} does not exist")
    if entity is not None:
        if entity not in specs:
            raise InputError(f"unknown entity '{entity}'; known: {', '.join(specs)}")
        files = [f for f in fs.list_files(spark, source) if format_of(f.path)]
        if not files:
            raise InputError(f"--source {source} holds no .csv, .jsonl/.json or .parquet file")
        return {entity: files}
    found: dict[str, list[fs.FileInfo]] = {}
    root = fs.qualify(spark, source).rstrip("/")
    for f in fs.list_files(spark, source):
        if not format_of(f.path):
            continue
        first = f.path[len(root) + 1 :].split("/")[0]
        name = first.split(".")[0]
        if name not in specs:
            raise InputError(
                f"{f.path}: cannot tell which entity this is; name files or folders after one of "
                f"{', '.join(specs)} (or pass --entity)"
            )
        found.setdefault(name, []).append(f)
    if not found:
        raise InputError(f"--source {source} holds no .csv, .jsonl/.json or .parquet file")
    return found


def already_ingested(spark: SparkSession, location: str, version: int, paths: Sequence[str]) -> set[str]:
    """Which of the paths the table (at `version`) already holds rows from."""
    if version == 0:  # the empty table as created
        return set()
    known = (
        read_delta(spark, location, version)
        .where(F.col("_source_file").isin(list(paths)))
        .select("_source_file")
        .distinct()
        .collect()
    )
    return {r[0] for r in known}


def parse_files(
    spark: SparkSession,
    spec: SourceSpec,
    paths: Sequence[str],
    batch_id: str,
    landing_date: str | None,
    user_files: bool,
) -> tuple[DataFrame, int]:
    """Bronze rows for the files, and the number of records the files hold (counted independently)."""
    by_format: dict[str, list[str]] = {}
    for path in paths:
        by_format.setdefault(format_of(path) or "", []).append(path)
    frames: list[DataFrame] = []
    expected = 0
    for fmt, group in sorted(by_format.items()):
        if fmt == "parquet":
            parsed = parse_parquet(spark, group, spec)
            expected += spark.read.parquet(*group).count()
        else:
            lines = read_lines(spark, group)
            expected += spark.read.text(group).count()
            if fmt == "csv":
                headers = {}
                for path in group:
                    first = fs.read_first_line(spark, path)
                    if first is None:
                        continue
                    header = csv_header(first)
                    if user_files:
                        check_user_header(path, header, spec)
                    headers[path] = header
                    expected -= 1
                parsed = parse_csv(lines, spec, headers)
            else:
                parsed = parse_jsonl(lines, spec)
        frames.append(with_bronze_metadata(parsed, spec, batch_id, fmt, landing_date))
    combined = frames[0]
    for frame in frames[1:]:
        combined = combined.unionByName(frame)
    return combined, expected


def ingest_files(
    spark: SparkSession,
    spec: SourceSpec,
    files: Sequence[fs.FileInfo],
    table: str,
    landing_date: str | None = None,
    user_files: bool = False,
    report_bad_lines: int = 10,
) -> IngestReport:
    """Append the not-yet-ingested files to the bronze table; every line becomes exactly one row."""
    started = time.perf_counter()
    location = create_table_if_missing(
        spark,
        table,
        bronze_schema(spec),
        [PARTITION_COLUMN],
        f"bronze: {spec.domain}.{spec.entity} as landed, one row per source line",
    )
    version = current_version(spark, location)
    paths = sorted(f.path for f in files)
    new = [p for p in paths if p not in already_ingested(spark, location, version, paths)] if paths else []
    if not new:
        return IngestReport(table, len(paths), 0, seconds=time.perf_counter() - started)
    batch_id = hashlib.sha1("\n".join([table, *new]).encode()).hexdigest()[:16]
    rows, lines_read = parse_files(spark, spec, new, batch_id, landing_date, user_files)
    stats = Observation(f"bronze_{uuid.uuid4().hex}")
    rows = rows.observe(stats, F.count(F.lit(1)).alias("rows"), F.count("_parse_error").alias("unparseable"))
    written = append_exactly_once(rows, location, app_id=f"marketlake:{table}", version=version + 1)
    if written == 0:
        return IngestReport(table, len(paths), 0, batch_id=batch_id, seconds=time.perf_counter() - started)
    unparseable = int(stats.get["unparseable"])
    bad: list[tuple[str, int | None, str]] = []
    if unparseable and report_bad_lines:
        sample = (
            read_delta(spark, location)
            .where((F.col("_batch_id") == batch_id) & F.col("_parse_error").isNotNull())
            .select("_source_file", "_line_no", "_parse_error")
            .orderBy("_source_file", "_line_no")
            .limit(report_bad_lines)
        )
        bad = [(r["_source_file"], r["_line_no"], r["_parse_error"]) for r in sample.collect()]
    report = IngestReport(
        table=table,
        files_found=len(paths),
        files_new=len(new),
        lines_read=lines_read,
        rows_written=written,
        unparseable=unparseable,
        batch_id=batch_id,
        seconds=time.perf_counter() - started,
        bad_lines=bad,
    )
    if not report.balanced:
        raise RuntimeError(f"{table}: read {lines_read} lines but wrote {written} rows (batch {batch_id})")
    return report


def ingest_many(
    spark: SparkSession,
    tasks: Sequence[tuple[SourceSpec, Sequence[fs.FileInfo]]],
    landing_date: str | None = None,
    user_files: bool = False,
    parallelism: int = 4,
    report_bad_lines: int = 5,
) -> list[IngestReport]:
    """Ingest several entities concurrently (Spark runs their jobs side by side); reports in task order."""

    def one(task: tuple[SourceSpec, Sequence[fs.FileInfo]]) -> IngestReport:
        spec, files = task
        return ingest_files(spark, spec, files, spec.bronze_table, landing_date, user_files, report_bad_lines)

    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        return list(pool.map(one, tasks))
