"""Train models on gold tables (conf/models.yaml): xgboost.spark with a logistic-regression baseline on the same
time split, calibrated on validation; log the run to MLflow, register a new version and point the alias at it."""

from __future__ import annotations

import argparse
import sys

from marketlake.cli import base_parser, run
from marketlake.config import load_settings
from marketlake.models import registry
from marketlake.models.run import train_and_register, training_report
from marketlake.models.spec import load_models
from marketlake.session import get_spark
from marketlake.tables import ensure_databases


def main(args: argparse.Namespace) -> int:
    settings = load_settings(args.conf_env)
    conf = load_models(settings.conf_dir, settings.overlay("models"))
    specs = conf.select(args.model)
    alias = None if args.no_alias else (args.alias or conf.tracking.get("alias"))
    spark = get_spark(settings, "marketlake-train", args.master)
    ensure_databases(spark, settings)
    uri = registry.configure(settings, conf)
    for spec in specs:
        print(training_report(train_and_register(spark, settings, conf, spec, alias), uri))
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    p.add_argument("--model", default="all", help="comma-separated models from conf/models.yaml (default: all)")
    p.add_argument("--alias", default=None, help="alias to point at the new version (default: tracking.alias)")
    p.add_argument("--no-alias", action="store_true", help="register the version without moving any alias")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
