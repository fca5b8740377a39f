"""Score fraud risk for the days --start..--end (or one --date): per case (exchange withdrawals, shop order lines) a
random forest on the labelled cases and an Isolation Forest, trained on the rows whose labels were final before the
first day, combined into a risk score with approve / review / block and the top factors, into gold.fraud_scores;
the time-split test against the rule baseline goes to gold.fraud_evaluation and MLflow."""

from __future__ import annotations

import argparse
import sys

from marketlake.cli import add_date_range, base_parser, date_range_args, run
from marketlake.config import load_settings
from marketlake.formatting import format_rows
from marketlake.fraud.run import run_case
from marketlake.fraud.spec import load_fraud
from marketlake.gold.build import check_range
from marketlake.gold.spec import load_gold
from marketlake.models import registry
from marketlake.models.spec import load_models
from marketlake.session import get_spark
from marketlake.tables import ensure_databases

SHOWN = ("method", "threshold", "rows", "positives", "flagged", "true_positives", "precision", "recall", "pr_auc")


def main(args: argparse.Namespace) -> int:
    start, end = date_range_args(args)
    check_range(start, end)
    settings = load_settings(args.conf_env)
    conf = load_fraud(settings.conf_dir, settings.overlay("fraud"))
    cases = conf.select(args.case)
    gold = load_gold(settings.conf_dir, settings.overlay("gold"))
    registry.configure(settings, load_models(settings.conf_dir, settings.overlay("models")))
    spark = get_spark(settings, "marketlake-fraud", args.master)
    ensure_databases(spark, settings)
    for case in cases:
        result = run_case(spark, settings, gold, conf, case, start, end)
        w = result.windows
        decided = ", ".join(f"{result.decisions.get(d, 0)} {d}" for d in ("approve", "review", "block"))
        print(
            f"\nfraud {case.name}: {result.rows} rows scored {start}..{end} "
            f"({'written' if result.written else 'unchanged'}): {decided}"
        )
        print(
            f"  trained on {w.fit_from}..{w.fit_until}, tested on {w.test_from}..{w.test_until} "
            f"against the rule ({case.rule}); MLflow run {result.run_id}"
        )
        rows = [
            {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items() if k in SHOWN}
            for r in result.evaluation
        ]
        print(format_rows(rows, list(SHOWN), "table"))
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    add_date_range(p, "score the days of")
    p.add_argument("--case", default="all", help="fraud cases (conf/fraud.yaml), comma-separated, or all (default)")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
