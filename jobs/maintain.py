"""Table upkeep: compact each Delta table's small files (OPTIMIZE, Z-ordered by the columns in conf maintenance.zorder),
vacuum files older than the retention, and report live files and bytes before and after per table. A re-run with
nothing new commits nothing; --dry-run only reports what would be done. Run it while no job writes."""

from __future__ import annotations

import argparse
import logging
import sys

from marketlake.cli import base_parser, run
from marketlake.config import load_settings
from marketlake.errors import InputError
from marketlake.maintain import (
    check_retention,
    find_tables,
    maintain_table,
    read_maintenance,
    report_rows,
    select_tables,
    vacuum_retention,
)
from marketlake.report import format_rows
from marketlake.runlog import silver_change_feed_readers
from marketlake.session import get_spark

log = logging.getLogger("marketlake.maintain")


def main(args: argparse.Namespace) -> int:
    settings = load_settings(args.conf_env)
    conf = read_maintenance(settings)
    retention = check_retention(conf.retention_hours if args.retention_hours is None else args.retention_hours)
    if args.layer == "all":
        layers = settings.databases
    elif args.layer in settings.databases:
        layers = (args.layer,)
    else:
        raise InputError(f"unknown layer '{args.layer}'; choose one of {', '.join(settings.databases)} or all")
    wanted = [t.strip() for t in (args.tables or "").split(",") if t.strip()]
    spark = get_spark(settings, "marketlake-maintain", args.master)
    found = find_tables(spark, {layer: str(settings.database_location(layer)) for layer in layers})
    if not found:
        where = f"{settings.lakehouse_root} ({', '.join(layers)})"
        raise InputError(f"no Delta tables under {where}: run the pipeline first")
    tables = select_tables(found, wanted)
    readers = silver_change_feed_readers(spark, settings)
    results = []
    with vacuum_retention(spark, retention):
        for ref in tables:
            result = maintain_table(
                spark, ref, conf.zorder.get(ref.name, ()), retention, args.dry_run, readers.get(ref.qualified)
            )
            results.append(result)
    rows = report_rows(results, args.dry_run)
    for row in rows:
        log.info("%s", ", ".join(f"{k}={v}" for k, v in row.items()))
    title = "Dry run (nothing changed)" if args.dry_run else "Maintenance"
    print(f"\n{title}: OPTIMIZE, then VACUUM retaining {retention:g} h; files and bytes are the live (current) ones")
    print(format_rows(rows, list(rows[0])))
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    p.add_argument("--layer", default="all", help="bronze, silver, gold, quarantine, ops or all (default: all)")
    p.add_argument("--tables", default=None, help="comma-separated table names, e.g. exchange_trades,ops.silver_runs")
    p.add_argument("--dry-run", action="store_true", help="report what would be compacted and vacuumed; change nothing")
    p.add_argument(
        "--retention-hours", type=float, default=None, help="VACUUM retention (default: maintenance.retention_hours)"
    )
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
