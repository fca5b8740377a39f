"""Build silver tables from bronze: typed, conformed, deduplicated, quality-checked, with rejected rows quarantined
and every row accounted for. By default only bronze rows not yet processed are read; --start/--end reprocess
exactly the bronze rows that landed in that date range. A table whose bronze rows hold PII that conf does not declare
is not built (the others are), and the job fails naming it."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import uuid
from datetime import UTC, datetime

from pyspark.sql import SparkSession

from marketlake.cli import base_parser, run
from marketlake.config import load_settings, parse_date
from marketlake.errors import InputError
from marketlake.report import format_rows
from marketlake.runlog import record_silver_run, silver_watermarks
from marketlake.session import get_spark
from marketlake.silver.build import (
    BuildOptions,
    DomainBuilder,
    TableRun,
    build_domains,
    check_balanced,
    domain_dependencies,
)
from marketlake.silver.privacy import pii_key
from marketlake.silver.spec import load_all
from marketlake.tables import ensure_databases

log = logging.getLogger("marketlake.silver_build")


def summary_rows(runs: list[TableRun]) -> list[dict[str, object]]:
    return [
        {
            "table": f"silver.{r.table}",
            "rows_in": r.rows_in,
            "retried": r.retried,
            "silver": r.silver_rows,
            "inserted": r.inserted,
            "updated": r.updated,
            "unchanged": r.unchanged,
            "duplicates": r.duplicates,
            "quarantined": r.quarantined,
            "q_inserted": r.quarantine_inserted,
            "q_known": r.quarantine_known,
            "warned": r.warned,
            "balanced": "yes" if r.balanced else "NO",
            "seconds": r.seconds,
        }
        for r in runs
        if not (r.skipped or r.failed)
    ]


def main(args: argparse.Namespace) -> int:
    settings = load_settings(args.conf_env)
    overlays = {name: settings.overlay(name) for name in ("silver", "quality")}
    specs, rules = load_all(settings.conf_dir, settings.sources, overlays)
    domains = tuple(specs) if args.domain == "all" else (args.domain,)
    for d in domains:
        if d not in specs:
            raise InputError(f"unknown domain '{d}'; choose one of {', '.join(specs)} or all")
    if (args.start is None) != (args.end is None):
        raise InputError("give both --start and --end (or neither, to process what is new)")
    window = None
    if args.start:
        window = (parse_date(args.start, "--start"), parse_date(args.end, "--end"))
        if window[0] > window[1]:
            raise InputError(f"--start {window[0]} is after --end {window[1]}")
    key = pii_key(settings.privacy)
    spark = get_spark(settings, "marketlake-silver-build", args.master)
    ensure_databases(spark, settings)
    fx = {str(k): float(v) for k, v in (settings.silver.get("fx_usd_per_unit") or {}).items()}
    watermarks = silver_watermarks(spark)
    recording = threading.Lock()  # the run log's tables take one domain's rows at a time

    def build(session: SparkSession, domain: str) -> list[TableRun]:
        run_id, started = uuid.uuid4().hex[:12], datetime.now(UTC)
        options = BuildOptions(run_id, started, key, fx, *(window or (None, None)))
        runs = DomainBuilder(session, settings, domain, specs[domain], rules, options, watermarks).build()
        with recording:
            record_silver_run(session, run_id, started, domain, window, [r for r in runs if not r.failed])
        return runs

    parallelism = int(settings.silver.get("parallel_domains", 1))
    all_runs = build_domains(spark, domains, domain_dependencies(specs, rules, domains), build, parallelism)
    built = [r for r in all_runs if not r.skipped]
    if not built:
        raise InputError(
            f"no bronze tables for {', '.join(domains)}: run jobs/bronze_ingest.py for the domain(s) first"
        )
    rows = summary_rows(all_runs)
    print(
        "\nSilver run: rows in (+ retried) = silver (inserted + updated + unchanged + duplicates) + quarantined "
        "(q_inserted new + q_known already held), each side counted at its sink"
    )
    print(format_rows(rows, list(rows[0]) if rows else ["table"]))
    for r in all_runs:
        if r.skipped:
            print(f"skipped silver.{r.table}: {r.skipped}")
    check_balanced(all_runs)
    failed = [r.failed for r in all_runs if r.failed]
    if failed:
        raise InputError(" || ".join(failed))
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    p.add_argument("--domain", required=True, help="exchange, commerce, trends or all")
    p.add_argument("--start", default=None, help="reprocess bronze rows landed from this date (YYYY-MM-DD)")
    p.add_argument("--end", default=None, help="... up to and including this date")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
