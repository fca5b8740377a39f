"""Retention: delete the rows older than their data class's period (conf privacy.retention), layer by layer (gold,
silver, quarantine, bronze, then the ops logs), and vacuum each table that lost rows. --dry-run lists what would go
and changes nothing; a table with nothing expired gets no commit, so a re-run writes nothing. Run it while no job
writes."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime

from marketlake.cli import base_parser, run
from marketlake.config import load_settings, parse_date
from marketlake.errors import InputError
from marketlake.formatting import format_rows
from marketlake.maintain import (
    check_retention,
    find_tables,
    read_maintenance,
    select_tables,
    vacuum_retention,
)
from marketlake.privacy.retention import expire_table, plan_retention, read_retention, report_rows
from marketlake.published import gold_partitions
from marketlake.runlog import silver_change_feed_readers
from marketlake.session import get_spark

log = logging.getLogger("marketlake.retention")


def main(args: argparse.Namespace) -> int:
    today = datetime.now(UTC).date()
    as_of = parse_date(args.as_of, "--as-of") if args.as_of else today
    if as_of > today and not (args.dry_run or args.allow_future):
        raise InputError(
            f"--as-of {as_of} is after today ({today}, UTC): a real run deletes only what has expired by now; "
            "preview a later date with --dry-run (or rehearse on a copy of the lakehouse with --allow-future)"
        )
    settings = load_settings(args.conf_env)
    conf = read_retention(settings)
    maintenance = read_maintenance(settings)
    hours = check_retention(maintenance.retention_hours if args.retention_hours is None else args.retention_hours)
    partitions = gold_partitions(settings)
    wanted = [t.strip() for t in (args.table or "").split(",") if t.strip()]
    spark = get_spark(settings, "marketlake-retention", args.master)
    found = find_tables(spark, {layer: str(settings.database_location(layer)) for layer in settings.databases})
    if not found:
        raise InputError(f"no Delta tables under {settings.lakehouse_root}: run the pipeline first")
    plans = plan_retention(conf, select_tables(found, wanted), as_of, partitions)
    readers = silver_change_feed_readers(spark, settings)
    with vacuum_retention(spark, hours):
        outcomes = [expire_table(spark, p, hours, args.dry_run, readers.get(p.ref.qualified)) for p in plans]
    rows = report_rows(outcomes, args.dry_run)
    title = "Retention dry run (nothing changed)" if args.dry_run else "Retention"
    print(
        f"\n{title} as of {as_of}: rows dated before the cutoff (as-of minus the class's period) go, the cutoff day "
        f"stays; tables that lost rows are vacuumed retaining {hours:g} h"
    )
    print(format_rows(rows, list(rows[0]), args.format))
    uncovered = [o.plan.ref.qualified for o in outcomes if o.plan.problem]
    if uncovered:
        log.warning("%d tables left alone, see their note: %s", len(uncovered), ", ".join(uncovered))
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    p.add_argument("--as-of", default=None, help="the day retention is computed for, YYYY-MM-DD (default: today, UTC)")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted; change nothing")
    p.add_argument("--table", default=None, help="comma-separated tables to limit the run to: silver.exchange_logins")
    p.add_argument(
        "--retention-hours", type=float, default=None, help="VACUUM retention (default: maintenance.retention_hours)"
    )
    p.add_argument(
        "--allow-future", action="store_true", help="allow a real run with --as-of after today (a lakehouse copy)"
    )
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
