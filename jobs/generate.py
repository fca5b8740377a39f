"""Generate realistic, dirty landing files for exchange, commerce and trends (deterministic, distributed)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from marketlake.cli import base_parser, run
from marketlake.config import load_settings, parse_date
from marketlake.errors import InputError
from marketlake.experiments.spec import load_experiments
from marketlake.generator.params import GeneratorParams
from marketlake.generator.run import generate_landing
from marketlake.session import get_spark

log = logging.getLogger("marketlake.generate")


def main(args: argparse.Namespace) -> int:
    settings = load_settings(args.conf_env)
    if args.scale is not None and args.scale <= 0:
        raise InputError("--scale must be positive")
    if args.days is not None and not 1 <= args.days <= 3660:
        raise InputError("--days must be between 1 and 3660")
    if args.effect is not None and not 0 <= args.effect <= 1:
        raise InputError("--effect must be between 0 and 1")
    domains = settings.domains() if args.domain == "all" else (args.domain,)
    for domain in domains:
        settings.domain_sources(domain)
    params = GeneratorParams.from_config(
        settings.generator,
        load_experiments(settings.conf_dir, settings.overlay("experiments")),
        seed=args.seed,
        scale=args.scale,
        days=args.days,
        start=parse_date(args.start, "--start") if args.start else None,
        effect=args.effect,
    )
    out = args.out or str(settings.landing_dir)
    spark = get_spark(settings, "marketlake-generate", args.master)
    started = time.perf_counter()
    results = generate_landing(spark, settings.sources, params, out, domains)
    total = sum(r.lines for r in results)
    elapsed = time.perf_counter() - started
    log.info(
        "generated %d lines for %s into %s in %.1f s (%.0f lines/s)",
        total,
        ", ".join(domains),
        out,
        elapsed,
        total / elapsed if elapsed else 0.0,
    )
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    p.add_argument("--scale", type=float, default=None, help="volume multiplier (default: config, 1)")
    p.add_argument("--start", default=None, help="first day, YYYY-MM-DD (default: config)")
    p.add_argument("--days", type=int, default=None, help="number of days (default: config)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: config)")
    p.add_argument("--out", default=None, help="landing directory (default: <lakehouse>/landing)")
    p.add_argument("--domain", default="all", help="exchange, commerce, trends or all (default)")
    p.add_argument(
        "--effect",
        type=float,
        default=None,
        help="the regret-intervention experiment's true relative cut in regret returns, 0..1 (default: config)",
    )
    return p


if __name__ == "__main__":

    def _main(argv: Sequence[str] | None = None) -> int:
        return run(main, parser(), argv, catalogue=False)  # landing files only: the metastore stays shut

    sys.exit(_main())
