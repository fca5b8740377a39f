"""Generate every domain's landing files: build clean records, add dirt, write export files."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from marketlake.config import SourceSpec
from marketlake.generator import commerce, exchange
from marketlake.generator import trends as trend_gen
from marketlake.generator.emit import LandingOutput, to_lines, write_landing
from marketlake.generator.params import GeneratorParams
from marketlake.generator.rand import Rng

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EntityResult:
    domain: str
    entity: str
    lines: int
    files_days: int


def build_records(
    spark: SparkSession, params: GeneratorParams, domains: Sequence[str]
) -> dict[str, dict[str, DataFrame]]:
    """Clean records per domain and entity (lazy DataFrames)."""
    rng = Rng(params.seed)
    n_products = params.count("commerce_products")
    trends = trend_gen.product_trends(spark, params, rng, n_products).persist()
    records: dict[str, dict[str, DataFrame]] = {}
    if "exchange" in domains:
        records["exchange"] = exchange.generate(spark, params)
    if "commerce" in domains:
        records["commerce"] = commerce.generate(spark, params, trends)
    if "trends" in domains:
        records["trends"] = {"trend_telemetry": trend_gen.telemetry(params, rng, trends)}
    return records


DRIFT_COLUMNS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "exchange": exchange.DRIFT_COLUMNS,
    "commerce": commerce.DRIFT_COLUMNS,
}


def generate_landing(
    spark: SparkSession,
    sources: Mapping[str, Mapping[str, SourceSpec]],
    params: GeneratorParams,
    out_dir: str,
    domains: Sequence[str],
) -> list[EntityResult]:
    """Write landing files for the given domains under out_dir; returns per-entity line counts."""
    rng = Rng(params.seed)
    outputs = []
    for domain, entities in build_records(spark, params, domains).items():
        for entity, records in entities.items():
            spec = sources[domain][entity]
            drift = DRIFT_COLUMNS.get(domain, {}).get(entity, ())
            outputs.append(LandingOutput(spec, to_lines(records, spec, params, rng, drift), drift))
    counts = write_landing(spark, outputs, params, out_dir)
    results = []
    for o in outputs:
        days = counts[o.name]
        results.append(EntityResult(o.spec.domain, o.spec.entity, sum(days.values()), len(days)))
        log.info("generated %s.%s: %d lines over %d days", o.spec.domain, o.spec.entity, results[-1].lines, len(days))
    return results
