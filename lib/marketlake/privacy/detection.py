"""PII detection over bronze: a bounded sample of a table's rows classified (marketlake.privacy.classify) and held
against the PII conf declares, so that silver refuses a table with undeclared PII and ingestion warns of it.

Declared PII of a bronze table (<domain>.<entity>) is
  - every source column of a conf/silver.yaml column marked `pii:` (hash | mask | ip),
  - the platform payload fields a conform step reads PII out of (silver.conform.PAYLOAD_PII: `payload`),
  - privacy.detection.declared in conf: `drop` (PII silver never stores; a column outside the contract is removed
    from the `_rescued_data` silver keeps) or `not_pii` (reviewed: not personal data, kept as it is).

The sample: the first `sample_rows` rows, plus `sample_rows` rows that carry `_rescued_data` (columns outside the
contract are often rare or late), collected in one small Spark job.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from marketlake.config import Settings, SourceSpec
from marketlake.errors import ConfigError, InputError
from marketlake.privacy.classify import DETECTORS, ColumnClass, classify_sample
from marketlake.silver.conform import PAYLOAD_PII
from marketlake.silver.spec import TableSpec, load_table_specs

if TYPE_CHECKING:
    from marketlake.ingest import IngestReport

log = logging.getLogger(__name__)

CONF_TREATMENTS = ("drop", "not_pii")
RESCUED = "_rescued_data"
SUMMARY_THREADS = 4


class UndeclaredPii(InputError):
    """A bronze table silver reads holds PII that conf does not declare; the silver table is not built."""


@dataclass(frozen=True)
class DetectionOptions:
    """privacy.detection in conf/base.yaml."""

    sample_rows: int = 500
    threshold: float = 0.5
    detectors: tuple[str, ...] = DETECTORS
    names: bool = True
    declared: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # <domain>.<entity> -> column -> how

    @classmethod
    def from_conf(cls, privacy: Mapping[str, Any], sources: Mapping[str, Mapping[str, SourceSpec]]) -> DetectionOptions:
        conf = privacy.get("detection") or {}
        where = "privacy.detection"
        try:
            sample_rows = int(conf.get("sample_rows", cls.sample_rows))
            threshold = float(conf.get("threshold", cls.threshold))
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: sample_rows must be a whole number and threshold a share") from None
        if sample_rows < 1 or not 0 < threshold <= 1:
            raise ConfigError(f"{where}: sample_rows must be at least 1 and threshold in (0, 1]")
        detectors = tuple(str(d) for d in conf.get("detectors", DETECTORS) or ())
        unknown = sorted(set(detectors) - set(DETECTORS))
        if unknown:
            raise ConfigError(f"{where}.detectors: unknown {unknown}; choose from {', '.join(DETECTORS)}")
        declared: dict[str, dict[str, str]] = {}
        for table, columns in (conf.get("declared") or {}).items():
            domain, _, entity = str(table).partition(".")
            if entity not in sources.get(domain, {}):
                raise ConfigError(f"{where}.declared: {table!r} is not a source (<domain>.<entity> in sources.yaml)")
            if not isinstance(columns, Mapping):
                raise ConfigError(f"{where}.declared.{table} must map columns to one of {', '.join(CONF_TREATMENTS)}")
            for column, treatment in columns.items():
                if treatment not in CONF_TREATMENTS:
                    raise ConfigError(
                        f"{where}.declared.{table}.{column} is {treatment!r}; use one of {', '.join(CONF_TREATMENTS)}"
                    )
            declared[str(table)] = {str(c): str(t) for c, t in columns.items()}
        return cls(sample_rows, threshold, detectors, bool(conf.get("names", True)), declared)


def declared_pii(specs: Iterable[TableSpec], options: DetectionOptions) -> dict[str, dict[str, str]]:
    """<domain>.<entity> -> column -> how it is handled, for every bronze column conf declares as PII (or not_pii).

    A column conf declares `drop` that a silver table stores in clear is a contradiction, refused here."""
    declared: dict[str, dict[str, str]] = {}
    stored: dict[tuple[str, str], str] = {}
    for spec in specs:
        for entity in spec.sources:
            table = f"{spec.domain}.{entity}"
            for c in spec.columns:
                if c.expr:
                    continue
                if c.pii:
                    declared.setdefault(table, {})[c.source or c.name] = c.pii
                else:
                    stored[(table, c.source or c.name)] = f"{spec.silver_table}.{c.name}"
            if spec.conform:
                for column in PAYLOAD_PII.get(entity, ()):
                    declared.setdefault(table, {})[column] = "payload"
    for table, columns in options.declared.items():
        for column, treatment in columns.items():
            if treatment == "drop" and (table, column) in stored:
                raise ConfigError(
                    f"privacy.detection.declared: {table}.{column} is declared drop, but conf/silver.yaml stores it "
                    f"in clear as {stored[(table, column)]}; give it a pii: treatment there instead"
                )
            declared.setdefault(table, {}).setdefault(column, treatment)
    return declared


@dataclass(frozen=True)
class Sample:
    """Sampled bronze values of one table: contract columns row by row, and `_rescued_data` objects."""

    columns: tuple[str, ...]
    rows: list[tuple[str | None, ...]]
    rescued: list[str]


def take_sample(df: DataFrame, columns: Mapping[str, str], n: int, rescued: bool = True) -> Sample:
    """Up to n rows of the contract columns (contract name -> the frame's column holding its bronze string) and,
    with `rescued`, up to n non-null `_rescued_data` values, in one collect."""
    names = tuple(columns)
    values = F.array(*[F.col(f"`{columns[c]}`").cast("string") for c in names]).cast("array<string>")
    first = df.select(F.lit(False).alias("rescued"), values.alias("values"), F.lit(None).cast("string").alias("extra"))
    parts = first.limit(n)
    if rescued:
        extra = df.where(F.col(RESCUED).isNotNull()).select(
            F.lit(True).alias("rescued"),
            F.lit(None).cast("array<string>").alias("values"),
            F.col(RESCUED).alias("extra"),
        )
        parts = parts.unionByName(extra.limit(n))
    rows = parts.collect()
    return Sample(
        names,
        [tuple(r["values"]) for r in rows if not r["rescued"]],
        [r["extra"] for r in rows if r["rescued"]],
    )


@dataclass(frozen=True)
class PiiPolicy:
    """Detection settings and the declared PII of every bronze table."""

    options: DetectionOptions
    declared: Mapping[str, Mapping[str, str]]

    def declared_for(self, source: SourceSpec) -> Mapping[str, str]:
        return self.declared.get(f"{source.domain}.{source.entity}", {})

    def classify(self, sample: Sample) -> list[ColumnClass]:
        o = self.options
        return classify_sample(sample.columns, sample.rows, sample.rescued, o.threshold, o.detectors, o.names)

    def classify_frame(
        self, df: DataFrame, source: SourceSpec, columns: Mapping[str, str] | None = None, rescued: bool = True
    ) -> list[ColumnClass]:
        """Classify a sample of bronze rows of `source` (by default its contract columns under their own names)."""
        sample = take_sample(df, columns or {c: c for c in source.columns}, self.options.sample_rows, rescued)
        return self.classify(sample)

    def undeclared(self, source: SourceSpec, classes: Iterable[ColumnClass]) -> list[ColumnClass]:
        declared = self.declared_for(source)
        return [c for c in classes if c.flagged and c.column not in declared]

    def hidden_keys(self, sources: Iterable[SourceSpec]) -> set[str]:
        """Declared PII columns outside these sources' contracts: keys silver removes from `_rescued_data`."""
        return {
            column
            for s in sources
            for column, how in self.declared_for(s).items()
            if how != "not_pii" and column not in s.columns
        }

    def side_by_side(self, source: SourceSpec, classes: Sequence[ColumnClass]) -> list[dict[str, object]]:
        """Summary rows: every column declared or detected, with both views and whether they agree."""
        declared = self.declared_for(source)
        found = {c.column: c for c in classes if c.flagged}
        known = {c.column: c for c in classes}
        order = [c.column for c in classes] + sorted(set(declared) - set(known))
        rows: list[dict[str, object]] = []
        for column in order:
            if column not in declared and column not in found:
                continue
            seen = known.get(column)
            rescued = seen.rescued if seen else column not in source.columns
            rows.append(
                {
                    "table": source.bronze_table,
                    "column": column,
                    "in": "rescued" if rescued else "contract",
                    "declared": declared.get(column, "-"),
                    "detected": found[column].detected() if column in found else "-",
                    "status": (
                        "UNDECLARED" if column not in declared else "ok" if column in found else "declared, not seen"
                    ),
                }
            )
        return rows


def pii_policy(
    privacy: Mapping[str, Any], sources: Mapping[str, Mapping[str, SourceSpec]], specs: Iterable[TableSpec]
) -> PiiPolicy:
    options = DetectionOptions.from_conf(privacy, sources)
    return PiiPolicy(options, declared_pii(specs, options))


def load_pii_policy(settings: Settings) -> PiiPolicy:
    """The policy for every domain: conf/silver.yaml (with the environment's overlay) read for its pii: columns."""
    specs = load_table_specs(settings.conf_dir, settings.sources, settings.overlay("silver"))
    return pii_policy(settings.privacy, settings.sources, [s for domain in specs.values() for s in domain])


def how_to_declare(source: SourceSpec, found: Sequence[ColumnClass]) -> str:
    """The fix, for these undeclared columns of one source."""
    listed = ", ".join(f"{c.column}: drop" for c in found)
    fix = (
        f"declare {'it' if len(found) == 1 else 'them'} in conf under privacy.detection.declared, as "
        f"{source.domain}.{source.entity}: {{{listed}}} (silver never stores it) or not_pii (reviewed: not personal "
        "data)"
    )
    if any(not c.rescued for c in found):
        fix += ", or give a contract column a pii: treatment in conf/silver.yaml"
    return fix


def describe(found: Sequence[ColumnClass]) -> str:
    """Each column with where it sits and what it looks like."""
    return ", ".join(
        f"{c.column} ({'outside the contract, in _rescued_data' if c.rescued else 'a contract column'}) looks like "
        f"{c.looks_like()}"
        for c in found
    )


def undeclared_message(silver_table: str, found: Sequence[tuple[SourceSpec, list[ColumnClass]]]) -> str:
    """One line: the silver table, each bronze table's undeclared PII columns with their evidence, and the fix."""
    parts = [
        f"{source.bronze_table} holds PII that conf does not declare: {describe(columns)}; "
        f"{how_to_declare(source, columns)}"
        for source, columns in found
    ]
    return f"{silver_table} not built, nothing of it written: {' | '.join(parts)}"


def without_keys(rescued: Column, keys: Collection[str]) -> Column:
    """A `_rescued_data` JSON object without these keys; null when nothing else is left."""
    kept = F.map_filter(F.from_json(rescued, "map<string,string>"), lambda k, _: ~k.isin(*sorted(keys)))
    return F.when(F.size(kept) > 0, F.to_json(kept))


def warn_undeclared(spark: SparkSession, settings: Settings, reports: Sequence[IngestReport]) -> None:
    """A warning per undeclared PII column in the batches just ingested (a user's exports): bronze keeps them as
    they came, silver will refuse their tables until conf declares them."""
    batches = [r for r in reports if r.batch_id and r.rows_written]
    if not batches:
        return
    policy = load_pii_policy(settings)
    sources = {s.bronze_table: s for domain in settings.sources.values() for s in domain.values()}
    for report in batches:
        source = sources[report.table]
        batch = spark.table(report.table).where(F.col("_batch_id") == report.batch_id)
        for c in policy.undeclared(source, policy.classify_frame(batch, source)):
            log.warning(
                "%s: %s, not declared as PII: silver will not build from this table until it is; %s",
                report.table,
                describe([c]),
                how_to_declare(source, [c]),
            )


def pii_summary(spark: SparkSession, settings: Settings, database: str = "bronze") -> list[dict[str, object]]:
    """Declared vs detected PII for every bronze table that exists, each classified from a fresh sample."""
    if not spark.catalog.databaseExists(database):
        return []
    policy = load_pii_policy(settings)
    sources = {f"{s.domain}_{s.entity}": s for domain in settings.sources.values() for s in domain.values()}
    present = {t.name for t in spark.catalog.listTables(database) if not t.isTemporary}
    tables = [sources[name] for name in sorted(present & set(sources))]

    def one(source: SourceSpec) -> list[dict[str, object]]:
        return policy.side_by_side(
            source, policy.classify_frame(spark.table(f"{database}.{source.domain}_{source.entity}"), source)
        )

    with ThreadPoolExecutor(max_workers=SUMMARY_THREADS) as pool:
        return [row for rows in pool.map(one, tables) for row in rows]
