"""Read out the experiments on the models' interventions (conf/experiments.yaml) for a day (--date) or a range
(--start/--end): the units each exposed that day, with their arm, into gold.experiment_assignments, and per day the
readout of every unit whose outcomes are final by then, per metric and variant, into gold.experiment_readouts."""

from __future__ import annotations

import argparse
import sys

from marketlake.cli import add_date_range, base_parser, date_range_args, run
from marketlake.config import load_settings
from marketlake.experiments.run import build
from marketlake.experiments.spec import load_experiments
from marketlake.formatting import format_rows
from marketlake.gold.build import check_range
from marketlake.models.spec import load_models
from marketlake.session import get_spark
from marketlake.tables import ensure_databases

SHOWN = (
    "metric",
    "variant",
    "units",
    "conversions",
    "value",
    "relative_lift",
    "relative_lift_low",
    "relative_lift_high",
    "p_value",
    "planned_units_per_arm",
    "sample_reached",
)


def main(args: argparse.Namespace) -> int:
    start, end = date_range_args(args)
    check_range(start, end)
    settings = load_settings(args.conf_env)
    models = load_models(settings.conf_dir, settings.overlay("models"))
    experiments = load_experiments(settings.conf_dir, settings.overlay("experiments"))
    spark = get_spark(settings, "marketlake-experiments", args.master)
    ensure_databases(spark, settings)
    for result in build(spark, settings, models, experiments, start, end):
        state = "written" if result.assignments_written or result.readouts_written else "unchanged"
        print(
            f"\nexperiment {result.experiment} {start}..{end}: {result.assignments} unit-days assigned, readouts on "
            f"{len(result.readout_days)} days ({state})"
        )
        if result.readout:
            print(f"readout of {result.readout_days[-1]}:")
            rows = [{k: _shown(r[k]) for k in SHOWN} for r in result.readout]
            print(format_rows(rows, list(SHOWN), "table"))
        else:
            print("no readout yet: no unit's outcomes are final by these days (or no control unit is)")
    return 0


def _shown(value: object) -> object:
    return round(value, 4) if isinstance(value, float) else value


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    add_date_range(p, "read out")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
