"""Customer lifetime value as of a day (--date) or each day of a range (--start/--end): BG/NBD + Gamma-Gamma per
commerce customer and exchange user, fitted on the purchase days before the date, into
gold.customer_lifetime_value, with the fitted parameters in gold.clv_fits and the calibration fit's holdout check
(predicted vs actual purchase days per frequency group) in gold.clv_holdout."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from marketlake.cli import add_date_range, base_parser, date_range_args, run
from marketlake.clv.build import FITS, HOLDOUT, VALUES, ClvConf, build, purchases
from marketlake.config import load_settings
from marketlake.errors import InputError
from marketlake.formatting import format_rows
from marketlake.gold.build import check_range, read_inputs
from marketlake.gold.spec import days_from, load_gold
from marketlake.models.run import write_gold
from marketlake.session import checkpoint, get_spark
from marketlake.tables import ensure_databases

DOMAINS = ("commerce", "exchange")


def main(args: argparse.Namespace) -> int:
    start, end = date_range_args(args)
    check_range(start, end)
    domains = list(DOMAINS) if args.domain == "all" else [args.domain]
    if not set(domains) <= set(DOMAINS):
        raise InputError(f"--domain must be commerce, exchange or all, not {args.domain}")
    settings = load_settings(args.conf_env)
    gold = load_gold(settings.conf_dir, settings.overlay("gold"))
    conf = ClvConf.from_params(gold.params)
    lookback = conf.history_days + days_from("exchange.price_lookback_days", gold.params)
    wanted = [t for t in VALUES.inputs if t.split("_", 1)[0] in domains]
    spec = dataclasses.replace(VALUES, inputs=tuple(wanted), lookback=lookback)
    spark = get_spark(settings, "marketlake-clv", args.master)
    ensure_databases(spark, settings)
    inputs = read_inputs(spark, settings, spec, start, end)
    values, fits, holdout = build(spark, purchases(inputs, gold.params, domains), conf, start, end)
    mine = "domain IN ({})".format(", ".join(f"'{d}'" for d in domains))
    written = []
    for table, df in ((VALUES, values), (FITS, fits), (HOLDOUT, holdout)):
        n, changed = write_gold(spark, settings, "gold", checkpoint(df), table, start, end, mine)
        written.append(f"gold.{table.name}: {n} rows ({'written' if changed else 'unchanged'})")
    print(f"\ncustomer lifetime value as of {start}..{end}, {', '.join(domains)}:")
    print("\n".join(written))
    shown = ["as_of_date", "domain", "fit", "customers", "repeat_customers", "r", "alpha", "a", "b", "p", "q", "v"]
    rows = [
        {k: round(v, 4) if isinstance(v, float) else v for k, v in r.asDict().items() if k in shown}
        for r in fits.where(fits.as_of_date == end).collect()
    ]
    print(format_rows(rows, shown, "table") if rows else "no fit: no repeat purchases before these dates")
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    add_date_range(p, "value customers as of")
    p.add_argument("--domain", default="all", help="commerce, exchange or all (default)")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
