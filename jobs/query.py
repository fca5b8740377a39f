"""Run SQL statements against the marketlake catalog and print each result: through Spark (the default), or through
DuckDB over the Delta tables read by delta-rs (--engine duckdb: no JVM, an answer in about half a second; DuckDB's
SQL dialect; table names resolve through the catalogue manifest the jobs keep)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence

from marketlake.cli import base_parser, run
from marketlake.errors import InputError
from marketlake.formatting import format_rows

Answer = tuple[list[dict[str, object]], list[str], bool]


# Each engine imports its own stack: the duckdb path must not import pyspark (most of a second at start-up).
def spark_answers(args: argparse.Namespace, statements: Sequence[str]) -> Iterator[Answer]:
    from marketlake.config import load_settings
    from marketlake.report import collect_rows
    from marketlake.session import get_spark

    spark = get_spark(load_settings(args.conf_env), "marketlake-query", args.master)
    for statement in statements:
        yield collect_rows(spark.sql(statement), args.limit)


def duckdb_answers(args: argparse.Namespace, statements: Sequence[str]) -> Iterator[Answer]:
    from marketlake.lakeread import LakeSQL, open_catalogue

    with LakeSQL(open_catalogue(conf_env=args.conf_env)) as lake:
        for statement in statements:
            yield lake.query(statement, args.limit)


def main(args: argparse.Namespace) -> int:
    statements = [s for s in args.sql if s.strip()]
    if not statements:
        raise InputError('give a SQL statement, e.g. jobs/query.py "SELECT count(*) FROM bronze.exchange_trades"')
    if args.limit < 1:
        raise InputError("--limit must be at least 1")
    answers = duckdb_answers if args.engine == "duckdb" else spark_answers
    for rows, columns, more in answers(args, statements):
        if columns:
            print(format_rows(rows, columns, args.format), flush=True)
        if more:
            print(f"(showing the first {args.limit} rows; raise --limit for more)", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    p.add_argument("sql", nargs="+", help='statement(s), e.g. "SELECT * FROM bronze.exchange_trades LIMIT 10"')
    p.add_argument("--engine", choices=["spark", "duckdb"], default="spark", help="who answers (default: spark)")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--limit", type=int, default=1000, help="print at most this many rows (default 1000)")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser(), sql_errors_are_user_errors=True))
