"""Forecast as of a day (--date) or each day of a range (--start/--end): units per product for 14 days into
gold.demand_forecast, revenue per channel and volume per pair for 30 days into gold.kpi_forecast, each with an 80 %
interval, and their rolling-origin backtests against seasonal-naive into gold.forecast_backtest."""

from __future__ import annotations

import argparse
import sys

from marketlake import forecast
from marketlake.cli import add_date_range, base_parser, date_range_args, run
from marketlake.config import load_settings
from marketlake.formatting import format_rows
from marketlake.gold.build import check_range
from marketlake.gold.spec import date_range, load_gold
from marketlake.models.run import write_gold
from marketlake.session import checkpoint, get_spark
from marketlake.tables import ensure_databases

SHOWN = ("series", "key", "points", "mape", "smape", "bias", "naive_mape", "naive_smape", "naive_bias", "beats_naive")


def main(args: argparse.Namespace) -> int:
    start, end = date_range_args(args)
    check_range(start, end)
    settings = load_settings(args.conf_env)
    conf = forecast.ForecastConf.from_params(load_gold(settings.conf_dir, settings.overlay("gold")).params)
    spark = get_spark(settings, "marketlake-forecast", args.master)
    ensure_databases(spark, settings)
    demand, kpis, scores = None, None, []
    for day in date_range(start, end):
        d, k, s = forecast.build(spark, settings, conf, day)
        demand = d if demand is None else demand.unionByName(d)
        kpis = k if kpis is None else kpis.unionByName(k)
        scores += s
    written = []
    backtest = spark.createDataFrame(scores, forecast.BACKTEST_DDL)
    for spec, df in ((forecast.DEMAND, demand), (forecast.KPI, kpis), (forecast.BACKTEST, backtest)):
        n, changed = write_gold(spark, settings, "gold", checkpoint(df), spec, start, end)
        written.append(f"gold.{spec.name}: {n} rows ({'written' if changed else 'unchanged'})")
    print(f"\nforecasts as of {start}..{end}:")
    print("\n".join(written))
    overall = [dict(zip(forecast.BACKTEST_DDL_COLUMNS, r, strict=True)) for r in scores if r[0] == end]
    rows = [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items() if k in SHOWN} for r in overall]
    print(f"backtest as of {end} (the forecast against seasonal-naive; key ALL pools a series' keys):")
    print(format_rows([r for r in rows if r["key"] == "ALL"], list(SHOWN), "table"))
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    add_date_range(p, "forecast as of")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
