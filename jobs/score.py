"""Score a day (--date) or a range (--start/--end) with a registered model version (by alias, default from
conf/models.yaml, or --version) into gold.<model>_scores, gold.<model>_interventions and gold.model_drift.
Scoring the same dates with the same version again commits nothing."""

from __future__ import annotations

import argparse
import sys

from marketlake.cli import add_date_range, base_parser, date_range_args, run
from marketlake.config import load_settings
from marketlake.errors import InputError
from marketlake.gold.build import check_range
from marketlake.models import registry
from marketlake.models.run import score_range
from marketlake.models.spec import load_models
from marketlake.report import format_rows
from marketlake.session import get_spark
from marketlake.tables import ensure_databases


def main(args: argparse.Namespace) -> int:
    start, end = date_range_args(args)
    check_range(start, end)
    if args.alias and args.version is not None:
        raise InputError("give either --alias or --version, not both")
    settings = load_settings(args.conf_env)
    conf = load_models(settings.conf_dir, settings.overlay("models"))
    specs = conf.select(args.model)
    alias = None if args.version is not None else (args.alias or conf.tracking.get("alias"))
    spark = get_spark(settings, "marketlake-score", args.master)
    ensure_databases(spark, settings)
    registry.configure(settings, conf)
    runs = [score_range(spark, settings, conf, spec, start, end, alias, args.version) for spec in specs]
    rows = [
        {
            "model": r.model,
            "version": r.version,
            "dates": f"{r.first}..{r.last}",
            "rows": r.rows,
            "commit": "written" if r.written else "unchanged",
            "drift_flags": r.drift_flags,
            "seconds": round(r.seconds, 1),
        }
        for r in runs
    ]
    print(f"\nScores {start}..{end}" + (f" (@{alias})" if alias else ""))
    print(format_rows(rows, ["model", "version", "dates", "rows", "commit", "drift_flags", "seconds"]))
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    p.add_argument("--model", default="all", help="comma-separated models from conf/models.yaml (default: all)")
    p.add_argument("--alias", default=None, help="registry alias to score with (default: tracking.alias)")
    p.add_argument("--version", type=int, default=None, help="score with this model version instead of an alias")
    add_date_range(p, "score")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
