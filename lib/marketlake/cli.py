"""Shared plumbing for the thin job entry points: logging, common arguments, one-line user errors."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date

from marketlake.catalogue import refresh_catalogue
from marketlake.config import parse_date
from marketlake.errors import InputError, MarketlakeError, first_line
from marketlake.runtime import drop_checkpoints, pin_utc, take_handed_out

log = logging.getLogger("marketlake")


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,  # under spark-submit, pyspark has already configured the root logger
    )
    for noisy in ("py4j", "XGBoost-PySpark", "mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pyspark logs every analysis error as a multi-kilobyte JSON record; the job reports errors itself.
    for name in ("DataFrameQueryContextLogger", "SQLQueryContextLogger"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--conf-env", default=None, help="config environment: conf/<env>.yaml (default: local)")
    parser.add_argument("--master", default=None, help="Spark master (default: from config)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def add_date_range(parser: argparse.ArgumentParser, verb: str) -> None:
    """--date for one day, or --start/--end for an inclusive range."""
    parser.add_argument("--date", default=None, help=f"{verb} this day (YYYY-MM-DD)")
    parser.add_argument("--start", default=None, help="first day of a range")
    parser.add_argument("--end", default=None, help="last day of the range (inclusive)")


def date_range_args(args: argparse.Namespace) -> tuple[date, date]:
    """(start, end) from --date or --start/--end, with one clear error for a wrong combination or a bad date."""
    if args.date and (args.start or args.end):
        raise InputError("give either --date or --start/--end, not both")
    if args.date:
        day = parse_date(args.date, "--date")
        return day, day
    if args.start and args.end:
        return parse_date(args.start, "--start"), parse_date(args.end, "--end")
    raise InputError("give --date YYYY-MM-DD, or --start and --end for a range")


def run(
    main: Callable[[argparse.Namespace], int | None],
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
    sql_errors_are_user_errors: bool = False,
    catalogue: bool = True,
) -> int:
    """Parse args, run main, and turn a user error into one clear line and exit code 2.

    With sql_errors_are_user_errors (jobs that run a user's SQL), Spark analysis and parse errors count too. When
    main ends, the catalogue manifest of the lakehouse a session was opened on is rewritten, unless catalogue is
    False: a job that never opens the metastore (generate.py writes landing files) would boot it just to list it.
    """
    pin_utc()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    started = time.perf_counter()
    take_handed_out()  # sessions handed out before this job are not its own
    try:
        code = main(args) or 0
    except MarketlakeError as exc:
        _job_ended(catalogue)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        _job_ended(catalogue)
        user_error = _user_error_from_spark(exc) if sql_errors_are_user_errors else None
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        return 2
    _job_ended(catalogue)
    log.info("%s finished in %.1f s", parser.prog, time.perf_counter() - started)
    return code


def _job_ended(catalogue: bool) -> None:
    """Remove the job's reliable checkpoints, and rewrite the catalogue manifest of every lakehouse the job opened a
    session on (unless catalogue is False), whether or not it succeeded (a job that failed half-way may have created
    tables), before its error line, which stays the last. One place for every job, present and future: a job that
    creates, drops or moves a table cannot forget it, and a Spark-free job (query.py --engine duckdb) pays nothing.
    Checkpoints or a manifest that cannot be handled are a warning, never the job's failure."""
    sessions = take_handed_out()  # taken either way: they were this job's
    for spark in sessions:
        try:
            drop_checkpoints(spark)
        except Exception as exc:
            log.warning("could not remove the job's checkpoints: %s", first_line(exc))
        if not catalogue:
            continue
        try:
            refresh_catalogue(spark)
        except Exception as exc:
            log.warning("could not refresh the catalogue manifest: %s", first_line(exc))


def _user_error_from_spark(exc: Exception) -> str | None:
    """A one-line message for Spark errors a user causes (bad SQL, missing table or column), else None."""
    try:
        from pyspark.errors import AnalysisException, ParseException
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, (AnalysisException, ParseException)):
        message = str(exc).strip().splitlines()[0]
        return message.split("JVM stacktrace")[0].strip()
    return None
