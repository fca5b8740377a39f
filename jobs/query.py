"""Run SQL statements against the marketlake catalog and print each result."""

from __future__ import annotations

import argparse
import sys

from marketlake.cli import base_parser, run
from marketlake.config import load_settings
from marketlake.errors import InputError
from marketlake.report import collect_rows, format_rows
from marketlake.session import get_spark


def main(args: argparse.Namespace) -> int:
    statements = [s for s in args.sql if s.strip()]
    if not statements:
        raise InputError('give a SQL statement, e.g. jobs/query.py "SELECT count(*) FROM bronze.exchange_trades"')
    if args.limit < 1:
        raise InputError("--limit must be at least 1")
    settings = load_settings(args.conf_env)
    spark = get_spark(settings, "marketlake-query", args.master)
    for statement in statements:
        rows, columns, more = collect_rows(spark.sql(statement), args.limit)
        if columns:
            print(format_rows(rows, columns, args.format), flush=True)
        if more:
            print(f"(showing the first {args.limit} rows; raise --limit for more)", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    p.add_argument("sql", nargs="+", help='statement(s), e.g. "SELECT * FROM bronze.exchange_trades LIMIT 10"')
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--limit", type=int, default=1000, help="print at most this many rows (default 1000)")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser(), sql_errors_are_user_errors=True))
