"""Point a registry alias at a model version (a rollback is this one command), or list the versions."""

from __future__ import annotations

import argparse
import sys

from marketlake.cli import base_parser, run
from marketlake.config import load_settings
from marketlake.models import registry
from marketlake.models.spec import load_models


def main(args: argparse.Namespace) -> int:
    settings = load_settings(args.conf_env)
    conf = load_models(settings.conf_dir, settings.overlay("models"))
    spec = conf.spec(args.model)
    registry.configure(settings, conf)
    alias = args.alias or str(conf.tracking.get("alias"))
    registry.set_alias(spec.registered_name, alias, args.version)
    print(f"{spec.registered_name}@{alias} -> version {args.version}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    p.add_argument("--model", required=True, help="model name from conf/models.yaml (regret, churn)")
    p.add_argument("--alias", default=None, help="alias to move (default: tracking.alias)")
    p.add_argument("--version", type=int, required=True, help="model version the alias should name")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
