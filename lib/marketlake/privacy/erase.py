"""Erasure (the right to be forgotten): a person's rows deleted from every table of every layer, their identifiers
added to a suppression list that bronze ingestion consults, every request recorded in an audit table that holds
keyed hashes only, and a purge step that makes the deletion final.

Order: the suppression list first (a concurrent ingestion then keeps them out), then gold, silver, quarantine and
bronze last, one DELETE per table for all the people of the run. A run killed midway has deleted some tables' rows
and not others: running it again resolves the people from the bronze rows that are left and finishes. Deleted rows
stay in the files older versions read until `purge` vacuums them (privacy.erasure.purge_retention_hours).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
from operator import or_

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from marketlake.config import Settings
from marketlake.errors import ConfigError
from marketlake.maintain import (
    DELTA_DEFAULT_RETENTION_HOURS,
    TableRef,
    vacuum_retention,
    vacuum_table,
)
from marketlake.privacy.subjects import (
    IDENTIFIERS,
    PERSONAL_LAYERS,
    Identity,
    Request,
    Subject,
    conditions_by_table,
    identifier_exprs,
    layer_order,
    layer_tables,
    resolve,
    subject_hash,
    suppression_hash,
)
from marketlake.privacy.suppress import SUPPRESSION, SUPPRESSION_SCHEMA
from marketlake.runlog import silver_change_feed_readers
from marketlake.tables import (
    create_table_if_missing,
    current_version,
    delete_rows_unnamed,
    delta_table,
    insert_new,
    read_delta,
)

log = logging.getLogger(__name__)

AUDIT = "ops.erasure_audit"
AUDIT_SCHEMA = StructType(
    [
        StructField("erasure_id", StringType(), False),
        StructField("event", StringType(), False),  # erase | purge
        StructField("outcome", StringType(), False),  # erased | not_found | purged | held
        StructField("subject_hash", StringType(), True),  # keyed hash of the request's kind and value
        StructField("request_kind", StringType(), True),
        StructField("requested_by", StringType(), True),
        StructField("ticket", StringType(), True),
        StructField("erased_at", TimestampType(), False),
        StructField("rows_removed", LongType(), False),
        StructField(
            "tables",
            ArrayType(
                StructType(
                    [
                        StructField("table", StringType(), True),  # Delta refuses NOT NULL inside arrays
                        StructField("rows_removed", LongType(), True),
                        StructField("version", LongType(), True),
                        StructField("files_removed", LongType(), True),
                    ]
                )
            ),
            False,
        ),
        StructField("purge_retention_hours", DoubleType(), True),
    ]
)
DELETION_VECTORS = "delta.enableDeletionVectors"


def purge_retention_hours(privacy: Mapping[str, object]) -> float:
    erasure = privacy.get("erasure") or {}
    value = erasure.get("purge_retention_hours", DELTA_DEFAULT_RETENTION_HOURS) if isinstance(erasure, Mapping) else 0
    try:
        hours = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        hours = -1.0
    if hours < 0:
        raise ConfigError(f"privacy.erasure.purge_retention_hours must be a number of hours >= 0, not {value!r}")
    return hours


def suppression_values(identity: Identity) -> set[str]:
    """The values whose keyed hashes keep a person out of bronze: every identifier, and each order reference also
    without its platform (as a raw line carries it)."""
    return {*(v for k in IDENTIFIERS for v in identity.get(k)), *identity.tokens()}


@dataclass
class TableErasure:
    table: str
    path: str
    condition: Column  # any of the run's people
    rows: list[int]  # per subject
    total: int
    version: int | None = None
    deleted: int | None = None


@dataclass
class Outcome:
    subject: Subject
    outcome: str  # erased | already_erased | not_found
    subject_hash: str
    tables: list[tuple[str, int, int | None]] = field(default_factory=list)  # (table, rows, version)

    @property
    def rows(self) -> int:
        return sum(r for _, r, _ in self.tables)


@dataclass
class Plan:
    subjects: list[Subject]
    tables: dict[str, TableRef]
    conditions: dict[str, tuple[TableRef, list[Column | None]]]
    counts: dict[str, TableErasure]


def audit_path(spark: SparkSession) -> str:
    return create_table_if_missing(spark, AUDIT, AUDIT_SCHEMA, comment="ops: erasure requests and purges (no PII)")


def suppression_path(spark: SparkSession) -> str:
    comment = "ops: keyed hashes of erased people's identifiers, kept out of bronze"
    return create_table_if_missing(spark, SUPPRESSION, SUPPRESSION_SCHEMA, comment=comment)


def suppressed_hashes(spark: SparkSession) -> frozenset[str]:
    return frozenset(r[0] for r in read_delta(spark, suppression_path(spark)).select("value_hash").collect())


def plan_erasure(spark: SparkSession, settings: Settings, requests: Sequence[Request], key: bytes) -> Plan:
    """Who the requests name, and how many rows of each table hold each of them."""
    locations = {layer: str(settings.database_location(layer)) for layer in PERSONAL_LAYERS}
    tables = layer_tables(spark, locations)
    exprs = identifier_exprs(settings.privacy)
    subjects = resolve(spark, tables, exprs, requests)
    conditions = conditions_by_table(spark, tables, subjects, key, exprs, settings.domains())
    counts = {}
    for name, (ref, per_subject) in sorted(conditions.items(), key=lambda kv: layer_order(kv[0])):
        anyone = reduce(or_, [c for c in per_subject if c is not None])
        sums = [F.sum(F.when(c, 1).otherwise(0)) if c is not None else F.lit(0) for c in per_subject]
        row = read_delta(spark, ref.path).agg(F.sum(F.when(anyone, 1).otherwise(0)), *sums).first()
        assert row is not None
        total = int(row[0] or 0)
        if total:
            counts[name] = TableErasure(name, ref.path, anyone, [int(v or 0) for v in row[1:]], total)
    return Plan(subjects, tables, conditions, counts)


def outcomes(plan: Plan, key: bytes, suppressed: frozenset[str]) -> list[Outcome]:
    out = []
    for i, subject in enumerate(plan.subjects):
        hashed = subject_hash(key, subject.request)
        tables = [(t.table, t.rows[i], t.version) for t in plan.counts.values() if t.rows[i]]
        # Erased before, whether asked for by this identifier or found through another (an email, then its id).
        known = hashed in suppressed or suppression_hash(key, subject.request.value) in suppressed
        outcome = "erased" if tables else "already_erased" if known else "not_found"
        out.append(Outcome(subject, outcome, hashed, tables))
    return out


def erase(
    spark: SparkSession, plan: Plan, key: bytes, requested_by: str, ticket: str | None
) -> tuple[str, list[Outcome]]:
    """Suppress, delete, record. A person already erased (nothing left, their request's hash suppressed) writes
    nothing at all; a person not found gets an audit row saying so."""
    erasure_id, now = uuid.uuid4().hex[:16], datetime.now(UTC)
    audit = audit_path(spark)  # both ops tables exist before anything is deleted
    suppressed = suppressed_hashes(spark)
    results = outcomes(plan, key, suppressed)
    hashes = set()
    for result in results:
        if result.outcome == "erased":
            hashes.add(result.subject_hash)
            for identity in result.subject.identities.values():
                hashes |= {suppression_hash(key, v) for v in suppression_values(identity)}
    new = sorted(hashes - suppressed)
    if new:
        rows = spark.createDataFrame([(h, erasure_id, now) for h in new], SUPPRESSION_SCHEMA)
        insert_new(rows, suppression_path(spark), ["value_hash"])
    for table in plan.counts.values():
        commit = delete_rows_unnamed(spark, table.path, table.condition)
        table.version = commit.version if commit else current_version(spark, table.path)
        table.deleted = commit.deleted if commit else 0
        if table.deleted != table.total:
            log.warning("%s: %d rows counted, %d deleted", table.table, table.total, table.deleted)
        if delta_table(spark, table.path).detail().first()["properties"].get(DELETION_VECTORS) == "true":
            spark.sql(f"REORG TABLE delta.`{table.path}` APPLY (PURGE)")  # rewrite files without the deleted rows
            table.version = current_version(spark, table.path)
        log.info("%s: %d rows deleted (version %d)", table.table, table.deleted, table.version)
    results = outcomes(plan, key, suppressed)  # with the versions written
    records = [
        (
            erasure_id,
            "erase",
            r.outcome,
            r.subject_hash,
            r.subject.request.kind,
            requested_by,
            ticket,
            now,
            r.rows,
            [(t, rows, version, None) for t, rows, version in r.tables],
            None,
        )
        for r in results
        if r.outcome != "already_erased"
    ]
    if records:
        spark.createDataFrame(records, AUDIT_SCHEMA).write.format("delta").mode("append").save(audit)
    return erasure_id, results


@dataclass
class PurgeResult:
    table: str
    files: int
    held: str | None


@dataclass
class PurgeReport:
    results: list[PurgeResult]
    erasures: int  # erasures this purge covered
    not_final: list[float]  # of those, the ones newer than the retention: epoch seconds they become final at


def purge(spark: SparkSession, settings: Settings, hours: float, requested_by: str, ticket: str | None) -> PurgeReport:
    """Make erasures final: every table an erasure deleted from since the last complete purge gets its deletion
    vectors purged (where it has them) and a VACUUM retaining `hours`, so that no version older than that can be read
    (time travel, change feed). An erasure newer than `hours` is final only at a purge `hours` after it: it stays
    pending, and the next purge takes its tables again. A bronze table whose change feed silver has not read past
    the erasure yet is held back (silver would lose the commit it still has to read): run silver_build.py, then
    purge again."""
    audit = audit_path(spark)
    started = datetime.now(UTC)
    records = (
        read_delta(spark, audit)
        .select(
            "event",
            "outcome",
            F.col("erased_at").cast("double").alias("at"),
            "purge_retention_hours",
            F.col("tables.table").alias("names"),
        )
        .collect()
    )
    done = [r.at - 3600 * r.purge_retention_hours for r in records if (r.event, r.outcome) == ("purge", "purged")]
    since = max(done, default=float("-inf"))
    pending = [r for r in records if (r.event, r.outcome) == ("erase", "erased") and r.at > since]
    names = sorted({n for r in pending for n in r.names}, key=layer_order)
    locations = {layer: str(settings.database_location(layer)) for layer in PERSONAL_LAYERS}
    tables = layer_tables(spark, locations)
    readers = silver_change_feed_readers(spark, settings)
    results = []
    with vacuum_retention(spark, hours):
        for name in names:
            ref = tables.get(name)
            if ref is None:  # dropped since
                continue
            properties = delta_table(spark, ref.path).detail().first()["properties"]
            if properties.get(DELETION_VECTORS) == "true":
                spark.sql(f"REORG TABLE delta.`{ref.path}` APPLY (PURGE)")
            vacuum = vacuum_table(spark, ref, properties, hours, readers.get(name))
            results.append(PurgeResult(name, vacuum.files if vacuum.vacuumed else 0, vacuum.held))
    cutoff = started.timestamp() - 3600 * hours
    report = PurgeReport(results, len(pending), sorted(r.at + 3600 * hours for r in pending if r.at > cutoff))
    record = (
        uuid.uuid4().hex[:16],
        "purge",
        "held" if any(r.held for r in results) else "purged",
        None,
        None,
        requested_by,
        ticket,
        started,
        0,
        [(r.table, None, None, r.files) for r in results],
        hours,
    )
    spark.createDataFrame([record], AUDIT_SCHEMA).write.format("delta").mode("append").save(audit)
    return report
