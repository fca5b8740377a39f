"""Bronze ingestion: find landing files, skip the ones already ingested, append the rest as one Delta commit.

Idempotent by file: a file whose path and size are already in the table (at the snapshot the run planned from) is
skipped, and the append is tagged with Delta's (txnAppId, txnVersion) so a concurrent run that planned from the same
snapshot adds nothing. A run killed before its commit leaves the table as it was.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import reduce
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from marketlake import fs
from marketlake.bronze import (
    BRONZE_STATS_COLUMNS,
    LANDING_DATE,
    LANDING_DATE_PATTERN,
    STATS_COLUMNS_PROPERTY,
    bronze_schema,
    check_csv_header,
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
from marketlake.tables import (
    append_exactly_once,
    create_table_if_missing,
    current_version,
    read_delta,
    restore,
    table_exists,
    table_location,
)

if TYPE_CHECKING:
    from marketlake.privacy.suppress import Suppression

# Bronze is append-only and feeds silver incrementally through Delta's change data feed.
CHANGE_FEED = "delta.enableChangeDataFeed"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestReport:
    table: str
    files_found: int
    files_new: int
    lines_read: int = 0
    rows_written: int = 0
    unparseable: int = 0
    suppressed: int = 0  # rows about erased people, not written (marketlake.privacy.suppress)
    batch_id: str | None = None
    seconds: float = 0.0
    bad_lines: list[tuple[str, int | None, str]] = field(default_factory=list)


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


def already_ingested(
    spark: SparkSession, location: str, version: int, files: Sequence[fs.FileInfo]
) -> set[tuple[str, int]]:
    """(uri, size) of the files the table (at `version`) already holds rows from.

    A file counts as the same file when its path and size match; a landing file rewritten with other content
    under the same name is ingested again. When every file sits in a date=YYYY-MM-DD folder, only those
    landing-date partitions are read.
    """
    if version == 0:  # the empty table as created
        return set()
    table = read_delta(spark, location, version).where(F.col("_source_file").isin([f.uri for f in files]))
    dates = {_landing_date_of(f.path) for f in files}
    if None not in dates:
        table = table.where(F.col(LANDING_DATE).isin(sorted(dates)))
    return {(r[0], int(r[1])) for r in table.select("_source_file", "_source_size").distinct().collect()}


def _landing_date_of(path: str) -> str | None:
    match = re.search(LANDING_DATE_PATTERN, path)
    return match.group(1) if match else None


def csv_headers(
    spark: SparkSession, spec: SourceSpec, files: Sequence[fs.FileInfo], user_files: bool
) -> dict[str, list[str]]:
    """The header of every non-empty CSV file, keyed by URI; a header that cannot be used fails clearly."""
    headers = {}
    for f in files:
        if format_of(f.path) != "csv":
            continue
        first = fs.read_first_line(spark, f.path)
        if first is None:
            continue
        header = csv_header(first)
        check_csv_header(f.path, header)
        if user_files:
            check_user_header(f.path, header, spec)
        headers[f.uri] = header
    return headers


def parse_files(
    spark: SparkSession,
    spec: SourceSpec,
    files: Sequence[fs.FileInfo],
    headers: dict[str, list[str]],
    batch_id: str,
    landing_date: str | None,
) -> tuple[DataFrame, int]:
    """Bronze rows for the files, and the number of records they hold, counted independently by Spark's own
    line reader (text, minus one header line per CSV file) or Parquet reader."""
    by_format: dict[str, list[str]] = {}
    for f in files:
        by_format.setdefault(format_of(f.path) or "", []).append(f.path)
    frames: list[DataFrame] = []
    expected = 0
    for fmt, group in sorted(by_format.items()):
        if fmt == "parquet":
            parsed = parse_parquet(spark, group, spec)
            expected += spark.read.option("mergeSchema", "true").parquet(*group).count()
        else:
            lines = read_lines(spark, group)
            expected += spark.read.text(group).count()
            if fmt == "csv":
                group_uris = {f.uri for f in files if f.path in group}
                csv_files = {uri: h for uri, h in headers.items() if uri in group_uris}
                expected -= len(csv_files)
                parsed = parse_csv(lines, spec, csv_files)
            else:
                parsed = parse_jsonl(lines, spec)
        frames.append(with_bronze_metadata(parsed, spec, batch_id, fmt, landing_date))
    return reduce(DataFrame.unionByName, frames), expected


def ingest_files(
    spark: SparkSession,
    spec: SourceSpec,
    files: Sequence[fs.FileInfo],
    table: str,
    landing_date: str | None = None,
    user_files: bool = False,
    report_bad_lines: int = 5,
    suppression: Suppression | None = None,
) -> IngestReport:
    """Append the files the table does not hold yet as one commit; every record line becomes exactly one row
    (CSV header lines are not records), except the rows about people an erasure suppressed, which are counted.

    If the rows written and suppressed do not add up to the lines read, the commit is undone and the run fails.
    """
    started = time.perf_counter()
    exists = table_exists(spark, table)
    location = table_location(spark, table) if exists else None
    version = current_version(spark, location) if location else 0
    files = sorted(files, key=lambda f: f.path)
    known = already_ingested(spark, location, version, files) if location and files else set()
    new = [f for f in files if (f.uri, f.size) not in known]
    headers = csv_headers(spark, spec, new, user_files)  # unusable input fails before anything is written
    if location is None:  # every bronze table exists once ingestion ran, even while it has no files yet
        comment = f"bronze: {spec.domain}.{spec.entity} as landed, one row per source line"
        location = create_table_if_missing(
            spark,
            table,
            bronze_schema(spec),
            comment=comment,
            properties={CHANGE_FEED: "true", STATS_COLUMNS_PROPERTY: BRONZE_STATS_COLUMNS},
            cluster_by=[LANDING_DATE],
        )
        version = current_version(spark, location)
    if not new:
        return IngestReport(table, len(files), 0, seconds=time.perf_counter() - started)
    batch_id = hashlib.sha1("\n".join([table, *(f"{f.uri}:{f.size}" for f in new)]).encode()).hexdigest()[:16]
    rows, lines_read = parse_files(spark, spec, new, headers, batch_id, landing_date)
    stats = Observation(f"bronze_{uuid.uuid4().hex}")
    flag = suppression.flag(rows, spec.domain, spec.entity) if suppression else F.lit(False)
    rows = rows.withColumn("_suppressed", flag).observe(
        stats,
        F.count(F.lit(1)).alias("rows"),
        F.count("_parse_error").alias("unparseable"),
        F.count(F.when(F.col("_suppressed"), 1)).alias("suppressed"),
    )
    rows = rows.where(~F.col("_suppressed")).drop("_suppressed")
    written = append_exactly_once(rows, location, f"marketlake:{table}", version + 1, merge_schema=True)
    if written is None:
        return IngestReport(table, len(files), 0, batch_id=batch_id, seconds=time.perf_counter() - started)
    observed = stats.get
    suppressed = int(observed["suppressed"])
    if not lines_read == written + suppressed == int(observed["rows"]):
        restore(spark, location, version)
        raise RuntimeError(
            f"{table}: read {lines_read} lines but wrote {written} rows and suppressed {suppressed} (batch "
            f"{batch_id}); the commit was undone"
        )
    unparseable = int(observed["unparseable"])
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
    return IngestReport(
        table=table,
        files_found=len(files),
        files_new=len(new),
        lines_read=lines_read,
        rows_written=written,
        unparseable=unparseable,
        suppressed=suppressed,
        batch_id=batch_id,
        seconds=time.perf_counter() - started,
        bad_lines=bad,
    )


def ingest_many(
    spark: SparkSession,
    tasks: Sequence[tuple[SourceSpec, Sequence[fs.FileInfo]]],
    landing_date: str | None = None,
    user_files: bool = False,
    parallelism: int = 4,
    report_bad_lines: int = 5,
    suppression: Suppression | None = None,
) -> tuple[list[IngestReport], list[Exception]]:
    """Ingest several entities concurrently (Spark runs their jobs side by side).

    Returns the reports of the entities that succeeded (in task order) and the errors of those that failed;
    one entity's failure does not stop the others.
    """

    def one(task: tuple[SourceSpec, Sequence[fs.FileInfo]]) -> IngestReport:
        spec, files = task
        table = spec.bronze_table
        return ingest_files(spark, spec, files, table, landing_date, user_files, report_bad_lines, suppression)

    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        futures = [pool.submit(one, task) for task in tasks]
    reports, errors = [], []
    for future in futures:
        error = future.exception()
        if error is None:
            reports.append(future.result())
        else:
            errors.append(error)
    return reports, errors
