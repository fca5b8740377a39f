"""Watch the models on real outcomes for the scoring weeks of a day (--date) or a range (--start/--end): each model
version's realised ROC-AUC, PR-AUC, calibration error and precision@K per week whose labels are final, against
its test metrics, into gold.model_performance; a week whose AUC dropped or whose PSI flags persisted is flagged
with the action (retrain)."""

from __future__ import annotations

import argparse
import sys

from marketlake.cli import add_date_range, base_parser, date_range_args, run
from marketlake.config import load_settings
from marketlake.formatting import format_rows
from marketlake.gold.build import check_range
from marketlake.models import registry
from marketlake.models.run import watch_performance
from marketlake.models.spec import load_models
from marketlake.session import get_spark
from marketlake.tables import ensure_databases

SHOWN = ("week_start", "model_name", "model_version", "rows", "roc_auc", "test_roc_auc", "action", "reason")


def main(args: argparse.Namespace) -> int:
    start, end = date_range_args(args)
    check_range(start, end)
    settings = load_settings(args.conf_env)
    conf = load_models(settings.conf_dir, settings.overlay("models"))
    specs = conf.select(args.model)
    registry.configure(settings, conf)
    spark = get_spark(settings, "marketlake-model-performance", args.master)
    ensure_databases(spark, settings)
    for spec in specs:
        n, written, flagged = watch_performance(spark, settings, conf, spec, start, end)
        state = "written" if written else "unchanged"
        print(f"\n{spec.name}: {n} version-weeks with final labels ({state}), {len(flagged)} flagged")
        if flagged:
            print(format_rows([{k: r[k] for k in SHOWN} for r in flagged], list(SHOWN), "table"))
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    add_date_range(p, "measure the scoring weeks of")
    p.add_argument("--model", default="all", help="model names, comma-separated, or all (default)")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
