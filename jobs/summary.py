"""Print what the lakehouse holds: every bronze table with its row, unparseable and file counts, the PII its columns
hold (declared in conf vs detected in a sample), every silver table with its row accounting, and every gold table
(marts, model scores, decisions, drift, anomalies) with its rows and partitions."""

from __future__ import annotations

import argparse
import sys

from marketlake.cli import base_parser, run
from marketlake.config import load_settings
from marketlake.privacy.detection import pii_summary
from marketlake.published import gold_partitions
from marketlake.report import bronze_summary, format_rows, gold_summary, silver_summary
from marketlake.session import get_spark


def main(args: argparse.Namespace) -> int:
    settings = load_settings(args.conf_env)
    spark = get_spark(settings, "marketlake-summary", args.master)
    bronze = bronze_summary(spark)
    print(f"\nmarketlake at {settings.lakehouse_root}\n\nBronze tables (rows = every landed line; unparseable kept)")
    if bronze:
        print(format_rows(bronze, list(bronze[0]), args.format))
        print(
            f"total: {sum(int(r['rows']) for r in bronze)} rows, "
            f"{sum(int(r['unparseable']) for r in bronze)} unparseable, in {len(bronze)} tables"
        )
    else:
        print("(none yet: run jobs/bronze_ingest.py)")
    pii = pii_summary(spark, settings)
    print("\nPII: declared vs detected (bronze columns; declared in conf, detected in a sample of each table)")
    if pii:
        print(format_rows(pii, list(pii[0]), args.format))
    else:
        print("(no bronze column is declared or detected as PII)")
    silver = silver_summary(spark)
    print("\nSilver tables, all runs: rows in + retried = to silver + quarantined (stored = one row per key)")
    if silver:
        print(format_rows(silver, list(silver[0]), args.format))
    else:
        print("(none yet: run jobs/silver_build.py)")
    partitions = gold_partitions(settings)
    gold_dir = settings.database_location("gold")
    gold = gold_summary(spark, {name: (str(gold_dir / name), column) for name, column in partitions.items()})
    print("\nGold tables (query them by name: jobs/query.py 'SELECT * FROM gold.<table> LIMIT 10')")
    print(format_rows(gold, list(gold[0]), args.format) if gold else "(none yet: run jobs/gold_build.py)")
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
