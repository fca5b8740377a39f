"""Detect revenue and volume anomalies for a day (--date) or a range (--start/--end) on the daily gold KPIs:
rolling z-score, Isolation Forest and forecast residuals per series, their consensus, and a JSON insight per
confirmed day, into gold.kpi_anomalies."""

from __future__ import annotations

import argparse
import json
import sys

from marketlake.cli import add_date_range, base_parser, date_range_args, run
from marketlake.config import load_settings
from marketlake.gold.build import check_range
from marketlake.models.run import detect_anomalies
from marketlake.models.spec import load_models
from marketlake.session import get_spark
from marketlake.tables import ensure_databases


def main(args: argparse.Namespace) -> int:
    start, end = date_range_args(args)
    check_range(start, end)
    settings = load_settings(args.conf_env)
    conf = load_models(settings.conf_dir, settings.overlay("models"))
    spark = get_spark(settings, "marketlake-anomalies", args.master)
    ensure_databases(spark, settings)
    result = detect_anomalies(spark, settings, conf, start, end)
    state = "written" if result.written else "unchanged"
    print(f"\nKPI anomalies {start}..{end}: {result.rows} series-days ({state}), {len(result.confirmed)} confirmed")
    for insight in result.confirmed[: args.show]:
        print(json.dumps(insight, sort_keys=True))
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    add_date_range(p, "check")
    p.add_argument("--show", type=int, default=20, help="confirmed insights to print (default 20)")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
