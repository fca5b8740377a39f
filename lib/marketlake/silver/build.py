"""Build a domain's silver tables from bronze: read what is new (or a landing-date range), conform, check the
data-quality rules, quarantine what fails, deduplicate and MERGE the rest (latest event wins), and account for
every row.

Per table and run, the balance adds counts each measured on its own: rows read from bronze (+ retried) = rows the
silver MERGE took as source + duplicates (accepted rows minus their distinct keys) + rows the quarantine MERGE
inserted + failed rows the quarantine already held (a replay). A row lost between the check and the writes
unbalances it, and the job fails.

Before anything of a table is written, a sample of the bronze rows it read is classified for PII: a column that looks
like PII and that conf does not declare fails that table alone, with nothing of it written and its watermark left
where it was (marketlake.privacy.detection); declared PII outside the contract is removed from the stored
`_rescued_data`.

Incremental runs read bronze through Delta's change data feed from the version after the table's watermark;
watermarks move only after every table of the domain is written, so a killed run is simply re-run (MERGE and the
quarantine's insert-if-new make re-processing change nothing).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from marketlake.bronze import STATS_COLUMNS_PROPERTY
from marketlake.config import Settings, SourceSpec
from marketlake.errors import InputError
from marketlake.privacy.detection import UndeclaredPii, pii_policy, undeclared_message, without_keys
from marketlake.quality import (
    QUARANTINE_COLUMN,
    WARNINGS_COLUMN,
    QualityContext,
    Rule,
    split_quarantine,
    with_quality,
)
from marketlake.session import checkpoint
from marketlake.silver import conform
from marketlake.silver.privacy import protected_name
from marketlake.silver.spec import PARSE_RULE, TableSpec
from marketlake.silver.transforms import latest_per_key
from marketlake.tables import (
    create_table,
    current_version,
    delta_table,
    in_dates,
    insert_new,
    is_delta_table,
    merge_latest,
    overwrite_counted,
    read_delta,
)

log = logging.getLogger(__name__)

QUARANTINE_KEY = ("source_table", "_batch_id", "_source_file", "_line_no")
# Statistics for every column but the raw record (see bronze.BRONZE_STATS_COLUMNS: Delta's log keeps them).
QUARANTINE_PROPERTIES = {
    STATS_COLUMNS_PROPERTY: "run_id,silver_table,source_table,_batch_id,_landing_date,_source_file,_line_no,"
    "quarantined_at,resolved_run_id,resolved_at"
}
QUARANTINE_SCHEMA = (
    "run_id string, silver_table string, source_table string, _batch_id string, _landing_date date, "
    "_source_file string, _line_no long, record string, failed_rules array<string>, warnings array<string>, "
    "quarantined_at timestamp, resolved_run_id string, resolved_at timestamp"
)
STORED_LINEAGE = ("_source_entity", "_batch_id", "_landing_date", "_source_file", "_line_no", "_rescued_data")
PAYLOAD_CONFORM: Mapping[str, Callable[[DataFrame, SourceSpec], DataFrame]] = {
    "orders_shopify": conform.shopify_orders,
    "orders_amazon": conform.amazon_orders,
}


@dataclass
class TableRun:
    """What one run did to one silver table."""

    table: str
    rows_in: int = 0
    retried: int = 0
    quarantined: int = 0
    warned: int = 0
    duplicates: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    merge_source_rows: int = 0
    quarantine_inserted: int = 0
    quarantine_known: int = 0
    skipped: str | None = None
    failed: str | None = None  # why nothing of the table was written (undeclared PII in its bronze rows)
    seconds: float = 0.0
    drift: dict[str, int] = field(default_factory=dict)
    bronze_versions: dict[str, int] = field(default_factory=dict)
    rule_counts: list[tuple[str, str, int]] = field(default_factory=list)
    quarantine_dates: list[date] = field(default_factory=list)
    touched_dates: list[date | None] = field(default_factory=list)

    @property
    def silver_rows(self) -> int:
        return self.merge_source_rows + self.duplicates

    @property
    def balanced(self) -> bool:
        """Rows read = what each sink took, every figure measured on its own (none derived from another)."""
        sinks = self.merge_source_rows + self.duplicates + self.quarantine_inserted + self.quarantine_known
        return self.rows_in + self.retried == sinks


class UnbalancedRun(RuntimeError):
    """Rows read and rows written do not add up: a row was lost or counted twice between the check and a write."""


def check_balanced(runs: Sequence[TableRun]) -> None:
    """Fail the run when any table's accounting does not balance."""
    unbalanced = [r for r in runs if not r.balanced]
    if unbalanced:
        detail = "; ".join(
            f"{r.table}: read {r.rows_in + r.retried} != silver source {r.merge_source_rows} + duplicates "
            f"{r.duplicates} + quarantine inserted {r.quarantine_inserted} + already quarantined {r.quarantine_known}"
            for r in unbalanced
        )
        raise UnbalancedRun(f"row accounting does not balance ({detail}); see ops.silver_runs")


@dataclass(frozen=True)
class BuildOptions:
    run_id: str
    now: datetime
    pii_key: bytes
    fx_usd: Mapping[str, float]
    start: date | None = None
    end: date | None = None

    @property
    def incremental(self) -> bool:
        return self.start is None


def conform_table(
    spec: TableSpec,
    sources: Mapping[str, SourceSpec],
    inputs: Mapping[str, DataFrame],
    products: DataFrame | None,
    options: BuildOptions,
) -> DataFrame:
    """Bronze rows of each source entity -> the table's conformed rows (platform orders need the products, by SKU)."""
    if spec.conform == "platform_orders":
        payloads = [PAYLOAD_CONFORM[e](df, sources[e]) for e, df in inputs.items()]
        return conform.standard_orders(payloads, products, options.fx_usd, options.pii_key)
    ((entity, df),) = inputs.items()
    return df.transform(conform.conform_columns(sources[entity], spec.columns, options.pii_key))


def check(
    spec: TableSpec, rules: Sequence[Rule], now: datetime, context: QualityContext
) -> Callable[[DataFrame], DataFrame]:
    """The table's rules on conformed rows; an unreadable line fails only `record_parseable`, not every field."""

    def _(rows: DataFrame) -> DataFrame:
        checked = rows.transform(with_quality(rules, now, spec.key, context))
        unparseable = F.array(F.lit(PARSE_RULE.name))
        failures = F.when(F.col("_parseable").isNull(), unparseable).otherwise(F.col(QUARANTINE_COLUMN))
        return checked.withColumns({QUARANTINE_COLUMN: failures, "silver_table": F.lit(spec.table)})

    return _


class _Context:
    """Quality context of one table: silver tables by location, and the table's own stored rows."""

    def __init__(self, builder: DomainBuilder, spec: TableSpec) -> None:
        self.builder, self.spec = builder, spec

    def reference_keys(self, table: str, key: str) -> DataFrame | None:
        return self.builder.silver(table, [key])

    def existing(self, columns: Sequence[str]) -> DataFrame | None:
        return self.builder.silver(self.spec.table, columns)


class DomainBuilder:
    """Builds the silver tables of one domain, in spec order, for one run."""

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        domain: str,
        specs: Sequence[TableSpec],
        rules: Mapping[str, tuple[Rule, ...]],
        options: BuildOptions,
        watermarks: Mapping[tuple[str, str], int],
    ) -> None:
        self.spark, self.settings, self.domain = spark, settings, domain
        self.specs, self.rules, self.options = specs, rules, options
        self.watermarks = watermarks
        self.sources = settings.domain_sources(domain)
        self.pii = pii_policy(settings.privacy, settings.sources, specs)
        self.accepted: dict[str, DataFrame] = {}
        self.changed: dict[str, bool] = {}
        self.touched: dict[str, list[date | None]] = {}
        self._waiting: dict[tuple[str, str], list[tuple[tuple[str, ...], date]]] | None = None

    # ---- locations -------------------------------------------------------------------------------------------
    def path(self, database: str, table: str) -> str:
        return str(self.settings.database_location(database) / table)

    def is_table(self, path: str) -> bool:
        return is_delta_table(self.spark, path)

    def silver(self, table: str, columns: Sequence[str]) -> DataFrame | None:
        """These columns of silver.<table> (PII columns by their protected name), or None if it does not exist."""
        path = self.path("silver", table)
        if not self.is_table(path):
            return None
        df = read_delta(self.spark, path)
        return df.select(*columns) if all(c in df.columns for c in columns) else None

    # ---- reading bronze --------------------------------------------------------------------------------------
    def bronze(self, spec: TableSpec, entity: str) -> tuple[DataFrame, int]:
        """The bronze rows this run processes for one source entity, and the bronze version they were read at."""
        table = f"{self.domain}_{entity}"
        path = self.path("bronze", table)
        if not self.is_table(path):
            raise InputError(
                f"bronze.{table} does not exist: run jobs/bronze_ingest.py --domain {self.domain} before silver"
            )
        version = current_version(self.spark, path)
        o = self.options
        if not o.incremental:
            assert o.start is not None and o.end is not None
            dates = F.col("_landing_date").between(o.start.isoformat(), o.end.isoformat())
            return read_delta(self.spark, path, version).where(dates), version
        done = self.watermarks.get((spec.table, f"bronze.{table}"), -1)
        if done < 0:
            return read_delta(self.spark, path, version), version
        if done >= version:
            return read_delta(self.spark, path, version).limit(0), version
        changes = (
            self.spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", done + 1)
            .option("endingVersion", version)
            .load(path)
        )
        meta = ["_change_type", "_commit_version", "_commit_timestamp"]
        inserted = changes.where("_change_type = 'insert'").drop(*meta)
        removed = changes.where("_change_type = 'delete'").select(*QUARANTINE_KEY[1:])
        # bronze only appends, except a RESTORE that undid a failed ingest: its removals cancel those rows
        return inserted.join(removed, list(QUARANTINE_KEY[1:]), "left_anti"), version

    def waiting(self, path: str) -> dict[tuple[str, str], list[tuple[tuple[str, ...], date]]]:
        """Unresolved quarantined rows of the domain, as (silver table, bronze table) -> (failed rules, landing
        date) pairs, read once per run: rows a table of this run quarantines are never its own retries."""
        if self._waiting is None:
            held = (
                read_delta(self.spark, path)
                .where(F.col("resolved_run_id").isNull())
                .select("silver_table", "source_table", F.array_sort("failed_rules").alias("rules"), "_landing_date")
                .distinct()
                .collect()
            )
            self._waiting = {}
            for r in held:
                pair = (r["silver_table"], r["source_table"])
                self._waiting.setdefault(pair, []).append((tuple(r["rules"]), r["_landing_date"]))
        return self._waiting

    def retries(self, spec: TableSpec, rules: Sequence[Rule], entity: str, fresh: DataFrame) -> DataFrame | None:
        """Bronze rows of `entity` quarantined earlier only for unknown references (a parent that had not arrived
        yet), to check again now; rows this run reads anyway are left out."""
        references = [r for r in rules if r.kind == "references"]
        names = [r.name for r in references]
        path = self.path("quarantine", self.domain)
        if not names or not self.is_table(path):
            return None
        ours = {s.table for s in self.specs}
        parents = {str(r.params["table"]) for r in references}
        if not any(self.changed.get(p, False) or p not in ours for p in parents):
            return None  # no parent got new rows in this run: what failed before fails again
        source = f"bronze.{self.domain}_{entity}"
        dates = sorted(
            {
                day
                for rules_failed, day in self.waiting(path).get((spec.table, source), [])
                if set(rules_failed) <= set(names)
            }
        )
        if not dates:
            return None
        listed = ", ".join(f"'{n}'" for n in names)
        waiting = (
            read_delta(self.spark, path)
            .where(
                (F.col("silver_table") == spec.table)
                & (F.col("source_table") == source)
                & F.col("resolved_run_id").isNull()
                & F.expr(f"forall(failed_rules, r -> r IN ({listed}))")
                & F.col("_landing_date").isin(dates)
            )
            .select(*QUARANTINE_KEY[1:], "_landing_date")
        )
        keys = list(QUARANTINE_KEY[1:])
        bronze = read_delta(self.spark, self.path("bronze", f"{self.domain}_{entity}"))
        again = bronze.where(F.col("_landing_date").isin(dates)).join(waiting.drop("_landing_date"), keys, "left_semi")
        return again.join(fresh.select(*keys), keys, "left_anti")

    # ---- conform ---------------------------------------------------------------------------------------------
    def conformed(self, spec: TableSpec, inputs: Mapping[str, DataFrame]) -> DataFrame:
        products = self.silver("commerce_products", ["sku", "product_id"]) if spec.conform else None
        return conform_table(spec, self.sources, inputs, products, self.options)

    def stored_columns(self, spec: TableSpec, df: DataFrame) -> list[Column]:
        """What silver keeps: the table's columns (raw PII replaced by its protected form), event date, warnings,
        lineage and drifted columns (without those declared PII), and the run that wrote the row."""
        pii = conform.ORDER_PII if spec.conform else {c.name: c.pii for c in spec.columns if c.pii}
        protected = {protected_name(c, t) for c, t in pii.items()}
        internal = {
            *STORED_LINEAGE,
            "_raw_record",
            "_parseable",
            "_retry",
            "silver_table",
            QUARANTINE_COLUMN,
            WARNINGS_COLUMN,
        }
        own = [
            c
            for c in df.columns
            if c not in pii and c not in protected and c not in internal and not c.startswith("_raw_")
        ]
        out: list[Column] = [F.col(c) for c in own] + [F.col(c) for c in sorted(protected)]
        if spec.event_date:
            out.append(F.to_date(spec.event_date).alias("event_date"))
        hidden = self.pii.hidden_keys(self.sources[e] for e in spec.sources)
        lineage = {c: F.col(c) for c in STORED_LINEAGE}
        if hidden:
            lineage["_rescued_data"] = without_keys(F.col("_rescued_data"), hidden).alias("_rescued_data")
        out += [F.col(WARNINGS_COLUMN).alias("_dq_warnings"), *lineage.values()]
        out.append(F.lit(self.options.run_id).alias("_run_id"))
        return out

    # ---- writing ---------------------------------------------------------------------------------------------
    def ensure(
        self,
        database: str,
        table: str,
        schema: StructType,
        partition: bool,
        comment: str,
        properties: dict[str, str] | None = None,
    ) -> str:
        path = self.path(database, table)
        if not self.is_table(path):
            partitions = ["event_date"] if partition else []
            create_table(self.spark, f"{database}.{table}", schema, partitions, comment, properties)
        return path

    def quarantine(self, failed: DataFrame, run: TableRun) -> None:
        """Insert newly failed rows; a row quarantined before (a replay, or a retry that fails again) is not added
        again but counted as already held."""
        schema = self.spark.createDataFrame([], QUARANTINE_SCHEMA).schema
        comment = f"quarantine: rejected {self.domain} records"
        path = self.ensure("quarantine", self.domain, schema, False, comment, QUARANTINE_PROPERTIES)
        o = self.options
        now = F.lit(o.now).cast("timestamp")
        rows = failed.select(
            F.lit(o.run_id).alias("run_id"),
            "silver_table",
            F.concat(F.lit(f"bronze.{self.domain}_"), F.col("_source_entity")).alias("source_table"),
            "_batch_id",
            "_landing_date",
            "_source_file",
            "_line_no",
            F.col("_raw_record").alias("record"),
            F.col(QUARANTINE_COLUMN).alias("failed_rules"),
            F.col(WARNINGS_COLUMN).alias("warnings"),
            now.alias("quarantined_at"),
            F.lit(None).cast("string").alias("resolved_run_id"),
            F.lit(None).cast("timestamp").alias("resolved_at"),
        )
        # a bronze row keeps its landing date, so only quarantine files holding the batch's dates can hold it
        # (Delta skips the others by their min/max statistics)
        dates = run.quarantine_dates
        held = read_delta(self.spark, path).where(F.expr(in_dates("_landing_date", dates))).select(*QUARANTINE_KEY)
        run.quarantine_known = rows.join(held, list(QUARANTINE_KEY), "left_semi").count()
        run.quarantine_inserted = insert_new(rows, path, QUARANTINE_KEY, in_dates("t._landing_date", dates))

    def resolve(self, resolved: DataFrame) -> None:
        """Mark quarantined rows that a retry now accepts as resolved by this run."""
        path = self.path("quarantine", self.domain)
        o = self.options
        fixed = resolved.select(
            F.concat(F.lit(f"bronze.{self.domain}_"), F.col("_source_entity")).alias("source_table"),
            "_batch_id",
            "_source_file",
            "_line_no",
        )
        on = " AND ".join(f"t.{k} = s.{k}" for k in QUARANTINE_KEY)
        (
            delta_table(self.spark, path)
            .alias("t")
            .merge(fixed.alias("s"), on)
            .whenMatchedUpdate(
                condition="t.resolved_run_id IS NULL",
                set={"resolved_run_id": F.lit(o.run_id), "resolved_at": F.lit(o.now).cast("timestamp")},
            )
            .execute()
        )

    def upsert(self, spec: TableSpec, rows: DataFrame, run: TableRun) -> DataFrame:
        """Deduplicate (latest per key) and MERGE into the silver table; returns the deduplicated rows."""
        latest = rows.transform(latest_per_key(spec.key, spec.event_time)).persist(StorageLevel.MEMORY_AND_DISK)
        existed = self.is_table(self.path("silver", spec.table))
        path = self.ensure(
            "silver", spec.table, latest.schema, bool(spec.event_date), f"silver: {spec.domain}.{spec.name}"
        )
        prune = None
        if spec.event_date:
            # The MERGE reads only the partitions it can change: the batch's event dates and those where its keys
            # are stored (a later version may carry another date); finding them reads two narrow columns.
            dates = latest.select("event_date")
            if existed:  # a table created just now holds no key yet
                stored = read_delta(self.spark, path).alias("t")
                on = [F.col(f"t.`{k}`").eqNullSafe(F.col(f"s.`{k}`")) for k in spec.key]
                dates = dates.union(
                    stored.join(latest.select(*spec.key).alias("s"), on, "left_semi").select("event_date")
                )
            run.touched_dates = [r[0] for r in dates.distinct().collect()]
            prune = in_dates("t.event_date", run.touched_dates)
        result = merge_latest(latest, path, spec.key, spec.event_time, prune)
        run.merge_source_rows = result.source_rows
        run.inserted, run.updated, run.unchanged = result.inserted, result.updated, result.unchanged
        return latest

    # ---- one table -------------------------------------------------------------------------------------------
    def build_table(self, spec: TableSpec) -> TableRun:
        clock = time.perf_counter()
        run = TableRun(spec.table)
        if spec.rebuild:
            self.rebuild(spec, run)
        elif spec.derived:
            self.derive(spec, run)
        else:
            self.load(spec, run)
        run.seconds = round(time.perf_counter() - clock, 2)
        return run

    def load(self, spec: TableSpec, run: TableRun) -> None:
        rules = self.rules[spec.table]
        inputs: dict[str, DataFrame] = {}
        present = [e for e in spec.sources if self.is_table(self.path("bronze", f"{self.domain}_{e}"))]
        if not present:
            names = ", ".join(f"bronze.{self.domain}_{e}" for e in spec.sources)
            run.skipped = f"no source: {names} does not exist (ingest it with jobs/bronze_ingest.py)"
            return
        for entity in present:
            fresh, version = self.bronze(spec, entity)
            run.bronze_versions[f"bronze.{self.domain}_{entity}"] = version
            retry = self.retries(spec, rules, entity, fresh)
            frame = fresh.withColumn("_retry", F.lit(False))
            if retry is not None:
                frame = frame.unionByName(retry.withColumn("_retry", F.lit(True)))
            inputs[entity] = frame
        rows = self.conformed(spec, inputs)
        # a table fed by several sources (platform orders) with only some present: the absent ones' fields are
        # null, so the presence rules written for every source still resolve
        absent = {f"_raw_{f}" for e in spec.sources for f in self.sources[e].required} - set(rows.columns)
        rows = rows.withColumns({c: F.lit(None).cast("string") for c in sorted(absent)}) if absent else rows
        # Checkpointed, not cached: writing the quarantine or silver tables it read would drop a cache, and a
        # recomputation would see the new state (a released row no longer waiting, a key already stored).
        checked = checkpoint(rows.transform(check(spec, rules, self.options.now, _Context(self, spec))))
        self.count(checked, spec, rules, run)
        accepted, failed = split_quarantine(checked)
        if run.rows_in + run.retried == 0:
            # Nothing new; the table still exists (empty if nothing ever came), so gold can read every source.
            stored = accepted.select(*self.stored_columns(spec, accepted)).schema
            self.ensure("silver", spec.table, stored, bool(spec.event_date), f"silver: {spec.domain}.{spec.name}")
            return
        self.check_pii(spec, present, checked, run)
        if run.quarantined:
            self.quarantine(failed, run)
        if run.retried:
            self.resolve(accepted.where(F.col("_retry")))
        latest = self.upsert(spec, accepted.select(*self.stored_columns(spec, accepted)), run)
        if any(s.derived == spec.name and not s.rebuild for s in self.specs):
            self.accepted[spec.name] = latest  # unpersisted by derive()
        else:
            latest.unpersist()

    def check_pii(self, spec: TableSpec, entities: Sequence[str], checked: DataFrame, run: TableRun) -> None:
        """Classify a sample of the bronze rows this run read (each source's contract columns, and its rescued ones
        when there are any); PII that conf does not declare fails the table before anything of it is written."""
        found = []
        for entity in entities:
            source = self.sources[entity]
            rows = checked if len(entities) == 1 else checked.where(F.col("_source_entity") == entity)
            raw = {c: f"_raw_{c}" for c in source.columns}
            undeclared = self.pii.undeclared(source, self.pii.classify_frame(rows, source, raw, bool(run.drift)))
            if undeclared:
                found.append((source, undeclared))
        if found:
            raise UndeclaredPii(undeclared_message(spec.silver_table, found))

    def count(self, checked: DataFrame, spec: TableSpec, rules: Sequence[Rule], run: TableRun) -> None:
        """Rows in, retried, quarantined, warned, duplicates (accepted rows minus their distinct keys) and per-rule
        failures in one pass; drifted columns (if any) in another."""
        failed = F.size(QUARANTINE_COLUMN) > 0
        accepted_key = F.when(~failed, F.struct(*[F.col(k) for k in spec.key]))
        per_rule = [
            F.sum(
                F.array_contains(QUARANTINE_COLUMN if r.severity == "quarantine" else WARNINGS_COLUMN, r.name).cast(
                    "long"
                )
            )
            for r in rules
        ]
        totals = checked.agg(
            F.sum((~F.col("_retry")).cast("long")),
            F.sum(F.col("_retry").cast("long")),
            F.sum(failed.cast("long")),
            F.sum((~failed & (F.size(WARNINGS_COLUMN) > 0)).cast("long")),
            F.count("_rescued_data"),
            F.count(accepted_key) - F.count_distinct(accepted_key),
            F.collect_set(F.when(failed, F.col("_landing_date"))),
            *per_rule,
        ).first()
        assert totals is not None
        values = [int(v or 0) for v in totals[:6]] + [int(v or 0) for v in totals[7:]]
        run.rows_in, run.retried, run.quarantined, run.warned, drifting, run.duplicates = values[:6]
        run.quarantine_dates = sorted(totals[6])
        run.rule_counts = [(r.name, r.severity, n) for r, n in zip(rules, values[6:], strict=True)]
        if not drifting:
            return
        drifted = (
            checked.where(F.col("_rescued_data").isNotNull())
            .select(F.explode(F.map_keys(F.from_json("_rescued_data", "map<string,string>"))).alias("column"))
            .groupBy("column")
            .count()
            .collect()
        )
        run.drift = {r["column"]: int(r["count"]) for r in drifted}

    def derive(self, spec: TableSpec, run: TableRun) -> None:
        """Order lines of the orders written in this run (an order's latest version wins, so do its lines)."""
        orders = self.accepted.pop(str(spec.derived), None)
        if orders is None:
            if not self.is_table(self.path("silver", spec.table)) and not self.is_table(
                self.path("silver", f"{self.domain}_{spec.derived}")
            ):
                run.skipped = f"its parent silver.{self.domain}_{spec.derived} was not built"
            return
        lines = conform.order_lines(orders).select(
            "*",
            *([F.to_date(spec.event_date).alias("event_date")] if spec.event_date else []),
            F.lit(self.options.run_id).alias("_run_id"),
        )
        keys = F.struct(*[F.col(k) for k in spec.key])
        totals = lines.agg(F.count(F.lit(1)), F.count(keys) - F.count_distinct(keys)).first()
        run.rows_in, run.duplicates = (int(v or 0) for v in totals) if totals else (0, 0)
        self.upsert(spec, lines, run).unpersist()
        orders.unpersist()

    def rebuild(self, spec: TableSpec, run: TableRun) -> None:
        """Trend signals, whenever the telemetry changed: the days from the earliest one this run changed are
        recomputed and replaced (caps, peaks and per-creator baselines of a day depend only on days up to it);
        built whole the first time."""
        path, source = self.path("silver", spec.table), self.path("silver", f"{self.domain}_{spec.derived}")
        if not self.is_table(source):
            run.skipped = f"its source silver.{self.domain}_{spec.derived} was not built"
            return
        parent = f"{self.domain}_{spec.derived}"
        if self.is_table(path) and not self.changed.get(parent, False):
            return
        telemetry = read_delta(self.spark, source)
        touched = self.touched.get(parent, [])
        if self.is_table(path) and touched and None not in touched:
            # only the days from the earliest one this run changed: nothing earlier depends on later telemetry
            since = min(d for d in touched if d is not None)
            signals = conform.trend_signals_since(telemetry, read_delta(self.spark, path), since)
            run.rows_in = telemetry.where(F.col("event_date") >= F.lit(since)).count()
            replace = f"event_date >= DATE'{since.isoformat()}'"
        else:
            signals, replace = conform.trend_signals(telemetry), None
            run.rows_in = telemetry.count()
        signals = signals.withColumn("_run_id", F.lit(self.options.run_id))
        written = overwrite_counted(signals, path, spec.silver_table, ["event_date"], replace)
        run.inserted = written
        run.merge_source_rows = written

    def build(self) -> list[TableRun]:
        runs = []
        for spec in self.specs:
            try:
                run = self.build_table(spec)
            except UndeclaredPii as exc:
                run = TableRun(spec.table, failed=str(exc))
            self.changed[spec.table] = bool(run.inserted or run.updated)
            self.touched[spec.table] = run.touched_dates
            if run.failed:
                log.error(
                    "%s not built: undeclared PII in its bronze rows (the job's error line names it)", spec.silver_table
                )
                runs.append(run)
                continue
            if run.skipped:
                log.warning("%s skipped: %s", spec.silver_table, run.skipped)
                runs.append(run)
                continue
            log.info(
                "%-34s in %d (+%d retried) = silver %d (new %d, updated %d, unchanged %d, duplicates %d) "
                "+ quarantined %d; warned %d (%.1f s)%s",
                spec.silver_table,
                run.rows_in,
                run.retried,
                run.silver_rows,
                run.inserted,
                run.updated,
                run.unchanged,
                run.duplicates,
                run.quarantined,
                run.warned,
                run.seconds,
                "" if run.balanced else "  UNBALANCED",
            )
            for column, n in sorted(run.drift.items()):
                log.warning(
                    "%s: %d rows carry column %r, not in the source contract (kept in _rescued_data)",
                    spec.silver_table,
                    n,
                    column,
                )
            runs.append(run)
        return runs


def domain_dependencies(
    specs: Mapping[str, Sequence[TableSpec]], rules: Mapping[str, Sequence[Rule]], domains: Sequence[str]
) -> dict[str, set[str]]:
    """The domains each of `domains` must wait for: those owning a table its reference rules look up (trend
    telemetry checks its products against commerce)."""
    owner = {s.table: d for d, domain_specs in specs.items() for s in domain_specs}
    needs: dict[str, set[str]] = {}
    for d in domains:
        parents = {str(r.params["table"]) for s in specs[d] for r in rules.get(s.table, ()) if r.kind == "references"}
        needs[d] = {owner[p] for p in parents if p in owner} & set(domains) - {d}
    return needs


def build_domains(
    spark: SparkSession,
    domains: Sequence[str],
    dependencies: Mapping[str, set[str]],
    build: Callable[[SparkSession, str], list[TableRun]],
    parallelism: int = 1,
) -> list[TableRun]:
    """Build each domain with `build(session, domain)`, independent domains side by side (each in a session of
    its own, so their Delta commit tags never mix), a domain only after the domains it depends on; returns the
    runs in the order of `domains`. A domain whose dependency failed is not started."""
    if parallelism <= 1 or len(domains) == 1:
        return [run for d in domains for run in build(spark, d)]
    futures: dict[str, Future[list[TableRun]]] = {}
    slots = threading.Semaphore(parallelism)

    def one(domain: str) -> list[TableRun]:
        for parent in dependencies.get(domain, ()):
            futures[parent].result()
        with slots:
            return build(spark.newSession(), domain)

    ordered: list[str] = []
    while len(ordered) < len(domains):  # parents first, so a domain's dependencies are submitted before it
        ready = [d for d in domains if d not in ordered and dependencies.get(d, set()) <= set(ordered)]
        if not ready:
            raise ValueError(f"silver domains depend on each other in a cycle: {dict(dependencies)}")
        ordered += ready
    with ThreadPoolExecutor(max_workers=len(domains), thread_name_prefix="silver") as pool:
        for domain in ordered:
            futures[domain] = pool.submit(one, domain)
        return [run for d in domains for run in futures[d].result()]
