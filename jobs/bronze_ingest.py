"""Append landing files (or your own exports) to bronze Delta tables, one table per source entity."""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from datetime import UTC, datetime

from marketlake.cli import base_parser, run
from marketlake.config import load_settings, parse_date
from marketlake.errors import InputError
from marketlake.ingest import ingest_many, landing_files, source_files
from marketlake.privacy.detection import warn_undeclared
from marketlake.privacy.suppress import load_suppression
from marketlake.runlog import record_bronze_run
from marketlake.session import get_spark
from marketlake.tables import ensure_databases

log = logging.getLogger("marketlake.bronze_ingest")


def main(args: argparse.Namespace) -> int:
    settings = load_settings(args.conf_env)
    domains = settings.domains() if args.domain == "all" else (args.domain,)
    specs = {d: settings.domain_sources(d) for d in domains}
    day = parse_date(args.date, "--date").isoformat() if args.date else None
    if args.source and len(domains) != 1:
        raise InputError("--source needs a single --domain")
    if args.entity and not any(args.entity in s for s in specs.values()):
        raise InputError(f"unknown entity '{args.entity}' for {', '.join(domains)}")
    spark = get_spark(settings, "marketlake-bronze-ingest", args.master)
    ensure_databases(spark, settings)
    run_id, started = uuid.uuid4().hex[:12], datetime.now(UTC)
    clock = time.perf_counter()
    tasks = []
    for domain in domains:
        if args.source:
            plan = source_files(spark, args.source, specs[domain], args.entity)
        else:
            landing = args.landing or str(settings.landing_dir)
            plan = {
                e: landing_files(spark, landing, s, day) for e, s in specs[domain].items() if args.entity in (None, e)
            }
        tasks.extend((specs[domain][entity], files) for entity, files in plan.items())
    reports, errors = ingest_many(
        spark,
        tasks,
        landing_date=day,
        user_files=bool(args.source),
        parallelism=int(settings.bronze.get("parallelism", 4)),
        report_bad_lines=int(settings.bronze.get("report_bad_lines", 5)),
        suppression=load_suppression(spark, settings),
    )
    for r in reports:
        log.info(
            "%-36s files %d new / %d found, lines read %d = rows written %d + suppressed %d, unparseable %d (%.1f s)",
            r.table,
            r.files_new,
            r.files_found,
            r.lines_read,
            r.rows_written,
            r.suppressed,
            r.unparseable,
            r.seconds,
        )
        for path, line_no, error in r.bad_lines:
            log.info("    unparseable: %s:%s (%s)", path, line_no, error)
    record_bronze_run(spark, run_id, started, reports)
    if args.source:
        warn_undeclared(spark, settings, reports)
    if errors:
        raise errors[0]
    elapsed = time.perf_counter() - clock
    lines = sum(r.lines_read for r in reports)
    log.info(
        "run %s: %d lines read, %d rows written, %d unparseable in %.1f s (%.0f rows/s)",
        run_id,
        lines,
        sum(r.rows_written for r in reports),
        sum(r.unparseable for r in reports),
        elapsed,
        lines / elapsed if elapsed else 0.0,
    )
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    p.add_argument("--domain", required=True, help="exchange, commerce, trends or all")
    p.add_argument("--date", default=None, help="only landing files of this date (YYYY-MM-DD)")
    p.add_argument("--source", default=None, help="ingest your own exports from this file or folder")
    p.add_argument("--entity", default=None, help="only this entity (with --source: the entity of every file)")
    p.add_argument("--landing", default=None, help="landing directory (default: <lakehouse>/landing)")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
