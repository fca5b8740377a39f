"""Build gold tables for one day (--date) or a date range (--start/--end): each table's partitions in the range
are replaced atomically and no others; a re-run that would write the same rows commits nothing."""

from __future__ import annotations

import argparse
import sys

from marketlake.cli import add_date_range, base_parser, date_range_args, run
from marketlake.config import load_settings
from marketlake.errors import InputError
from marketlake.gold.build import MissingInput, build_table, check_range
from marketlake.gold.spec import load_gold
from marketlake.report import format_rows
from marketlake.session import get_spark
from marketlake.tables import ensure_databases


def main(args: argparse.Namespace) -> int:
    start, end = date_range_args(args)
    check_range(start, end)
    settings = load_settings(args.conf_env)
    conf = load_gold(settings.conf_dir, settings.overlay("gold"))
    specs = conf.select(args.tables)
    spark = get_spark(settings, "marketlake-gold-build", args.master)
    ensure_databases(spark, settings)
    runs, missing = [], []
    for spec in specs:
        try:
            runs.append(build_table(spark, settings, conf, spec, start, end))
        except MissingInput as exc:  # build every table whose inputs exist; name the others
            missing.append(str(exc))
    rows = [
        {
            "table": r.table,
            "partitions": f"{r.first}..{r.last}",
            "rows": r.rows,
            "commit": f"v{r.version}" if r.written else "unchanged",
            "seconds": round(r.seconds, 1),
        }
        for r in runs
    ]
    print(f"\nGold build {start}..{end}")
    print(format_rows(rows, ["table", "partitions", "rows", "commit", "seconds"]))
    for reason in missing:
        print(f"not built: {reason}")
    if missing and (not runs or args.tables.strip() != "all"):
        raise InputError(f"{len(missing)} of {len(specs)} gold tables could not be built: {missing[0]}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    p.add_argument("--tables", default="all", help="comma-separated gold tables (default: all)")
    add_date_range(p, "build")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
